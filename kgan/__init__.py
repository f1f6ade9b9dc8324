"""kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration) in TensorFlow 2 / Keras 3."""

import os

# Imported before TensorFlow by every ``python -m kgan.*`` CLI: hide TensorFlow's C++ INFO lines
# (SavedModel loader and TFLite converter chatter); its warnings and errors still show. A value
# the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")

__version__ = "0.1.0"

# ``python -m kgan.X``: while the package is imported, before kgan/X.py runs, sys.argv[0] is
# "-m". Commands whose module imports TensorFlow at the top (kgan.export, kgan.evaluate,
# kgan.bench) get the CLIs' quiet start-up here; a plain ``import kgan`` (library use, the
# TensorFlow-free kgan.measure in the PyTorch peer's environment) imports nothing heavy.
if __import__("sys").argv[:1] == ["-m"]:
    from kgan.cli.startup import quiet_startup

    quiet_startup()
