"""kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration and colourisation) in
TensorFlow 2 / Keras 3. The packages follow ARCHITECTURE.md's rows; ``python -m kgan.X`` runs
a command (kgan/X.py, a shim over kgan.cli.X)."""

__version__ = "0.1.0"
