"""kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration and colourisation) in
TensorFlow 2 / Keras 3. The packages follow ARCHITECTURE.md's rows; ``python -m kgan.X`` runs
a command (kgan/X.py, a shim over kgan.cli.X).

``import kgan`` imports TensorFlow without its C++ start-up chatter and registers kgan's Keras
layers, so ``keras.saving.load_model("generator.keras", safe_mode=True)`` finds them. Where
TensorFlow is not installed (the PyTorch peer benchmarks import ``kgan.core.measure``) it does
neither.
"""

__version__ = "0.1.0"

from kgan.core.tf_import import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()
try:
    import kgan.models.layers  # noqa: E402,F401  (registers the layers under "kgan>...")
except ImportError:  # no TensorFlow / Keras here
    pass
