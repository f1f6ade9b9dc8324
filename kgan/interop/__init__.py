"""Weights from PyTorch: the restricted ``.pth`` reader (``torch_pickle``), the reference's state
dicts onto kgan networks (``pytorch_weights``) and ``kgan.train --init_from`` (``init_from``).
"""
