"""Tests for kgan.models.decoder_layers.Im2colConv2D (the matmul form of a "same" conv, used
for DeOldify Stable / Video's middle convs): its outputs and both gradients equal Conv2D's on
the same weights (any grid, dynamic shapes, inside spectral norm, under mixed_bfloat16),
unsupported settings are refused, the DeOldify builder uses it only for the huge kernels, and a
converted DeOldify network built with it equals PyTorch's and exports (SavedModel, TFLite, ONNX)."""

import os
import tempfile
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT

from kgan.exporting import export
from kgan.interop import deoldify_weights as dw
from kgan.models import deoldify, raw_network
from kgan.models.encoders import TORCH_MEAN, TORCH_STD
from kgan.models.layers import Im2colConv2D
from kgan.serving.precision import with_precision

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")


def _pair(filters, kernel_size, channels, use_bias=True):
    """A Conv2D and an Im2colConv2D holding the same weights."""
    conv = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=use_bias)
    im2col = Im2colConv2D(filters, kernel_size, padding="same", use_bias=use_bias)
    conv.build((None, None, None, channels))
    im2col.build((None, None, None, channels))
    rng = np.random.default_rng(0)
    im2col.set_weights([rng.normal(size=w.shape).astype("float32") for w in conv.weights])
    conv.set_weights(im2col.get_weights())
    return conv, im2col


class Im2colConv2DTest(tf.test.TestCase):

    def test_outputs_and_gradients_equal_conv2d(self):
        for kernel_size, shape in ((3, (2, 4, 4, 6)), (3, (1, 5, 7, 6)), (1, (2, 3, 3, 6)),
                                   (5, (1, 6, 9, 6))):
            with self.subTest(kernel_size=kernel_size, shape=shape):
                conv, im2col = _pair(5, kernel_size, shape[-1])
                x = tf.random.stateless_normal(shape, seed=(1, kernel_size))
                results = []
                for layer in (conv, im2col):
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = layer(x)
                        loss = tf.reduce_sum(y * tf.sin(y))
                    results.append((y, *tape.gradient(loss, [x, *layer.trainable_weights])))
                for expected, actual in zip(*results):
                    self.assertAllClose(actual, expected, atol=1e-4, rtol=1e-4)

    def test_a_wrong_tap_order_would_differ(self):
        # The check above can fail: the kernel read in (k_w, k_h) order gives other outputs.
        conv, im2col = _pair(4, 3, 3, use_bias=False)
        x = tf.random.stateless_normal((1, 5, 5, 3), seed=(2, 0))
        swapped = tf.transpose(im2col.kernel, [1, 0, 2, 3])
        self.assertGreater(float(tf.reduce_max(tf.abs(
            im2col.convolution_op(x, swapped) - conv(x)))), 0.1)

    def test_dynamic_grid_in_a_function_and_spectral_norm(self):
        conv, im2col = _pair(4, 3, 3)
        traced = tf.function(im2col, input_signature=[tf.TensorSpec((None, None, None, 3))])
        for shape in ((1, 4, 6, 3), (2, 7, 3, 3)):
            x = tf.random.stateless_normal(shape, seed=(3, shape[1]))
            self.assertAllClose(traced(x), conv(x), atol=1e-4)
        wrapped = keras.layers.SpectralNormalization(Im2colConv2D(4, 3, padding="same"))
        reference = keras.layers.SpectralNormalization(keras.layers.Conv2D(4, 3, padding="same"))
        x = tf.random.stateless_normal((1, 4, 4, 3), seed=(4, 0))
        wrapped(x), reference(x)
        reference.set_weights(wrapped.get_weights())
        self.assertAllClose(wrapped(x, training=True), reference(x, training=True), atol=1e-4)

    def test_mixed_bfloat16_close_to_float32(self):
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            layer = Im2colConv2D(8, 3, padding="same")
            x = tf.random.stateless_normal((1, 4, 4, 16), seed=(5, 0))
            y = layer(x)
            self.assertEqual(y.dtype, tf.bfloat16)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        reference = keras.layers.Conv2D(8, 3, padding="same")
        reference.build(x.shape)
        reference.set_weights(layer.get_weights())
        self.assertAllClose(tf.cast(y, tf.float32), reference(x), atol=0.1, rtol=0.05)

    def test_unsupported_settings_are_refused(self):
        for kwargs in (dict(strides=2), dict(padding="valid"), dict(dilation_rate=2),
                       dict(kernel_size=2)):
            with self.subTest(**kwargs):
                args = {"filters": 4, "kernel_size": 3, "padding": "same", **kwargs}
                with self.assertRaisesRegex(ValueError, "Use Conv2D|use Conv2D"):
                    Im2colConv2D(**args)

    def test_deoldify_uses_it_only_for_huge_kernels(self):
        # Stable at DeOldify's width: the two middle convs (3x3 2048 <-> 4096) only.
        model = deoldify.deoldify_generator("stable")
        im2col = sorted(layer.name for layer in model._flatten_layers(include_self=False)
                        if isinstance(layer, Im2colConv2D))
        self.assertEqual(im2col, ["layers_3_0_0", "layers_3_1_0"])
        # Same weights as before: DeOldify's trainable count (kgan.models.deoldify's docstring).
        self.assertEqual(sum(int(np.prod(w.shape)) for w in model.trainable_weights),
                         218_221_173)
        # Artistic's middle convs (512 <-> 1024) and small test widths keep Conv2D.
        for small in (deoldify.deoldify_generator("artistic"),
                      deoldify.deoldify_generator("stable", width=8, blocks=(1, 1, 1, 1))):
            self.assertFalse(any(isinstance(layer, Im2colConv2D)
                                 for layer in small._flatten_layers(include_self=False)))



@pytest.mark.slow
class Im2colDeOldifyTest(tf.test.TestCase):
    """A converted DeOldify Stable fixture with EVERY decoder conv as Im2colConv2D (the
    threshold patched to 1) still equals REAL PyTorch's outputs (tests/fixtures/deoldify) within
    1e-4, and exports to SavedModel, TFLite float32 and ONNX, each verified against Keras."""

    def test_converted_and_exported_equals_pytorch(self):
        with mock.patch.object(deoldify, "IM2COL_MIN_KERNEL_ELEMENTS", 1):
            model = dw.load_deoldify_generator(os.path.join(FIXTURES, "stable.pth"),
                                               "deoldify_stable")
        convs = [layer for layer in model._flatten_layers(include_self=False)
                 if isinstance(layer, Im2colConv2D)]
        self.assertGreaterEqual(len(convs), 10)
        with np.load(os.path.join(FIXTURES, "outputs.npz")) as data:
            arrays = {key: data[key] for key in data.files if key.startswith("stable/")}
        raw = raw_network(model)
        for i in range(2):
            x, expected = arrays[f"stable/input_{i}"], arrays[f"stable/output_{i}"]
            normalised = ((x + 1) / 2 - np.float32(TORCH_MEAN)) / np.float32(TORCH_STD)
            self.assertLess(float(np.abs(np.asarray(raw(normalised)) - expected).max()), 1e-4)
        # bf16 inference (kgan.translate --precision=bfloat16) copies it layer by layer.
        x = tf.constant(arrays["stable/input_0"])
        bf16 = with_precision(model, "bfloat16")
        self.assertTrue(any(isinstance(layer, Im2colConv2D)
                            for layer in bf16._flatten_layers(include_self=False)))
        self.assertAllClose(bf16(x), model(x), atol=0.1)
        rng = np.random.default_rng(0)
        images = [rng.integers(0, 256, (37, 45, 3), dtype=np.uint8)]
        with tempfile.TemporaryDirectory() as folder:
            manifest = export.export_generator(model, os.path.join(folder, "export"),
                                               tflite="float32", tflite_size=64, onnx=True,
                                               verify_images=images, render_factor=35)
        self.assertTrue(manifest["verified"], manifest.get("unverified"))
        self.assertLess(manifest["onnx"]["verification"]["max_abs_error"], 1e-4)
        self.assertIn("float32", manifest["tflite"])
