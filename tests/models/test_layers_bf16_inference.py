"""bfloat16 inference through the fast paths of kgan.models.layers: InstanceNormalization runs the
fused batch-norm kernel and ReflectionPadding2D the concatenations on bf16 inputs (graphs that
never go to TFLite), with the same values as the float32-path formulas; float32 inference keeps
the TFLite-friendly ops (moments formula, MirrorPad)."""

import numpy as np
import tensorflow as tf

from kgan.models.layers import InstanceNormalization, ReflectionPadding2D


def _op_types(layer, dtype, shape=(2, 8, 8, 4)):
    fn = tf.function(lambda x: layer(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec(shape, dtype)).graph
    return {op.type for op in graph.get_operations()}


class Bf16InferencePathTest(tf.test.TestCase):

    def test_instance_norm_bf16_inference_is_fused_and_matches(self):
        rng = np.random.default_rng(0)
        for affine in (False, True):
            layer = InstanceNormalization(affine=affine, dtype="mixed_bfloat16")
            x = tf.cast(rng.normal(3.0, 0.5, (2, 8, 8, 4)).astype(np.float32), tf.bfloat16)
            layer.build(x.shape)
            if affine:
                layer.gamma.assign(rng.uniform(0.5, 1.5, 4).astype(np.float32))
                layer.beta.assign(rng.normal(0, 0.2, 4).astype(np.float32))
            self.assertIn("FusedBatchNormV3", _op_types(layer, tf.bfloat16))
            fast = layer(x, training=False)
            self.assertEqual(fast.dtype, tf.bfloat16)
            # The float32 moments formula on the same (bf16-valued) input.
            reference = InstanceNormalization(affine=affine)
            reference.build(x.shape)
            if affine:
                reference.set_weights(layer.get_weights())
            expected = reference(tf.cast(x, tf.float32), training=False)
            # Only the output's rounding to bfloat16 separates the two.
            self.assertAllClose(tf.cast(fast, tf.float32), expected, atol=3e-2, rtol=1e-2)

    def test_float32_inference_keeps_the_tflite_ops(self):
        norm_ops = _op_types(InstanceNormalization(), tf.float32)
        self.assertNotIn("FusedBatchNormV3", norm_ops)
        self.assertIn("MirrorPad", _op_types(ReflectionPadding2D(1), tf.float32))

    def test_reflection_pad_bf16_inference_copies_exactly(self):
        x = tf.cast(np.random.default_rng(1).normal(size=(1, 6, 7, 3)), tf.bfloat16)
        layer = ReflectionPadding2D(2, dtype="mixed_bfloat16")
        self.assertNotIn("MirrorPad", _op_types(layer, tf.bfloat16, (1, 6, 7, 3)))
        expected = tf.pad(x, [[0, 0], [2, 2], [2, 2], [0, 0]], mode="REFLECT")
        self.assertAllEqual(layer(x, training=False), expected)


if __name__ == "__main__":
    tf.test.main()
