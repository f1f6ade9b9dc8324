"""Tests for kgan.models.decoder_layers' matmul forms of a "same" conv: Im2colConv2D (the
whole conv as one matmul, for DeOldify Stable / Video's middle convs) and MatmulFilterGradConv2D
(the filter gradient as k*k matmuls, for DeOldify's full-resolution last block). Each one's
outputs and gradients equal Conv2D's on the same weights (any grid, dynamic shapes, inside
spectral norm, under mixed_bfloat16), unsupported settings are refused, the DeOldify builder
uses each where it should, and a converted DeOldify network built with them equals PyTorch's and
exports (SavedModel, TFLite, ONNX)."""

import functools
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
from kgan.models import decoder_layers
from kgan.models.layers import Im2colConv2D, MatmulFilterGradConv2D
from kgan.serving.precision import with_precision

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
# The matmul filter gradient whatever the CPU ("auto" keeps TF's kernel for bf16 with AMX).
MATMULS = functools.partial(MatmulFilterGradConv2D, filter_gradient="matmuls")


def _pair(filters, kernel_size, channels, use_bias=True, cls=Im2colConv2D):
    """A Conv2D and a ``cls`` (a matmul form) holding the same weights."""
    conv = keras.layers.Conv2D(filters, kernel_size, padding="same", use_bias=use_bias)
    im2col = cls(filters, kernel_size, padding="same", use_bias=use_bias)
    conv.build((None, None, None, channels))
    im2col.build((None, None, None, channels))
    rng = np.random.default_rng(0)
    im2col.set_weights([rng.normal(size=w.shape).astype("float32") for w in conv.weights])
    conv.set_weights(im2col.get_weights())
    return conv, im2col


class Im2colConv2DTest(tf.test.TestCase):

    def test_outputs_and_gradients_equal_conv2d(self):
        _assert_equals_conv2d(self, Im2colConv2D)

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
                for cls in (Im2colConv2D, MatmulFilterGradConv2D):
                    with self.assertRaisesRegex(ValueError, "use Conv2D for"):
                        cls(**args)

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


def _kernel_gradient_graph(layer):
    """A tf.function of the kernel gradient of ``layer`` (built on 3 channels) and the nodes of
    its graph, the function library's included."""

    @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3))])
    def kernel_gradient(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(tf.cast(layer(x), tf.float32) ** 2)
        return tape.gradient(loss, layer.kernel)

    graph_def = kernel_gradient.get_concrete_function().graph.as_graph_def()
    nodes = list(graph_def.node)
    for function in graph_def.library.function:
        nodes += function.node_def
    return kernel_gradient, nodes


def _outputs_and_gradients(layer, x):
    """The layer's output and the gradients of a nonlinear loss of it (input, kernel, bias)."""
    with tf.GradientTape() as tape:
        tape.watch(x)
        y = layer(x)
        loss = tf.reduce_sum(y * tf.sin(y))
    return (y, *tape.gradient(loss, [x, *layer.trainable_weights]))


def _assert_equals_conv2d(test, cls):
    """``cls``'s outputs and gradients equal Conv2D's on the same weights (kernels 1/3/5,
    square and odd grids, batch 1-2)."""
    for kernel_size, shape in ((3, (2, 4, 4, 6)), (3, (1, 5, 7, 6)), (1, (2, 3, 3, 6)),
                               (5, (1, 6, 9, 6))):
        with test.subTest(kernel_size=kernel_size, shape=shape):
            conv, other = _pair(5, kernel_size, shape[-1], cls=cls)
            x = tf.random.stateless_normal(shape, seed=(1, kernel_size))
            for expected, actual in zip(_outputs_and_gradients(conv, x),
                                        _outputs_and_gradients(other, x)):
                test.assertAllClose(actual, expected, atol=1e-4, rtol=1e-4)


class MatmulFilterGradConv2DTest(tf.test.TestCase):

    def test_outputs_and_gradients_equal_conv2d(self):
        _assert_equals_conv2d(self, MATMULS)

    def test_a_wrong_tap_order_breaks_the_filter_gradient_only(self):
        # The check above can fail: with the taps reversed the forward and the input gradient
        # (TensorFlow's kernels) stay equal and the kernel gradient differs.
        conv, layer = _pair(4, 3, 3, cls=MATMULS)
        x = tf.random.stateless_normal((1, 5, 6, 3), seed=(2, 1))
        taps = decoder_layers._taps
        with mock.patch.object(decoder_layers, "_taps", lambda x, k: iter(list(taps(x, k))[::-1])):
            y, dx, dkernel, dbias = _outputs_and_gradients(layer, x)
        y0, dx0, dkernel0, dbias0 = _outputs_and_gradients(conv, x)
        self.assertAllClose(y, y0, atol=1e-4)
        self.assertAllClose(dx, dx0, atol=1e-4)
        self.assertGreater(float(tf.reduce_max(tf.abs(dkernel - dkernel0))), 0.1)

    def test_the_filter_gradient_is_matmuls(self):
        layer = MATMULS(4, 3, padding="same")
        layer.build((None, None, None, 3))
        kernel_gradient, nodes = _kernel_gradient_graph(layer)
        op_types = {node.op for node in nodes}
        self.assertIn("MatMul", op_types)
        self.assertIn("Conv2DBackpropInput", op_types)
        self.assertNotIn("Conv2DBackpropFilter", op_types)
        # One tap copy alive at a time: taps 2..9 (slices of the padded input) wait for a
        # tap's matmul (through control inputs on their slice bounds).
        by_name = {node.name: node for node in nodes}

        def waits_for_matmul(name, seen):
            for source in by_name[name].input:
                source = source.lstrip("^").split(":")[0]
                if source in by_name and source not in seen:
                    seen.add(source)
                    if by_name[source].op == "MatMul" or waits_for_matmul(source, seen):
                        return True
            return False

        taps = [node.name for node in nodes if node.op == "StridedSlice"
                and by_name.get(node.input[0].split(":")[0], node).op == "Pad"]
        self.assertLen(taps, 9)
        self.assertEqual(sum(waits_for_matmul(name, set()) for name in taps), 8)
        x = tf.random.stateless_normal((2, 7, 4, 3), seed=(6, 0))
        conv = keras.layers.Conv2D(4, 3, padding="same")
        conv.build(x.shape)
        conv.set_weights(layer.get_weights())
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(conv(x) ** 2)
        self.assertAllClose(kernel_gradient(x), tape.gradient(loss, conv.kernel), atol=1e-4)

    def test_gradients_under_xla(self):
        # kgan.train --xla compiles the step: the custom gradient compiles and stays equal.
        conv, layer = _pair(4, 3, 3, cls=MATMULS)
        x = tf.random.stateless_normal((2, 6, 5, 3), seed=(8, 0))
        compiled = tf.function(lambda x: _outputs_and_gradients(layer, x), jit_compile=True)
        for expected, actual in zip(_outputs_and_gradients(conv, x), compiled(x)):
            self.assertAllClose(actual, expected, atol=1e-4, rtol=1e-4)

    def test_spectral_norm_and_mixed_bfloat16(self):
        wrapped = keras.layers.SpectralNormalization(MATMULS(4, 3, padding="same"))
        reference = keras.layers.SpectralNormalization(keras.layers.Conv2D(4, 3, padding="same"))
        x = tf.random.stateless_normal((2, 6, 6, 3), seed=(4, 1))
        wrapped(x), reference(x)
        reference.set_weights(wrapped.get_weights())
        results = []
        for layer in (wrapped, reference):
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(tf.sin(layer(x, training=True)))
            results.append(tape.gradient(loss, layer.trainable_weights))
        for actual, expected in zip(*results):
            self.assertAllClose(actual, expected, atol=1e-4)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            conv, layer = _pair(8, 3, 16, cls=MATMULS)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        x = tf.random.stateless_normal((2, 8, 8, 16), seed=(5, 1))
        (y, *grads), (y0, *grads0) = (_outputs_and_gradients(layer, x),
                                      _outputs_and_gradients(conv, x))
        self.assertEqual(y.dtype, tf.bfloat16)
        self.assertEqual(grads[1].dtype, tf.float32)  # the kernel's own (float32) gradient
        self.assertAllClose(tf.cast(y, tf.float32), tf.cast(y0, tf.float32), atol=1e-2)
        for actual, expected in zip(grads, grads0):
            self.assertAllClose(tf.cast(actual, tf.float32), tf.cast(expected, tf.float32),
                                atol=0.5, rtol=0.05)

    def test_auto_keeps_tensorflows_filter_gradient_for_bf16_with_amx(self):
        # On a CPU with AMX oneDNN's bf16 filter gradient is 1.9x faster than the matmuls:
        # "auto" decides by compute dtype and CPU when the call is traced.
        previous = keras.mixed_precision.global_policy()
        for amx in (False, True):
            for policy in ("float32", "mixed_bfloat16"):
                with self.subTest(amx=amx, policy=policy), mock.patch.object(
                        decoder_layers, "_cpu_has_amx_bf16", lambda: amx):
                    keras.mixed_precision.set_global_policy(policy)
                    try:
                        layer = MatmulFilterGradConv2D(4, 3, padding="same")
                        layer.build((None, None, None, 3))
                    finally:
                        keras.mixed_precision.set_global_policy(previous)
                    matmuls = not (amx and policy == "mixed_bfloat16")
                    self.assertEqual(layer.uses_matmuls(), matmuls)
                    op_types = {node.op for node in _kernel_gradient_graph(layer)[1]}
                    self.assertEqual("Conv2DBackpropFilter" in op_types, not matmuls)
        # Forced either way, and kept through the config; a wrong value is refused.
        for choice, matmuls in (("matmuls", True), ("conv", False)):
            layer = MatmulFilterGradConv2D(4, 3, padding="same", filter_gradient=choice)
            copy = MatmulFilterGradConv2D.from_config(layer.get_config())
            self.assertEqual((layer.uses_matmuls(), copy.uses_matmuls()), (matmuls, matmuls))
        conv, layer = _pair(4, 3, 3, cls=functools.partial(MatmulFilterGradConv2D,
                                                           filter_gradient="conv"))
        x = tf.random.stateless_normal((2, 5, 6, 3), seed=(3, 3))
        for expected, actual in zip(_outputs_and_gradients(conv, x),
                                    _outputs_and_gradients(layer, x)):
            self.assertAllClose(actual, expected, atol=1e-5)
        with self.assertRaisesRegex(ValueError, "filter_gradient must be one of"):
            MatmulFilterGradConv2D(4, 3, padding="same", filter_gradient="fast")

    def test_deoldify_last_block_uses_it_and_trains_as_conv2d(self):
        for variant in ("artistic", "stable"):
            model = deoldify.deoldify_generator(variant, width=8, blocks=(1, 1, 1, 1))
            names = sorted(layer.name for layer in model._flatten_layers(include_self=False)
                           if isinstance(layer, MatmulFilterGradConv2D))
            self.assertEqual(names, ["layers_10_layers_0_0", "layers_10_layers_1_0"])
        # A whole generator's gradients equal those of the same network with plain Conv2D.
        keras.utils.set_random_seed(0)
        model = deoldify.deoldify_generator("stable", width=8, blocks=(1, 1, 1, 1),
                                            wide_nf=32, spectral_norm=True)
        with mock.patch.object(deoldify, "MatmulFilterGradConv2D", keras.layers.Conv2D):
            plain = deoldify.deoldify_generator("stable", width=8, blocks=(1, 1, 1, 1),
                                                wide_nf=32, spectral_norm=True)
        self.assertFalse(any(isinstance(layer, MatmulFilterGradConv2D)
                             for layer in plain._flatten_layers(include_self=False)))
        plain.set_weights(model.get_weights())
        x = tf.random.stateless_uniform((2, 32, 32, 3), seed=(7, 0), minval=-1, maxval=1)
        grads = []
        for network in (model, plain):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(network(x, training=True) - x))
            grads.append(tape.gradient(loss, network.trainable_weights))
        for actual, expected in zip(*grads):
            self.assertAllClose(actual, expected, atol=1e-5, rtol=1e-4)


@pytest.mark.slow
class Im2colDeOldifyTest(tf.test.TestCase):
    """A converted DeOldify Stable fixture with EVERY decoder conv as Im2colConv2D (the
    threshold patched to 1) but the last block's two (MatmulFilterGradConv2D) still equals REAL
    PyTorch's outputs (tests/fixtures/deoldify) within 1e-4, and exports to SavedModel, TFLite
    float32 and ONNX, each verified against Keras."""

    def test_converted_and_exported_equals_pytorch(self):
        with mock.patch.object(deoldify, "IM2COL_MIN_KERNEL_ELEMENTS", 1):
            model = dw.load_deoldify_generator(os.path.join(FIXTURES, "stable.pth"),
                                               "deoldify_stable")
        convs = [layer for layer in model._flatten_layers(include_self=False)
                 if isinstance(layer, Im2colConv2D)]
        self.assertGreaterEqual(len(convs), 10)
        self.assertEqual(sum(isinstance(layer, MatmulFilterGradConv2D)
                             for layer in model._flatten_layers(include_self=False)), 2)
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
