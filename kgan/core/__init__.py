"""The base row: user errors (``KganError``), atomic file writes, the uint8 <-> [-1, 1] pixel pair,
the ImageNet-weights resolver, progress lines, TensorFlow-free measurements and numpy frame
operations. Imports nothing else of kgan; nothing here imports TensorFlow at module level
(the PyTorch peer benchmarks import ``kgan.core.measure`` where TensorFlow is not installed).
"""
