"""Installs kgan: image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration) in TF 2 / Keras 3."""
from setuptools import find_packages, setup

setup(
    name="kgan",
    version="0.1.0",
    description="Image-to-image GANs (CycleGAN, pix2pix, NoGAN restoration) for TensorFlow 2 / Keras 3",
    packages=find_packages(include=["kgan", "kgan.*"]),
    python_requires=">=3.9",
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "tensorflow-datasets",
        "numpy",
        "pillow",
        "absl-py",
        # tf.summary needs it (TF 2.21 no longer depends on it) and users watch runs with it.
        "tensorboard",
        # The TFLite interpreter (tf.lite.Interpreter is deprecated in TF 2.21).
        "ai-edge-litert",
        # Its skimage.data photos are the built-in offline sample set.
        "scikit-image",
        # tfds.load needs it to download and prepare datasets.
        "importlib_resources",
    ],
    extras_require={
        # kgan.video.pipeline: its wheel ships a static ffmpeg (libx264, AAC), no system ffmpeg needed.
        "video": ["imageio-ffmpeg"],
        # kgan.export --onnx / kgan.convert --onnx.
        "onnx": ["tf2onnx", "onnxruntime"],
        # kgan.demo (a local web page) and the run reports' loss curves.
        "demo": ["gradio", "matplotlib"],
        "report": ["matplotlib"],
        # The test suite runs every optional part (browser tests drive Debian's chromium);
        # OpenCV only for DeOldify's reference pipeline (tests/fixtures/deoldify_pipeline.py).
        "test": ["pytest", "imageio-ffmpeg", "tf2onnx", "onnxruntime", "gradio", "matplotlib",
                 "selenium", "opencv-python-headless"],
    },
)
