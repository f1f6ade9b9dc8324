"""Tests for kgan.training.trainers.base: the fused Adam update against Keras' Adam."""

import keras
import numpy as np
import tensorflow as tf

from kgan.training import losses
from kgan.training.schedules import LinearDecay
from kgan.training.trainers.base import Adam, adam
from kgan.training.trainers.cyclegan import build_cyclegan


def _variables(seed):
    rng = np.random.RandomState(seed)
    return [keras.Variable(rng.randn(*shape).astype("float32"), name=f"w{i}")
            for i, shape in enumerate([(3, 3, 4, 5), (5,), (7,)])]


def _run(optimizer, variables, steps, jit_compile=False):
    optimizer.build(variables)

    @tf.function(jit_compile=jit_compile)
    def step(i):
        grads = [tf.sin(v * (tf.cast(i, tf.float32) + 1.0)) for v in variables]
        optimizer.apply_gradients(zip(grads, variables))

    for i in range(steps):
        step(tf.constant(i))
    return [v.numpy() for v in variables]


class FusedAdamTest(tf.test.TestCase):

    def test_matches_keras_adam(self):
        for jit_compile in (False, True):
            schedule = lambda: LinearDecay(2e-2, 2, 2, 2)
            ours = _run(Adam(schedule(), beta_1=0.5), _variables(0), 6, jit_compile)
            ref = _run(keras.optimizers.Adam(schedule(), beta_1=0.5), _variables(0), 6,
                       jit_compile)
            for a, b in zip(ours, ref):
                self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
            self.assertNotAllClose(ours[0], _variables(0)[0].numpy())

    def test_uses_one_kernel_per_variable(self):
        variables = _variables(1)
        optimizer = Adam(1e-3)
        optimizer.build(variables)
        fn = tf.function(lambda: optimizer.apply_gradients(
            zip([tf.ones_like(v) for v in variables], variables)))
        kinds = [op.type for op in fn.get_concrete_function().graph.get_operations()]
        self.assertEqual(kinds.count("ResourceApplyAdam"), len(variables))
        self.assertNotIn("Sqrt", kinds)

    def test_amsgrad_and_loss_scaling_keep_working(self):
        ours = _run(Adam(1e-2, amsgrad=True), _variables(2), 3)
        ref = _run(keras.optimizers.Adam(1e-2, amsgrad=True), _variables(2), 3)
        for a, b in zip(ours, ref):
            self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
        scaled = adam(1e-2, mixed_float16=True)
        self.assertIsInstance(scaled, keras.optimizers.LossScaleOptimizer)
        self.assertIsInstance(scaled.inner_optimizer, Adam)
        ours = _run(scaled, _variables(3), 3)
        ref = _run(keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam(1e-2, beta_1=0.5)),
                   _variables(3), 3)
        for a, b in zip(ours, ref):
            self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)

    def test_serialises(self):
        optimizer = Adam(3e-4, beta_1=0.5)
        clone = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
        self.assertIsInstance(clone, Adam)
        self.assertEqual(clone.beta_1, 0.5)


class SequentialGradientsTest(tf.test.TestCase):

    def test_cyclegan_parts_sum_to_the_one_tape_gradient(self):
        keras.utils.set_random_seed(0)
        trainer = build_cyclegan(ngf=4, ndf=4, crop_size=32, pool_size=0,
                                 generator="resnet_6blocks")
        rng = np.random.RandomState(0)
        real_a, real_b = (tf.constant(rng.uniform(-1, 1, (2, 32, 32, 3)).astype("float32"))
                          for _ in range(2))
        g_vars = trainer.optimizer_variables()[0][1]

        @tf.function
        def both():
            with tf.GradientTape() as tape:
                terms, _, _ = trainer._generator_losses(real_a, real_b, training=True)
                loss = losses.reduce_global(tf.add_n(list(terms.values())), 2)
            one = tape.gradient(loss, g_vars)
            parts = [lambda a, b: trainer._cycle_terms_a(a, True),
                     lambda a, b: trainer._cycle_terms_b(b, True),
                     lambda a, b: (trainer._identity_terms(a, b, True), None)]
            summed, part_terms, extras = trainer.sequential_gradients(
                parts, [real_a, real_b], g_vars, trainer.g_optimizer, 2)
            return one, summed, terms, part_terms

        one, summed, terms, part_terms = both()
        self.assertEqual(sorted(terms), sorted(part_terms))
        for name in terms:
            self.assertAllClose(terms[name], part_terms[name], atol=1e-6)
        self.assertLen(summed, len(one))
        for a, b in zip(one, summed):
            self.assertAllClose(a, b, atol=1e-6, rtol=1e-5)


if __name__ == "__main__":
    tf.test.main()
