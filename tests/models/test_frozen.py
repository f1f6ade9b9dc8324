"""kgan.models.frozen: the inference copy of a frozen network folds each conv -> batch norm
pair and unwraps spectral norm, computes the same function as the network in inference (a
copy that drops the folded shift or skips the folding breaks the bound), stores its weights
in the compute dtype under mixed precision (no per-use weight casts left in the graph) with
no more bf16 error than the network itself, and refuses what is not a functional model."""

import keras
import numpy as np
import tensorflow as tf
from helpers import randomise_batch_norms

from kgan.models import build_generator
from kgan.models.frozen import inference_copy, is_functional
from kgan.models.normalization import SpectralNorm


def _stable(policy="float32"):
    keras.mixed_precision.set_global_policy(policy)
    try:
        return build_generator("deoldify_stable", width=4, wide_nf=32, spectral_norm=True)
    finally:
        keras.mixed_precision.set_global_policy("float32")


def _kinds(model):
    kinds = {}
    for layer in model.layers:
        kinds[type(layer).__name__] = kinds.get(type(layer).__name__, 0) + 1
    return kinds


class InferenceCopyTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.images = np.random.default_rng(1).uniform(-1, 1, (2, 64, 64, 3)).astype("float32")

    def test_float32_copy_folds_every_conv_batch_norm_pair_and_matches(self):
        model = _stable()
        randomise_batch_norms(model)
        copy = inference_copy(model)
        kinds, before = _kinds(copy), _kinds(model)
        # Every batch norm of the ResNet body and of the pixel shuffles follows its conv;
        # the decoder's conv -> ReLU -> BN ones stay.
        left = [layer for layer in copy.layers
                if isinstance(layer, keras.layers.BatchNormalization)]
        self.assertGreater(kinds["Identity"], 20)
        self.assertEqual(kinds["Identity"] + len(left), before["BatchNorm"])
        for layer in left:
            producer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
            self.assertIsInstance(producer, keras.layers.ReLU)
        self.assertNotIn("SpectralNorm", kinds)
        self.assertFalse(copy.trainable)
        expected = model(self.images, training=False)
        # Float32 rounding, in another order, through ~40 convs: 1e-4 at worst, 1e-6 on mean.
        self.assertAllClose(copy(self.images), expected, atol=1e-3)
        self.assertLess(float(tf.reduce_mean(tf.abs(copy(self.images) - expected))), 1e-5)

        # The bound catches a fold that forgets the shift, and a copy that skips a fold.
        conv = copy.get_layer("conv1")
        conv.bias.assign(tf.zeros_like(conv.bias))
        self.assertGreater(float(tf.reduce_max(tf.abs(copy(self.images) - expected))), 1e-2)
        identity_fold = inference_copy(model)
        norm = model.get_layer("bn1")
        conv = identity_fold.get_layer("conv1")
        conv.kernel.assign(model.get_layer("conv1").kernel)
        conv.bias.assign(tf.zeros_like(conv.bias))
        self.assertTrue(np.any(np.abs(norm.moving_variance.numpy() - 1) > 0.1))
        self.assertGreater(
            float(tf.reduce_max(tf.abs(identity_fold(self.images) - expected))), 1e-2)

    def test_bf16_copy_stores_compute_dtype_weights_and_loses_no_accuracy(self):
        reference = _stable()
        randomise_batch_norms(reference)
        model = _stable("mixed_bfloat16")
        model.set_weights(reference.get_weights())
        copy = inference_copy(model)
        for layer in copy.layers:
            for variable in layer.weights:
                expected = ("float32" if isinstance(layer, keras.layers.BatchNormalization)
                            else "bfloat16")
                self.assertEqual(variable.dtype, expected, f"{layer.name}/{variable.name}")

        def casts_of_variables(net):
            graph = tf.function(lambda x: net(x, training=False)).get_concrete_function(
                tf.TensorSpec((1, 64, 64, 3), tf.float32)).graph
            ops = {op.name: op for op in graph.get_operations()}
            return sum(1 for op in ops.values() if op.type == "Cast"
                       and op.inputs[0].op.type == "ReadVariableOp"
                       and op.inputs[0].dtype == tf.float32
                       and op.outputs[0].dtype == tf.bfloat16)

        self.assertGreater(casts_of_variables(model), 30)  # one per conv kernel, at least
        self.assertEqual(casts_of_variables(copy), 0)

        truth = reference(self.images, training=False)
        error_model = float(tf.reduce_mean(tf.abs(model(self.images, training=False) - truth)))
        error_copy = float(tf.reduce_mean(tf.abs(copy(self.images) - truth)))
        self.assertGreater(error_model, 0.0)
        self.assertLess(error_copy, 1.5 * error_model)

    def test_folds_only_where_the_conv_output_goes_to_one_batch_norm(self):
        inputs = keras.Input((16, 16, 3))
        biased = keras.layers.Conv2D(4, 3, padding="same", name="biased")(inputs)
        folded_a = keras.layers.BatchNormalization(epsilon=0.5, center=False, name="bn_a")(biased)
        bare = keras.layers.Conv2D(4, 1, use_bias=False, name="bare")(folded_a)
        folded_b = keras.layers.BatchNormalization(epsilon=0.5, scale=False, name="bn_b")(bare)
        forked = keras.layers.Conv2D(4, 1, name="forked")(folded_b)
        kept_c = keras.layers.BatchNormalization(name="bn_c")(forked)
        fork = keras.layers.ReLU(name="fork")(forked)
        exposed = keras.layers.Conv2D(4, 1, name="exposed")(kept_c)
        kept_d = keras.layers.BatchNormalization(name="bn_d")(exposed)
        shared = keras.layers.Conv2D(4, 1, name="shared")
        kept_e = keras.layers.BatchNormalization(name="bn_e")(shared(kept_d))
        outputs = keras.layers.Add()([kept_e, shared(fork)])
        model = keras.Model(inputs, [outputs, exposed])
        randomise_batch_norms(model)
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D) and layer.use_bias:
                layer.bias.assign(np.linspace(-1, 1, 4).astype("float32"))
        copy = inference_copy(model)
        self.assertEqual({layer.name for layer in copy.layers
                          if isinstance(layer, keras.layers.Identity)}, {"bn_a", "bn_b"})
        self.assertTrue(copy.get_layer("bare").use_bias)
        x = self.images[:, :16, :16]
        expected = model(x, training=False)
        for got, want in zip(copy(x), expected):
            self.assertAllClose(got, want, atol=1e-5)

        # The bound catches a fold that leaves out epsilon (0.5 here).
        norm, conv = model.get_layer("bn_a"), model.get_layer("biased")
        no_epsilon = norm.gamma / tf.sqrt(norm.moving_variance)
        copy.get_layer("biased").kernel.assign(conv.kernel * no_epsilon)
        self.assertGreater(float(tf.reduce_max(tf.abs(copy(x)[0] - expected[0]))), 1e-2)

    def test_networks_without_batch_norm_copy_unchanged(self):
        model = build_generator("resnet_6blocks", ngf=4)
        copy = inference_copy(model)
        self.assertEqual(_kinds(copy), _kinds(model))
        self.assertAllClose(copy(self.images), model(self.images, training=False), atol=1e-6)

    def test_spectral_norm_stays_where_it_wraps_no_conv(self):
        inputs = keras.Input((8,))
        outputs = SpectralNorm(keras.layers.Dense(4))(inputs)
        model = keras.Model(inputs, outputs)
        copy = inference_copy(model)
        self.assertIn("SpectralNorm", _kinds(copy))
        x = np.ones((2, 8), "float32")
        self.assertAllClose(copy(x), model(x, training=False))

    def test_refuses_models_that_are_not_functional(self):
        with self.assertRaisesRegex(ValueError, "functional"):
            inference_copy(keras.Sequential([keras.layers.Dense(2)]))
        with self.assertRaisesRegex(ValueError, "functional"):
            inference_copy(keras.layers.Dense(2))

        class Subclassed(keras.Model):
            def __init__(self, unserializable):
                super().__init__()
                self.unserializable = unserializable
                self.dense = keras.layers.Dense(2)

            def call(self, x):
                return self.dense(x)

        subclassed = Subclassed(object())
        subclassed(np.ones((1, 3), "float32"))
        self.assertFalse(is_functional(subclassed))
        with self.assertRaisesRegex(ValueError, "functional"):
            inference_copy(subclassed)


if __name__ == "__main__":
    tf.test.main()
