"""The ``residual`` generator option (not in the reference): a global skip, output =
clip(input + correction, -1, 1), for the ResNet generators and the reference UNet, with the
reference's networks unchanged when it is off."""

import os

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kgan.models import build_generator, resnet_generator, unet_generator
from kgan.models.generators import _clipped_residual
from kgan.training.trainers.base import adam


def _images(n, h, w, seed=0, scale=1.0):
    rng = np.random.RandomState(seed)
    return (rng.uniform(-1, 1, (n, h, w, 3)) * scale).astype("float32")


def _count(model):
    return sum(int(np.prod(w.shape)) for w in model.trainable_weights)


def _perturb(model, layer_name, seed=1, scale=0.3):
    """Gives ``layer_name`` random weights so that the correction is large (clipped)."""
    rng = np.random.RandomState(seed)
    layer = model.get_layer(layer_name)
    layer.set_weights([rng.normal(0, scale, w.shape).astype("float32")
                       for w in layer.get_weights()])


class ResidualResnetTest(tf.test.TestCase):

    def test_off_by_default_and_same_parameter_count(self):
        plain = build_generator("resnet_9blocks", ngf=8)
        residual = build_generator("resnet_9blocks", ngf=8, residual=True)
        self.assertEqual(_count(plain), _count(residual))
        self.assertIn("tanh", [layer.name for layer in plain.layers])
        self.assertNotIn("residual", [layer.name for layer in plain.layers])
        self.assertNotIn("tanh", [layer.name for layer in residual.layers])

    def test_starts_as_the_identity(self):
        model = build_generator("resnet_6blocks", ngf=4, residual=True)
        x = _images(2, 32, 40)
        self.assertAllClose(model(x, training=False), x, atol=1e-6)

    def test_output_is_the_clipped_sum_of_input_and_correction(self):
        model = resnet_generator(n_blocks=2, ngf=4, residual=True)
        _perturb(model, "out")
        probe = keras.Model(model.input, [model.get_layer("out").output, model.output])
        x = _images(1, 32, 32, seed=3)
        correction, y = (t.numpy() for t in probe(x, training=False))
        self.assertGreater(np.mean(np.abs(x + correction) > 1), 0.05)  # the clip matters
        self.assertAllClose(y, np.clip(x + correction, -1, 1), atol=1e-5)
        self.assertAllInRange(y, -1.0, 1.0)

    def test_clip_has_the_gradient_of_clip_by_value(self):
        # The builtin-layer clip must train like a plain tf.clip_by_value skip (issue 24's
        # peer): gradient 1 where input + correction is inside [-1, 1], 0 outside.
        x_in = keras.Input((None, None, 3))
        c_in = keras.Input((None, None, 3))
        head = keras.Model([x_in, c_in], _clipped_residual(x_in, c_in))
        x = tf.constant(_images(2, 8, 8, seed=7))
        c = tf.constant(_images(2, 8, 8, seed=8, scale=1.5))
        self.assertGreater(float(tf.reduce_mean(tf.cast(tf.abs(x + c) > 1, tf.float32))), 0.2)
        with tf.GradientTape(persistent=True) as tape:
            tape.watch([x, c])
            ours = head([x, c])
            theirs = tf.clip_by_value(x + c, -1.0, 1.0)
            weight = tf.constant(_images(2, 8, 8, seed=9))
            loss_ours, loss_theirs = (tf.reduce_sum(weight * y) for y in (ours, theirs))
        self.assertAllClose(ours, theirs, atol=1e-6)
        for t in (x, c):
            self.assertAllClose(tape.gradient(loss_ours, t), tape.gradient(loss_theirs, t))

    def test_every_layer_learns_from_the_second_step(self):
        # The zero-initialised last conv makes the network the identity at step 0, where only
        # that conv gets a gradient; after one Adam step (each weight moves by about the lr)
        # the gradient reaches every layer, and Adam's normalised step moves them at full
        # rate from then on although the gradient through the small last conv is small.
        keras.utils.set_random_seed(0)
        model = resnet_generator(n_blocks=2, ngf=4, residual=True)
        x = _images(1, 32, 32, seed=10, scale=0.8)
        target = np.clip(x * 0.7 + 0.1, -1, 1)  # a colour change away from the identity

        def gradients():
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.abs(model(x, training=True) - target))
            return dict(zip([v.path for v in model.trainable_variables],
                            tape.gradient(loss, model.trainable_variables)))

        first = gradients()
        moving = sorted(p for p, g in first.items() if float(tf.reduce_max(tf.abs(g))) > 0)
        self.assertEqual([p.split("/")[0] for p in moving], ["out", "out"])
        optimizer = adam(2e-4)
        optimizer.apply_gradients([(first[v.path], v) for v in model.trainable_variables])
        before = {v.path: v.numpy() for v in model.trainable_variables}
        second = gradients()
        optimizer.apply_gradients([(second[v.path], v) for v in model.trainable_variables])
        # Kernels: a bias followed by instance norm is inert (the norm removes it) anyway.
        kernels = [v for v in model.trainable_variables if v.path.endswith("kernel")]
        self.assertLen(kernels, 1 + 2 + 2 * 2 + 2 + 1)  # c7s1, down, blocks, up, out
        for v in kernels:
            self.assertGreater(float(tf.reduce_max(tf.abs(second[v.path]))), 0.0, v.path)
            step = np.abs(v.numpy() - before[v.path]).max()
            self.assertGreater(step, 0.5 * 2e-4, v.path)  # a full Adam step, not a tiny one

    def test_channel_mismatch_is_an_error(self):
        with self.assertRaisesRegex(ValueError, "as many input as output channels"):
            build_generator("resnet_6blocks", ngf=4, residual=True, output_channels=1)

    def test_saves_loads_safe_mode_and_converts_to_builtin_tflite(self):
        model = resnet_generator(n_blocks=2, ngf=4, residual=True)
        _perturb(model, "out", scale=0.1)
        x = _images(1, 32, 32, seed=5)
        expected = model(x, training=False).numpy()
        path = os.path.join(self.get_temp_dir(), "residual.keras")
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
        self.assertAllEqual(loaded(x, training=False), expected)

        inputs = keras.Input((32, 32, 3), batch_size=1)
        converter = tf.lite.TFLiteConverter.from_keras_model(
            keras.Model(inputs, model(inputs, training=False)))
        interpreter = Interpreter(model_content=converter.convert())
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
        interpreter.invoke()
        actual = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        self.assertAllClose(actual, expected, atol=1e-4, rtol=0)


class ResidualUnetTest(tf.test.TestCase):

    def test_reference_unet_residual_is_the_clipped_sum(self):
        model = unet_generator(num_downs=5, ngf=4, residual=True)
        self.assertEqual(_count(model), _count(unet_generator(num_downs=5, ngf=4)))
        _perturb(model, "up0", scale=0.5)
        probe = keras.Model(model.input, [model.get_layer("up0").output, model.output])
        x = _images(1, 32, 64, seed=2)
        correction, y = (t.numpy() for t in probe(x, training=False))
        self.assertAllClose(y, np.clip(x + correction, -1, 1), atol=1e-5)

    def test_restoration_unet_residual_is_unchanged(self):
        # With last_cross (restoration) the output stays input + correction, unclipped.
        model = unet_generator(num_downs=5, ngf=4, last_cross=True, residual=True)
        x = _images(1, 32, 32, seed=4, scale=3.0)  # beyond [-1, 1]: not clipped
        self.assertAllClose(model(x, training=False), x, atol=1e-6)
