"""kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration) in TensorFlow 2 / Keras 3."""

import os

# Imported before TensorFlow by every ``python -m kgan.*`` CLI: hide TensorFlow's C++ INFO lines
# (SavedModel loader and TFLite converter chatter); its warnings and errors still show. A value
# the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"
