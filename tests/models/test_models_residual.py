"""The ``residual`` generator option (not in the reference): a global skip, output =
clip(input + correction, -1, 1), for the ResNet generators and the reference UNet, with the
reference's networks unchanged when it is off."""

import os

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kgan.models import build_generator, resnet_generator, unet_generator


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
