"""Tests for kgan.benchmarking.profiling: op types are sorted into the right kinds, and a real
profiled training step's time lands in the conv forward and both conv gradients (a matmul-only
function's does not), with the shares adding up to the op time."""

import doctest

import keras
import tensorflow as tf

from kgan.benchmarking import profiling


def _conv_training_step():
    model = keras.Sequential([keras.Input((16, 16, 4)), keras.layers.Conv2D(8, 3, padding="same"),
                              keras.layers.ReLU(), keras.layers.Conv2D(8, 3, padding="same")])
    optimizer = keras.optimizers.Adam()
    x = tf.random.normal((2, 16, 16, 4))

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x)))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))

    step()
    return step


class ProfilingTest(tf.test.TestCase):

    def test_op_kinds(self):
        expected = {
            "Conv2DBackpropFilter": "conv filter gradient",
            "_MklNativeConv2DBackpropFilterWithBias": "conv filter gradient",
            "Conv2DBackpropInput": "conv input gradient",
            "_FusedConv2D": "conv forward", "PadWithFusedConv2D": "conv forward",
            "Conv2D": "conv forward", "DepthwiseConv2dNative": "conv forward",
            "BatchMatMulV2": "matmul", "_MklMatMul": "matmul", "Cast": "cast",
            "FusedBatchNormGradV3": "normalisation", "ResourceApplyAdam": "optimizer",
            "Relu": "other", "MirrorPadGrad": "other",
        }
        for op_type, kind in expected.items():
            self.assertEqual(profiling.op_kind(op_type), kind, op_type)

    def test_a_conv_training_step_is_split_into_conv_kinds(self):
        step = _conv_training_step()
        split = profiling.split_by_kind(profiling.profile(step, steps=2), steps=2)
        kinds = split["kinds"]
        for kind in ("conv forward", "conv input gradient", "conv filter gradient",
                     "optimizer"):
            self.assertGreater(kinds[kind]["ms"], 0, kind)
        self.assertEqual(kinds["matmul"]["ms"], 0)
        self.assertAllClose(sum(v["share"] for v in kinds.values()), 1.0)
        self.assertAllClose(sum(v["ms"] for v in kinds.values()), split["op_ms_per_step"])
        self.assertGreater(split["op_ms_per_step"], 0)
        self.assertNotEmpty(split["top_types"])
        self.assertTrue(all(len(row) == 4 for row in split["top_types"]))

    def test_a_matmul_function_has_no_conv_time(self):
        a = tf.random.normal((256, 256))
        matmul = tf.function(lambda: tf.matmul(a, a))
        matmul()
        kinds = profiling.split_by_kind(profiling.profile(matmul, steps=3), steps=3)["kinds"]
        self.assertGreater(kinds["matmul"]["share"], 0.5)
        for kind in ("conv forward", "conv input gradient", "conv filter gradient"):
            self.assertEqual(kinds[kind]["ms"], 0, kind)

    def test_example_runs(self):
        failed, attempted = doctest.testmod(profiling, extraglobs={"profile": profiling.profile},
                                            optionflags=doctest.ELLIPSIS)[:2]
        self.assertGreaterEqual(attempted, 5)
        self.assertEqual(failed, 0)
