"""kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration) in TensorFlow 2 / Keras 3."""

__version__ = "0.1.0"
