"""``python -m kgan.bench``'s library: machine peaks and FLOP counting (``peaks``), a training
configuration's speed (``bench``; the NoGAN phases: ``nogan``), the table (``table``) and
the profiler helpers (``profiling``).
"""
