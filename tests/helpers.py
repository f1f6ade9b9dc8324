"""Shared test helpers: real-photo fixtures, random images, subprocess environments for the
CLIs, the one shared trained smoke run (``smoke_run``), the checkpoint steps a run folder holds, gradient checks over a model's weights, and one
serialisation round trip for every layer class in kgan.models.layers.

Imported by the test modules (``from helpers import ...``; pytest puts tests/ on sys.path).
"""

import glob
import importlib.util
import inspect
import os
import re
import sys

import keras
import numpy as np
import tensorflow as tf

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def photo(height, width, name="astronaut"):
    """A real photo from scikit-image (``astronaut``, ``chelsea``, ``coffee``, ...) resized to
    (height, width), uint8 RGB."""
    import skimage.data

    image = getattr(skimage.data, name)()
    image = tf.image.resize(image[np.newaxis].astype(np.float32), (height, width),
                            antialias=True)
    return np.clip(np.round(image[0].numpy()), 0, 255).astype(np.uint8)


def random_images(n, h, w, c=3, seed=0):
    """float32 (n, h, w, c) uniform in [-1, 1]."""
    return np.random.RandomState(seed).uniform(-1, 1, (n, h, w, c)).astype("float32")


def cli_env(**extra):
    """The environment for running ``python -m kgan.X`` in a subprocess: this checkout first
    on PYTHONPATH, TensorFlow's C++ chatter and GPUs off."""
    path = os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)
    return {**os.environ, "PYTHONPATH": path, "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": "", **extra}


def run_cli(module, *args, timeout=300, cwd=ROOT, **env):
    """Runs ``python -m kgan.<module> ARGS`` and returns the CompletedProcess (text output)."""
    import subprocess

    return subprocess.run([sys.executable, "-m", f"kgan.{module}", *args], cwd=cwd,
                          env=cli_env(**env), capture_output=True, text=True, timeout=timeout)


SMOKE_ARGS = ("--flagfile=configs/smoke.cfg",)
SMOKE_ENV = {"TF_DETERMINISTIC_OPS": "1"}
_smoke = {}


def smoke_run():
    """The run folder of ``python -m kgan.train --flagfile=configs/smoke.cfg`` (tiny CycleGAN,
    10 steps, checkpoints at 5 and 10, seeded, ``TF_DETERMINISTIC_OPS=1``), trained once per
    pytest process on first use and shared by the tests that only READ a trained run; a test
    that writes into a run copies it first (``copy_smoke_run``). Removed at exit.

    Returns:
        ``(run folder, CompletedProcess of the training)``.
    """
    if not _smoke:
        import atexit
        import shutil
        import tempfile

        root = tempfile.mkdtemp(prefix="kgan_smoke_run_")
        atexit.register(shutil.rmtree, root, ignore_errors=True)
        out = os.path.join(root, "run")
        result = run_cli("train", *SMOKE_ARGS, f"--output_dir={out}", **SMOKE_ENV)
        if result.returncode != 0:
            raise RuntimeError(f"the shared smoke run failed:\n{result.stderr[-3000:]}")
        _smoke.update(run=out, result=result)
    return _smoke["run"], _smoke["result"]


def copy_smoke_run(destination):
    """A private copy of ``smoke_run()``'s folder at ``destination`` (for tests that resume,
    rerun or damage a run); returns ``destination``."""
    import shutil

    shutil.copytree(smoke_run()[0], destination)
    return destination


def checkpoint_steps(checkpoint_dir):
    """The steps of the ``ckpt-N`` checkpoints in ``checkpoint_dir``, sorted."""
    return sorted(int(re.search(r"ckpt-(\d+)\.index$", p).group(1))
                  for p in glob.glob(os.path.join(checkpoint_dir, "ckpt-*.index")))


def set_attention_gamma(model, value):
    """SelfAttention2D starts with gamma 0 (the identity), which blocks the gradients of its
    query and key; move gamma so that every weight is exercised."""
    from kgan.models.layers import SelfAttention2D

    for layer in model.layers:
        if isinstance(layer, SelfAttention2D):
            layer.gamma.assign(value)


def randomise_batch_norms(model, seed=0, affine=True):
    """Moving statistics (and with ``affine`` gamma and beta) far from the identity in every
    BatchNormalization of ``model``, so that a wrong batch-norm fold shows."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            channels = layer.moving_mean.shape[0]
            layer.moving_mean.assign(rng.normal(0, 0.3, channels).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.3, 3, channels).astype("float32"))
            if affine and layer.scale:
                layer.gamma.assign(rng.uniform(0.5, 1.5, channels).astype("float32"))
            if affine and layer.center:
                layer.beta.assign(rng.normal(0, 0.3, channels).astype("float32"))


def layers_feeding_instance_norm(model):
    """Names of the layers whose output goes straight into an InstanceNormalization."""
    from kgan.models.layers import InstanceNormalization

    # Keras 3 keeps each layer's call graph in `_inbound_nodes` (no public accessor).
    names = set()
    for layer in model.layers:
        if isinstance(layer, InstanceNormalization):
            for node in layer._inbound_nodes[0].parent_nodes:
                names.add(node.operation.name)
    return names


def assert_gradients_reach_every_weight(test, model, loss_fn, name):
    """Checks that ``loss_fn(model)`` gives every trainable weight a finite, non-zero gradient
    (up to round-off, a conv bias feeding an instance norm is cancelled by the mean
    subtraction, as in the reference: that one must be ~0)."""
    set_attention_gamma(model, 0.5)
    with tf.GradientTape() as tape:
        loss = loss_fn(model)
    grads = tape.gradient(loss, model.trainable_weights)
    cancelled = layers_feeding_instance_norm(model)
    largest = max(float(tf.reduce_max(tf.abs(g))) for g in grads)
    for weight, grad in zip(model.trainable_weights, grads):
        test.assertIsNotNone(grad, f"{name}: {weight.path}")
        test.assertTrue(np.all(np.isfinite(grad)), f"{name}: {weight.path}")
        size = float(tf.reduce_max(tf.abs(grad)))
        if weight.path.split("/")[0] in cancelled and weight.name == "bias":
            test.assertLess(size, 1e-4 * largest, f"{name}: {weight.path}")
        else:
            test.assertGreater(size, 0.0, f"{name}: {weight.path}")
    set_attention_gamma(model, 0.0)


# Constructor arguments that exercise each kgan layer (the others take none).
LAYER_EXAMPLES = {
    "ReflectionPadding2D": dict(padding=2),
    "InstanceNormalization": dict(affine=True),
    "SelfAttention2D": dict(spectral_norm=True),
    "PixelShuffle": dict(filters=4, scale=2, activation="relu"),
    "SigmoidRange": dict(low=-1.0, high=1.0),
    "SizeCheck": dict(multiple=4, network="tiny", minimum=8),
    "LeakyReLU": dict(negative_slope=0.2),
    "Cropping2D": dict(cropping=((1, 0), (1, 0))),
    "DepthToSpace": {"scale": 2},
    "ResizeNearestLike": {"input_shapes": [(1, 4, 6, 8), (1, 3, 5, 2)]},
    "Im2colConv2D": dict(filters=4, kernel_size=3, padding="same"),
    "MatmulFilterGradConv2D": dict(filters=4, kernel_size=3, padding="same"),
    "SpectralNorm": dict(layer=keras.layers.Conv2D(4, 3, padding="same")),
}


def kgan_layer_classes():
    """Every ``keras.layers.Layer`` subclass kgan.models.layers exports (its own and the decoder
    layers it re-exports)."""
    import kgan.models.layers as module

    return [cls for _, cls in inspect.getmembers(module, inspect.isclass)
            if issubclass(cls, keras.layers.Layer) and cls.__module__.startswith("kgan.")]


def round_trip_layer(test, cls, input_shape=(1, 8, 8, 16), input_shapes=None, **kwargs):
    """Serialises a layer through ``get_config``/``from_config`` and a ``.keras`` file loaded
    with ``safe_mode=True``; checks the configs and outputs agree. ``input_shapes``: the
    shapes of a layer that takes a list of inputs."""
    layer = cls(**kwargs)
    clone = cls.from_config(layer.get_config())
    test.assertEqual(clone.get_config(), layer.get_config())
    shapes = input_shapes or [input_shape]
    inputs = [keras.Input(shape[1:]) for shape in shapes]
    inputs = inputs if input_shapes else inputs[0]
    model = keras.Model(inputs, layer(inputs))
    path = os.path.join(test.get_temp_dir(), f"{cls.__name__}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    x = [random_images(*shape, seed=3 + i) for i, shape in enumerate(shapes)]
    x = x if input_shapes else x[0]
    test.assertAllClose(loaded(x), model(x), atol=1e-6)


# kgan.colorize against DeOldify's own pipeline, in uint8 levels (issue 23's bound).
DEOLDIFY_PIPELINE_BOUND = {"mean": 1.0, "max": 4}


def uint8_differences(colour, expected):
    """Mean and max absolute difference of two uint8 images, in levels."""
    d = np.abs(np.asarray(colour, np.int64) - np.asarray(expected, np.int64))
    return {"mean": float(d.mean()), "max": int(d.max())}


def within_pipeline_bound(measured):
    """Whether ``uint8_differences`` figures are within ``DEOLDIFY_PIPELINE_BOUND``."""
    bound = DEOLDIFY_PIPELINE_BOUND
    return measured["mean"] <= bound["mean"] and measured["max"] <= bound["max"]


def deoldify_stand_in(seed=0, width=8, name="deoldify_stand_in"):
    """A tiny DeOldify colouriser with the real one's structure (kgan.models.deoldify):
    ``ImageNetPreprocess("torch")`` -> two convs -> ``SigmoidRange(-3, 3)`` -> ``DeOldifyOutput``.

    Returns:
        ``(model, network)``: the Keras model (RGB [-1, 1] in and out) and the inner network as
        DeOldify runs it (normalised NCHW float32 in, normalised prediction NCHW out), for the
        reference pipeline in tests/fixtures/deoldify_pipeline.py.
    """
    from kgan.models.decoder_layers import SigmoidRange
    from kgan.models.deoldify import DeOldifyOutput
    from kgan.models.encoders import ImageNetPreprocess

    keras.utils.set_random_seed(seed)
    init = keras.initializers.RandomNormal(stddev=0.5, seed=seed)
    inner = [keras.layers.Conv2D(width, 3, padding="same", activation="relu",
                                 kernel_initializer=init),
             keras.layers.Conv2D(3, 3, padding="same", kernel_initializer=init,
                                 bias_initializer=keras.initializers.RandomNormal(stddev=1.0,
                                                                                  seed=seed)),
             SigmoidRange(-3.0, 3.0)]
    inputs = keras.Input((None, None, 3))
    x = ImageNetPreprocess("torch")(inputs)
    for layer in inner:
        x = layer(x)
    model = keras.Model(inputs, DeOldifyOutput()(x), name=name)

    def network(x_nchw):
        h = tf.constant(np.transpose(x_nchw, (0, 2, 3, 1)))
        for layer in inner:
            h = layer(h)
        return np.transpose(h.numpy(), (0, 3, 1, 2))

    return model, network


def load_script(path, name=None):
    """Imports a script that is not in a package (``benchmarks/*.py``) as a module."""
    name = name or os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
