"""Every generator converts to TFLite (builtin ops only) and matches its Keras output.

`tf.lite.TFLiteConverter.from_keras_model` is reported broken for some Keras 3 models on
TF >= 2.16 (tensorflow/tensorflow#63867); on TF 2.21 / Keras 3.15 it converts all of kgan's
generators correctly, which these tests keep checking. The networks take a dynamic
(None, None, 3) input, so each is wrapped in a fixed-size input before conversion.
"""

import keras
import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter

from kgan.models import build_generator, unet_generator


def _fixed_size(model, height, width):
    inputs = keras.Input((height, width, model.input.shape[-1]), batch_size=1)
    return keras.Model(inputs, model(inputs, training=False))


def _run_tflite(flatbuffer, x):
    interpreter = Interpreter(model_content=flatbuffer)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


class GeneratorTFLiteTest(tf.test.TestCase):

    def assert_tflite_matches(self, model, height, width):
        x = np.random.RandomState(0).uniform(-1, 1, (1, height, width, 3)).astype("float32")
        model(x, training=True)  # moves batch-norm statistics off their initial values
        expected = model(x, training=False).numpy()
        # Kaiming init keeps the outputs well away from 0, so the comparison means something.
        self.assertGreater(expected.std(), 0.05)
        converter = tf.lite.TFLiteConverter.from_keras_model(_fixed_size(model, height, width))
        actual = _run_tflite(converter.convert(), x)
        self.assertEqual(actual.shape, expected.shape)
        self.assertAllClose(actual, expected, atol=1e-4, rtol=0)

    def test_resnet_9blocks(self):
        self.assert_tflite_matches(
            build_generator("resnet_9blocks", ngf=4, init_type="kaiming"), 32, 48)

    def test_resnet_6blocks(self):
        self.assert_tflite_matches(
            build_generator("resnet_6blocks", ngf=4, init_type="kaiming"), 32, 48)

    def test_unet_128(self):
        self.assert_tflite_matches(
            build_generator("unet_128", ngf=4, norm="batch", use_dropout=True,
                            init_type="kaiming"), 128, 128)

    def test_unet_256(self):
        self.assert_tflite_matches(
            build_generator("unet_256", ngf=4, norm="batch", use_dropout=True,
                            init_type="kaiming"), 256, 256)

    def test_restoration_unet(self):
        model = unet_generator(num_downs=5, ngf=8, self_attention=True,
                               upsample="pixel_shuffle", y_range=(-3.0, 3.0), last_cross=True,
                               init_type="kaiming")
        model.get_layer("self_attention").gamma.assign(0.5)  # not the identity
        self.assert_tflite_matches(model, 64, 96)


if __name__ == "__main__":
    tf.test.main()
