"""Tests for kgan.models.layers: each layer against a numpy hand computation, plus serialisation."""

import os

import keras
import numpy as np
import tensorflow as tf

from kgan.models.layers import (
    ICNR,
    BatchNorm,
    Blur,
    Cropping2D,
    InstanceNormalization,
    LeakyReLU,
    PixelShuffle,
    ReflectionPadding2D,
    SelfAttention2D,
    SigmoidRange,
    SizeCheck,
    leaky_relu,
    SpectralNorm,
    spectral_norm,
)


def _random(shape, seed=0, offset=0.0, scale=1.0):
    return (np.random.RandomState(seed).randn(*shape) * scale + offset).astype("float32")


def _numpy_instance_norm(x, eps=1e-5):
    x = x.astype("float64")
    mean = x.mean(axis=(1, 2), keepdims=True)
    var = x.var(axis=(1, 2), keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


class ReflectionPadding2DTest(tf.test.TestCase):

    def test_equals_numpy_reflect_pad(self):
        x = _random((2, 8, 11, 3))
        y = ReflectionPadding2D(3)(x)
        expected = np.pad(x, ((0, 0), (3, 3), (3, 3), (0, 0)), mode="reflect")
        self.assertAllEqual(y, expected)

    def test_training_path_values_and_gradient(self):
        layer = ReflectionPadding2D(3)
        x = tf.constant(_random((2, 8, 11, 3), seed=1))
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x, training=True)
            y_ref = tf.pad(x, [[0, 0], [3, 3], [3, 3], [0, 0]], mode="REFLECT")
        self.assertAllEqual(y, y_ref)
        self.assertAllEqual(y, layer(x, training=False))
        upstream = tf.sin(y_ref * 5.0)
        self.assertAllClose(tape.gradient(y, x, output_gradients=upstream),
                            tape.gradient(y_ref, x, output_gradients=upstream), atol=1e-6)
        fn = tf.function(lambda t: ReflectionPadding2D(1)(t, training=True),
                         input_signature=[tf.TensorSpec((None, None, None, 2))])
        x = _random((1, 4, 5, 2), seed=2)
        self.assertAllEqual(fn(x), np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)), mode="reflect"))

    def test_symbolic_shape(self):
        layer = ReflectionPadding2D(2)
        self.assertEqual(layer.compute_output_shape((None, 8, None, 3)), (None, 12, None, 3))
        self.assertEqual(layer(keras.Input((None, None, 3))).shape, (None, None, None, 3))


class InstanceNormalizationTest(tf.test.TestCase):

    def test_matches_numpy_without_affine(self):
        x = _random((2, 6, 10, 4), offset=3.0, scale=2.0)
        layer = InstanceNormalization()
        y = layer(x)
        self.assertEmpty(layer.weights)
        self.assertAllClose(y, _numpy_instance_norm(x), atol=1e-5)

    def test_matches_numpy_with_affine(self):
        x = _random((2, 5, 7, 3), seed=1, offset=-1.0, scale=0.5)
        layer = InstanceNormalization(affine=True)
        layer.build(x.shape)
        gamma = np.array([0.5, 2.0, -1.0], "float32")
        beta = np.array([0.1, -0.3, 1.5], "float32")
        layer.gamma.assign(gamma)
        layer.beta.assign(beta)
        self.assertLen(layer.trainable_weights, 2)
        self.assertAllClose(layer(x), _numpy_instance_norm(x) * gamma + beta, atol=1e-5)

    def test_epsilon_is_pytorch_default(self):
        # A tiny-variance channel shows the epsilon: var 1e-5 gives x / sqrt(2e-5), not x / 1e-3.
        x = np.zeros((1, 2, 2, 1), "float32")
        x[0, :, :, 0] = np.array([[1, -1], [1, -1]]) * np.sqrt(1e-5)
        self.assertAllClose(InstanceNormalization()(x), _numpy_instance_norm(x), rtol=1e-4)
        self.assertAllClose(np.abs(InstanceNormalization()(x)), np.full(x.shape, np.sqrt(0.5)),
                            rtol=1e-4)

    def test_constant_channel_gives_zeros_not_nan(self):
        y = InstanceNormalization()(np.full((1, 4, 4, 2), 7.0, "float32"))
        self.assertAllEqual(y, np.zeros((1, 4, 4, 2)))

    def test_bfloat16_input_stays_accurate(self):
        # A large offset with small spread: statistics in bfloat16 would lose the spread.
        x = tf.cast(_random((2, 8, 8, 4), offset=4.0, scale=0.25), tf.bfloat16)
        layer = InstanceNormalization(dtype="mixed_bfloat16")
        y = layer(x)
        self.assertEqual(y.dtype, tf.bfloat16)
        y = tf.cast(y, tf.float32).numpy()
        self.assertTrue(np.all(np.isfinite(y)))
        expected = _numpy_instance_norm(tf.cast(x, tf.float32).numpy())
        # Only the final rounding to bfloat16 (8 bits of mantissa) separates the two.
        self.assertAllClose(y, expected, atol=2e-2, rtol=1e-2)


def _moments_instance_norm(x, gamma=None, beta=None, eps=1e-5):
    """The moments formula with TF autodiff: the reference for the fused training path."""
    x32 = tf.cast(x, tf.float32)
    mean, variance = tf.nn.moments(x32, axes=[1, 2], keepdims=True)
    y = (x32 - mean) * tf.math.rsqrt(variance + eps)
    if gamma is not None:
        y = y * gamma + beta
    return y


class InstanceNormalizationTrainingPathTest(tf.test.TestCase):
    """training=True runs one FusedBatchNormV3 (batch folded into channels); it must give the
    moments formula's values and gradients, first and second order, for any batch size."""

    def _layer(self, channels, affine, seed=0):
        layer = InstanceNormalization(affine=affine)
        layer.build((None, None, None, channels))
        if affine:
            rng = np.random.RandomState(seed)
            layer.gamma.assign(rng.uniform(0.5, 2.0, channels).astype("float32"))
            layer.beta.assign(rng.uniform(-1.0, 1.0, channels).astype("float32"))
        return layer

    def test_values_match_numpy_and_inference_path(self):
        for batch in (1, 3):
            for affine in (False, True):
                x = _random((batch, 6, 10, 4), seed=batch, offset=3.0, scale=2.0)
                layer = self._layer(4, affine)
                expected = _numpy_instance_norm(x)
                if affine:
                    expected = expected * layer.gamma.numpy() + layer.beta.numpy()
                self.assertAllClose(layer(x, training=True), expected, atol=1e-5)
                self.assertAllClose(layer(x, training=True), layer(x, training=False),
                                    atol=1e-5)

    def test_uses_one_fused_kernel(self):
        layer = InstanceNormalization()
        graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(
            tf.TensorSpec((1, 8, 8, 4))).graph
        kinds = [op.type for op in graph.get_operations()]
        self.assertIn("FusedBatchNormV3", kinds)
        self.assertNotIn("Mean", kinds)
        export = tf.function(lambda x: layer(x, training=False)).get_concrete_function(
            tf.TensorSpec((1, 8, 8, 4))).graph
        self.assertNotIn("FusedBatchNormV3", [op.type for op in export.get_operations()])

    def test_gradients_match_moments_formula(self):
        for batch in (1, 2):
            for affine in (False, True):
                x = tf.constant(_random((batch, 5, 7, 3), seed=10 + batch, offset=-1.0))
                upstream = tf.constant(_random((batch, 5, 7, 3), seed=20 + batch))
                layer = self._layer(3, affine, seed=batch)
                sources = [x] + layer.trainable_weights
                with tf.GradientTape(persistent=True) as tape:
                    tape.watch(x)
                    fused = tf.reduce_sum(layer(x, training=True) * upstream)
                    if affine:
                        ref = _moments_instance_norm(x, layer.gamma, layer.beta)
                    else:
                        ref = _moments_instance_norm(x)
                    ref = tf.reduce_sum(ref * upstream)
                got = tape.gradient(fused, sources)
                want = tape.gradient(ref, sources)
                for g, w in zip(got, want):
                    self.assertAllClose(g, w, atol=1e-5, rtol=1e-4)

    def test_second_order_gradients_match(self):
        # The WGAN-GP penalty differentiates a gradient of the critic: the fused kernel's
        # gradient must itself be differentiable like the moments formula's.
        x = tf.constant(_random((2, 5, 6, 3), seed=30))
        w = tf.constant(_random((1, 1, 3, 3), seed=31))

        def penalty(norm):
            with tf.GradientTape() as outer:
                outer.watch(w)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    y = norm(tf.nn.conv2d(x, w, 1, "VALID"))
                    score = tf.reduce_sum(tf.sin(y))
                grad = inner.gradient(score, x)
                loss = tf.reduce_sum(tf.square(grad))
            return outer.gradient(loss, w)

        layer = InstanceNormalization()
        self.assertAllClose(penalty(lambda t: layer(t, training=True)),
                            penalty(_moments_instance_norm), atol=1e-4, rtol=1e-4)

    def test_bfloat16_training_path_keeps_float32_statistics(self):
        x = tf.cast(_random((1, 8, 8, 4), offset=4.0, scale=0.25), tf.bfloat16)
        layer = InstanceNormalization(dtype="mixed_bfloat16")
        y = layer(x, training=True)
        self.assertEqual(y.dtype, tf.bfloat16)
        expected = _numpy_instance_norm(tf.cast(x, tf.float32).numpy())
        self.assertAllClose(tf.cast(y, tf.float32), expected, atol=2e-2, rtol=1e-2)
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
        grad = tape.gradient(y, x, output_gradients=tf.cast(tf.sin(tf.cast(x, tf.float32) * 9),
                                                            tf.bfloat16))
        self.assertEqual(grad.dtype, tf.bfloat16)
        self.assertTrue(np.all(np.isfinite(tf.cast(grad, tf.float32).numpy())))

    def test_dynamic_batch_in_tf_function(self):
        layer = InstanceNormalization()
        fn = tf.function(lambda x: layer(x, training=True),
                         input_signature=[tf.TensorSpec((None, None, None, 2))])
        x = _random((3, 4, 5, 2), seed=40, offset=1.0)
        self.assertAllClose(fn(x), _numpy_instance_norm(x), atol=1e-5)


class LeakyReLUTest(tf.test.TestCase):

    def test_values_and_gradients_match_tf(self):
        x = tf.constant(np.concatenate([_random((50,), seed=41), [0.0, -0.0]]).astype("float32"))
        for slope in (0.2, 0.0, 1.5):
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                ours = leaky_relu(x, slope)
                ref = tf.nn.leaky_relu(x, slope)
            self.assertAllEqual(ours, ref)
            upstream = tf.range(52, dtype=tf.float32) + 1.0
            self.assertAllEqual(tape.gradient(ours, x, output_gradients=upstream),
                                tape.gradient(ref, x, output_gradients=upstream))

    def test_second_order(self):
        x = tf.constant(_random((20,), seed=42))
        w = tf.constant(1.3)

        def penalty(act):
            with tf.GradientTape() as outer:
                outer.watch(w)
                with tf.GradientTape() as inner:
                    inner.watch(x)
                    score = tf.reduce_sum(tf.square(act(w * x)))
                loss = tf.reduce_sum(tf.square(inner.gradient(score, x)))
            return outer.gradient(loss, w)

        self.assertAllClose(penalty(lambda t: leaky_relu(t, 0.2)),
                            penalty(lambda t: tf.nn.leaky_relu(t, 0.2)), rtol=1e-5)

    def test_layer_config(self):
        layer = LeakyReLU(0.2, name="lrelu")
        clone = LeakyReLU.from_config(layer.get_config())
        self.assertEqual(clone.negative_slope, 0.2)
        x = _random((2, 3, 3, 2), seed=43)
        self.assertAllClose(layer(x), keras.layers.LeakyReLU(0.2)(x))

    def test_conv_bias_lrelu_graph_optimises_without_remapper_error(self):
        # The stock gradient made grappler's remapper fail on conv + bias + LeakyRelu
        # ("fanout .../LeakyReluGrad exist for missing node .../BiasAdd"). With the output-based
        # gradient the graph runs and gives the same gradients.
        conv = keras.layers.Conv2D(4, 3, name="conv")
        x = tf.constant(_random((1, 8, 8, 3), seed=44))
        conv.build(x.shape)

        def grads(act):
            @tf.function
            def step(x):
                with tf.GradientTape() as tape:
                    tape.watch(x)
                    loss = tf.reduce_sum(tf.square(act(conv(x))))
                return tape.gradient(loss, [x] + conv.trainable_weights)
            return step(x)

        for got, want in zip(grads(lambda t: leaky_relu(t, 0.2)),
                             grads(lambda t: tf.nn.leaky_relu(t, 0.2))):
            self.assertAllClose(got, want, atol=1e-5)


class Cropping2DTest(tf.test.TestCase):

    def test_matches_keras_cropping_and_gradient(self):
        x = tf.constant(_random((2, 9, 7, 3), seed=45))
        for cropping in (((1, 0), (1, 0)), ((2, 1), (0, 3))):
            ours, ref = Cropping2D(cropping), keras.layers.Cropping2D(cropping)
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(x)
                y, y_ref = ours(x), ref(x)
            self.assertAllEqual(y, y_ref)
            upstream = tf.sin(y_ref * 3.0)
            self.assertAllEqual(tape.gradient(y, x, output_gradients=upstream),
                                tape.gradient(y_ref, x, output_gradients=upstream))
        symbolic = Cropping2D(((1, 0), (1, 0)))(keras.Input((None, None, 3)))
        self.assertEqual(symbolic.shape, (None, None, None, 3))
        self.assertEqual(Cropping2D(((1, 0), (1, 0)))(keras.Input((9, 7, 3))).shape,
                         (None, 8, 6, 3))

    def test_gradient_is_a_pad(self):
        layer = Cropping2D(((1, 0), (1, 0)))

        @tf.function
        def grad(x):
            with tf.GradientTape() as tape:
                tape.watch(x)
                y = layer(x)
            return tape.gradient(y, x, output_gradients=tf.ones_like(y))

        kinds = [op.type for op in grad.get_concrete_function(
            tf.TensorSpec((1, 5, 5, 2))).graph.get_operations()]
        self.assertNotIn("StridedSliceGrad", kinds)


class SelfAttention2DTest(tf.test.TestCase):

    def test_identity_at_init(self):
        x = _random((2, 6, 5, 16))
        layer = SelfAttention2D()
        self.assertAllEqual(layer(x), x)
        self.assertEqual(float(layer.gamma), 0.0)

    def test_matches_numpy_attention(self):
        x = _random((2, 4, 3, 16), seed=2)
        layer = SelfAttention2D()
        layer.build(x.shape)
        layer.gamma.assign(0.7)
        # query and key start different (a shared initialiser instance would repeat its values).
        self.assertNotAllClose(layer.query.kernel, layer.key.kernel)
        q = x.reshape(2, 12, 16) @ layer.query.kernel.numpy()[0, 0]
        k = x.reshape(2, 12, 16) @ layer.key.kernel.numpy()[0, 0]
        v = x.reshape(2, 12, 16) @ layer.value.kernel.numpy()[0, 0]
        self.assertEqual(q.shape, (2, 12, 2))  # query/key have channels // 8
        scores = q @ k.transpose(0, 2, 1)
        attention = np.exp(scores - scores.max(-1, keepdims=True))
        attention /= attention.sum(-1, keepdims=True)
        expected = 0.7 * (attention @ v).reshape(x.shape) + x
        self.assertAllClose(layer(x), expected, atol=1e-5)

    def test_gradients(self):
        x = tf.constant(_random((1, 4, 4, 16), seed=3))
        layer = SelfAttention2D(spectral_norm=True)
        layer.build(x.shape)

        def grads():
            with tf.GradientTape() as tape:
                loss = tf.reduce_sum(layer(x, training=True) * tf.sin(x))
            return dict(zip([w.path for w in layer.trainable_weights],
                            tape.gradient(loss, layer.trainable_weights)))

        # At init gamma is 0: only gamma (and value, through nothing) can learn; query and key
        # receive exactly zero gradient until gamma moves.
        at_init = grads()
        gamma_path = layer.gamma.path
        self.assertNotEqual(float(tf.abs(at_init[gamma_path])), 0.0)
        for path, grad in at_init.items():
            self.assertIsNotNone(grad, path)
            if path != gamma_path:
                self.assertAllEqual(grad, tf.zeros_like(grad))
        layer.gamma.assign(0.5)
        for path, grad in grads().items():
            self.assertGreater(float(tf.reduce_max(tf.abs(grad))), 0.0, path)

    def test_bf16_softmax_stays_bf16_and_matches_float32(self):
        x = _random((2, 6, 6, 16), seed=7)
        reference = SelfAttention2D()
        reference.build(x.shape)
        reference.gamma.assign(1.0)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            layer = SelfAttention2D()
            layer.build(x.shape)
        finally:
            keras.mixed_precision.set_global_policy(previous)
        layer.set_weights(reference.get_weights())
        fn = tf.function(lambda t: layer(t))
        graph = fn.get_concrete_function(tf.TensorSpec(x.shape)).graph
        softmax = [op for op in graph.get_operations() if op.type == "Softmax"]
        self.assertLen(softmax, 1)
        # No float32 copy of the (N, HW, HW) scores: the softmax reads the bf16 matmul's output.
        self.assertEqual(softmax[0].inputs[0].dtype, tf.bfloat16)
        expected = reference(x).numpy()
        self.assertAllClose(tf.cast(fn(x), tf.float32), expected, atol=0.05)
        self.assertGreater(np.abs(expected - x).max(), 0.2)  # the attention term is not tiny

    def test_a_bf16_model_saved_and_loaded_under_float32_runs_eagerly(self):
        # Its query/key/value convs follow the layer's policy, not the global one at load time
        # (they used to compute in float32 beside a bf16 input: a dtype error when called).
        x = _random((1, 4, 4, 16), seed=4)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            for spectral_norm in (False, True):
                inputs = keras.Input((4, 4, 16))
                layer = SelfAttention2D(spectral_norm=spectral_norm)
                model = keras.Model(inputs, layer(inputs))
                layer.gamma.assign(0.5)
                path = os.path.join(self.get_temp_dir(), f"attention_{spectral_norm}.keras")
                model.save(path)
                expected = model(x)
                keras.mixed_precision.set_global_policy("float32")
                loaded = keras.saving.load_model(path, safe_mode=True)
                attention = loaded.layers[-1]
                self.assertEqual(attention.value.dtype_policy.name, "mixed_bfloat16")
                self.assertAllClose(loaded(x), expected, atol=1e-2)
                keras.mixed_precision.set_global_policy("mixed_bfloat16")
        finally:
            keras.mixed_precision.set_global_policy(previous)


class ICNRPixelShuffleTest(tf.test.TestCase):

    def test_icnr_kernel_repeats_each_filter(self):
        kernel = ICNR(scale=2)((1, 1, 8, 12)).numpy()
        for sub in range(1, 4):
            self.assertAllEqual(kernel[..., :3], kernel[..., 3 * sub:3 * sub + 3])
        self.assertGreater(kernel[..., :3].std(), 0.0)
        with self.assertRaisesRegex(ValueError, "divisible by scale\\*\\*2=4"):
            ICNR(scale=2)((1, 1, 8, 6))

    def test_pixel_shuffle_has_equal_subpixels_at_init(self):
        x = _random((2, 5, 7, 8), seed=4)
        layer = PixelShuffle(3, scale=2)
        y = layer(x).numpy()
        self.assertEqual(y.shape, (2, 10, 14, 3))
        self.assertGreater(y.std(), 0.0)
        # Every 2x2 output block is constant per channel: nearest-neighbour upsampling.
        corner = y[:, 0::2, 0::2]
        for dy, dx in ((0, 1), (1, 0), (1, 1)):
            self.assertAllClose(y[:, dy::2, dx::2], corner, atol=1e-6)
        self.assertEqual(layer.compute_output_shape((None, None, 4, 8)), (None, None, 8, 3))

    def test_icnr_serialises(self):
        init = ICNR(scale=3, initializer="glorot_uniform")
        restored = keras.initializers.deserialize(keras.initializers.serialize(init))
        self.assertIsInstance(restored, ICNR)
        self.assertEqual(restored.scale, 3)
        self.assertIsInstance(restored.initializer, keras.initializers.GlorotUniform)


class BlurTest(tf.test.TestCase):

    def test_replicate_pad_then_2x2_average(self):
        x = _random((2, 5, 6, 3), seed=5)
        y = Blur()(x).numpy()
        padded = np.pad(x, ((0, 0), (1, 0), (1, 0), (0, 0)), mode="edge")
        expected = (padded[:, :-1, :-1] + padded[:, 1:, :-1] + padded[:, :-1, 1:]
                    + padded[:, 1:, 1:]) / 4
        self.assertEqual(y.shape, x.shape)
        self.assertAllClose(y, expected, atol=1e-6)

    def test_constant_image_unchanged(self):
        x = np.full((1, 4, 4, 2), -0.25, "float32")
        self.assertAllClose(Blur()(x), x)

    def test_copy_padding_path_values_gradient_and_ops(self):
        # Training and bf16 inference pad by copies (mirror_pad) with MirrorPad's gradient;
        # float32 inference keeps one MirrorPad for TFLite.
        layer = Blur()
        x = tf.constant(_random((2, 5, 6, 3), seed=6))

        def reference(t):
            padded = tf.pad(t, [[0, 0], [1, 0], [1, 0], [0, 0]], mode="SYMMETRIC")
            return tf.nn.avg_pool2d(padded, 2, 1, "VALID")

        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = layer(x, training=True)
            y_ref = reference(x)
        self.assertAllClose(y, y_ref, atol=1e-6)
        upstream = tf.sin(y_ref * 5.0)
        self.assertAllClose(tape.gradient(y, x, output_gradients=upstream),
                            tape.gradient(y_ref, x, output_gradients=upstream), atol=1e-6)
        bf16 = tf.cast(x, tf.bfloat16)
        bf16_layer = Blur(dtype="mixed_bfloat16")
        self.assertEqual(bf16_layer(bf16).dtype, tf.bfloat16)
        self.assertAllEqual(bf16_layer(bf16), reference(bf16))

        def forward_ops(dtype, training):
            blur = bf16_layer if dtype == tf.bfloat16 else layer
            fn = tf.function(lambda t: blur(t, training=training))
            graph = fn.get_concrete_function(tf.TensorSpec((1, 4, 4, 2), dtype)).graph
            return {op.type for op in graph.get_operations()}

        self.assertNotIn("MirrorPad", forward_ops(tf.float32, True))
        self.assertNotIn("MirrorPad", forward_ops(tf.bfloat16, False))
        self.assertIn("MirrorPad", forward_ops(tf.float32, False))


class SigmoidRangeTest(tf.test.TestCase):

    def test_values_and_float32_output(self):
        x = np.linspace(-20, 20, 24, dtype="float32").reshape(1, 2, 4, 3)
        y = SigmoidRange(-3.0, 3.0)(tf.cast(x, tf.bfloat16))
        self.assertEqual(y.dtype, tf.float32)
        expected = 6.0 / (1.0 + np.exp(-tf.cast(tf.cast(x, tf.bfloat16), tf.float32))) - 3.0
        self.assertAllClose(y, expected, atol=1e-5)
        self.assertAllInRange(y, -3.0, 3.0)


class SizeCheckTest(tf.test.TestCase):

    def test_passes_good_and_dynamic_sizes(self):
        x = _random((1, 8, 12, 3))
        self.assertAllEqual(SizeCheck(4, "net")(x), x)
        self.assertEqual(SizeCheck(4, "net")(keras.Input((None, None, 3))).shape,
                         (None, None, None, 3))

    def test_names_the_multiple(self):
        with self.assertRaisesRegex(ValueError, "net needs image sides that are multiples of "
                                                "4, but the width is 10.*e.g. 8"):
            SizeCheck(4, "net")(np.zeros((1, 8, 10, 3), "float32"))

    def test_names_the_minimum(self):
        with self.assertRaisesRegex(ValueError, "critic needs image sides of at least 49"):
            SizeCheck(1, "critic", minimum=49)(np.zeros((1, 48, 64, 3), "float32"))


class BatchNormTest(tf.test.TestCase):

    def _pair(self, **kwargs):
        ours, theirs = BatchNorm(momentum=0.8, **kwargs), keras.layers.BatchNormalization(
            momentum=0.8, **kwargs)
        ours.build((None, None, None, 5)), theirs.build((None, None, None, 5))
        rng = np.random.default_rng(0)
        weights = [rng.normal(size=w.shape).astype("float32") for w in theirs.get_weights()]
        weights[-1] = np.abs(weights[-1]) + 0.5  # the moving variance
        ours.set_weights(weights), theirs.set_weights(weights)
        return ours, theirs

    def test_training_matches_keras_outputs_gradients_and_moving_statistics(self):
        for kwargs in ({}, {"center": False, "scale": False}):
            ours, theirs = self._pair(**kwargs)
            results = []
            for layer in (ours, theirs):
                grads = []
                for seed in range(3):
                    x = tf.constant(_random((3, 4, 6, 5), seed=seed, offset=2.0, scale=3.0))
                    with tf.GradientTape() as tape:
                        tape.watch(x)
                        y = layer(x, training=True)
                        loss = tf.reduce_sum(y * tf.sin(y))
                    grads.append(tape.gradient(loss, [x, *layer.trainable_weights]))
                results.append((y, grads, layer.moving_mean, layer.moving_variance,
                                layer(x, training=False)))
            (y, grads, mean, variance, inferred), expected = results
            self.assertAllClose(y, expected[0], atol=1e-5)
            for mine, keras_grads in zip(grads, expected[1]):
                for a, b in zip(mine, keras_grads):
                    self.assertAllClose(a, b, atol=1e-4, rtol=1e-4)
            self.assertAllClose(mean, expected[2], atol=1e-6)
            self.assertAllClose(variance, expected[3], rtol=1e-5)  # biased, as Keras
            self.assertAllClose(inferred, expected[4], atol=1e-5)
        graph = tf.function(lambda x: ours(x, training=True)).get_concrete_function(
            tf.TensorSpec((2, 4, 4, 5))).graph
        self.assertIn("FusedBatchNormV3", {op.type for op in graph.get_operations()})

    def test_mixed_bfloat16_close_to_float32(self):
        ours, theirs = self._pair()
        x = _random((2, 8, 8, 5), seed=4, scale=2.0)
        expected = theirs(x, training=True)
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            inputs = keras.Input((8, 8, 5))
            layer = BatchNorm(momentum=0.8)
            model = keras.Model(inputs, layer(inputs))
        finally:
            keras.mixed_precision.set_global_policy(previous)
        layer.set_weights(ours.get_weights())
        y = model(x, training=True)
        self.assertEqual(y.dtype, "bfloat16")
        self.assertEqual(layer.moving_mean.dtype, "float32")
        self.assertAllClose(tf.cast(y, tf.float32), expected, atol=0.05)
        self.assertAllClose(layer.moving_mean, theirs.moving_mean, atol=0.02)


class SpectralNormTest(tf.test.TestCase):

    def test_largest_singular_value_is_one_during_training(self):
        conv = keras.layers.Conv2D(8, 3, name="conv")
        layer = spectral_norm(conv, power_iterations=1)
        self.assertEqual(layer.name, "conv_sn")
        x = tf.constant(_random((2, 6, 6, 4), seed=6))
        layer.build(x.shape)
        conv.kernel.assign(_random((3, 3, 4, 8), seed=7, scale=0.7))

        def largest_singular_value():
            return np.linalg.svd(conv.kernel.numpy().reshape(-1, 8), compute_uv=False)[0]

        self.assertGreater(largest_singular_value(), 3.0)
        layer(x, training=False)
        self.assertGreater(largest_singular_value(), 3.0)  # inference leaves the kernel alone
        optimizer = keras.optimizers.SGD(0.05)
        for _ in range(8):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(layer(x, training=True) - 1.0))
            optimizer.apply_gradients(zip(tape.gradient(loss, layer.trainable_weights),
                                          layer.trainable_weights))
        layer(x, training=True)
        self.assertAllClose(largest_singular_value(), 1.0, atol=1e-2)

    def test_same_normalised_kernel_as_keras_in_float32(self):
        x = tf.constant(_random((2, 6, 6, 4), seed=1))
        ours, theirs = (wrapper(keras.layers.Conv2D(8, 3)) for wrapper in
                        (SpectralNorm, keras.layers.SpectralNormalization))
        ours(x), theirs(x)
        ours.set_weights([_random(w.shape, seed=i) for i, w in enumerate(ours.get_weights())])
        theirs.set_weights(ours.get_weights())
        for _ in range(3):
            self.assertAllClose(ours(x, training=True), theirs(x, training=True), atol=1e-5)
        for mine, keras_weight in zip(ours.get_weights(), theirs.get_weights()):
            self.assertAllClose(mine, keras_weight, rtol=1e-5, atol=1e-6)
        self.assertIsInstance(ours, keras.layers.SpectralNormalization)  # interop finds it

    def test_mixed_bfloat16_keeps_the_float32_kernel(self):
        # Keras's wrapper normalises through the bf16 autocast and stores a bf16-rounded
        # kernel: kernel / kernel_before is then not one constant 1 / sigma.
        previous = keras.mixed_precision.global_policy()
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            spreads = {}
            for wrapper in (SpectralNorm, keras.layers.SpectralNormalization):
                inputs = keras.Input((6, 6, 4))
                layer = wrapper(keras.layers.Conv2D(8, 3))
                model = keras.Model(inputs, layer(inputs))
                layer.kernel.assign(_random((3, 3, 4, 8), seed=2))
                before = layer.kernel.numpy()
                y = model(_random((2, 6, 6, 4), seed=3), training=True)
                ratio = layer.kernel.numpy() / before
                spreads[wrapper] = ratio.max() / ratio.min() - 1
                self.assertEqual(y.dtype, "bfloat16")
                self.assertEqual(layer.kernel.dtype, "float32")
        finally:
            keras.mixed_precision.set_global_policy(previous)
        self.assertLess(spreads[SpectralNorm], 1e-6)
        self.assertGreater(spreads[keras.layers.SpectralNormalization], 1e-3)

    def test_a_zero_kernel_stays_zero(self):
        layer = SpectralNorm(keras.layers.Conv2D(8, 3, kernel_initializer="zeros"))
        y = layer(tf.ones((1, 5, 5, 2)), training=True)
        self.assertAllEqual(layer.kernel, tf.zeros_like(layer.kernel))
        self.assertTrue(np.all(np.isfinite(y)) and np.all(np.isfinite(layer.vector_u)))


class LayerSerialisationTest(tf.test.TestCase):

    def test_keras_file_round_trip_with_safe_mode(self):
        inputs = keras.Input((None, None, 3))
        x = SizeCheck(4, "tiny", minimum=8)(inputs)
        x = ReflectionPadding2D(1)(x)
        x = keras.layers.Conv2D(16, 3)(x)
        x = InstanceNormalization(affine=True)(x)
        x = LeakyReLU(0.2)(x)
        x = Cropping2D(((1, 0), (1, 0)))(x)
        x = SelfAttention2D(spectral_norm=True)(x)
        x = PixelShuffle(4, scale=2, activation="relu")(x)
        x = Blur()(x)
        outputs = SigmoidRange(-1.0, 1.0)(x)
        model = keras.Model(inputs, outputs)
        for layer in model.layers:
            if isinstance(layer, SelfAttention2D):
                layer.gamma.assign(0.3)
        path = os.path.join(self.get_temp_dir(), "layers.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        x = _random((1, 8, 12, 3), seed=8)
        self.assertAllEqual(loaded(x), model(x))
        self.assertAllClose(loaded(x, training=True), model(x, training=True))
        self.assertEqual(loaded.layers[1].minimum, 8)


if __name__ == "__main__":
    tf.test.main()
