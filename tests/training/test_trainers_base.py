"""Tests for kgan.training.trainers.base: the fused Adam update against torch's and Keras'
Adam."""

import unittest

import keras
import numpy as np
import tensorflow as tf

try:
    import torch
except ImportError:
    torch = None

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
        # In [1, 3]: gradients far from 0, where torch's and Keras' epsilon forms agree.
        grads = [tf.sin(v * (tf.cast(i, tf.float32) + 1.0)) + 2.0 for v in variables]
        optimizer.apply_gradients(zip(grads, variables))

    for i in range(steps):
        step(tf.constant(i))
    return [v.numpy() for v in variables]


class FusedAdamTest(tf.test.TestCase):

    def test_matches_keras_adam(self):
        for jit_compile in (False, True):
            schedule = lambda: LinearDecay(2e-2, 2, 2, 2)
            ours = _run(Adam(schedule(), beta_1=0.5), _variables(0), 6, jit_compile)
            ref = _run(keras.optimizers.Adam(schedule(), beta_1=0.5, epsilon=1e-8),
                       _variables(0), 6, jit_compile)
            for a, b in zip(ours, ref):
                self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
            self.assertNotAllClose(ours[0], _variables(0)[0].numpy())

    def test_epsilon_is_torchs_hand_computed(self):
        # torch.optim.Adam: w -= lr / (1 - b1^t) * m / (sqrt(v / (1 - b2^t)) + 1e-8). With a
        # gradient of 1e-9 the epsilon dominates; Keras' form (1e-7 on the raw sqrt(v)) would
        # move w by ~1e-5 of what torch's does at t = 1.
        lr, b1, b2, eps = 0.1, 0.5, 0.999, 1e-8
        w, m, v = 1.0, 0.0, 0.0
        variable = keras.Variable(np.float32([1.0]))
        optimizer = Adam(lr, beta_1=b1)
        optimizer.build([variable])
        for t, g in enumerate([1e-9, 3e-9, -2e-9, 1e-8], start=1):
            m = b1 * m + (1 - b1) * g
            v = b2 * v + (1 - b2) * g * g
            w -= lr / (1 - b1 ** t) * m / (np.sqrt(v / (1 - b2 ** t)) + eps)
            optimizer.apply_gradients([(tf.constant([g], tf.float32), variable)])
            self.assertAllClose(variable.numpy()[0], w, rtol=0, atol=2e-6)
        self.assertLess(w, 0.99)  # the steps are large: the epsilon mattered

    @unittest.skipIf(torch is None, "needs torch")
    def test_matches_torch_adam(self):
        # Gradients spanning 1e-10 .. 1: small ones are where the epsilon's form shows.
        rng = np.random.RandomState(4)
        shapes = [(3, 3, 4, 5), (5,), (64,)]
        # Weights of N(0, 0.02) as the reference's init: float32 rounds them to ~2e-9.
        init = [(0.02 * rng.randn(*s)).astype("float32") for s in shapes]
        scales = [np.float32(10.0) ** rng.uniform(-10, 0, size=s).astype("float32")
                  for s in shapes]
        grads = [[(rng.randn(*s) * sc).astype("float32") for s, sc in zip(shapes, scales)]
                 for _ in range(8)]
        variables = [keras.Variable(x) for x in init]
        optimizer = adam(2e-4)  # the trainers' optimizer: beta_1 0.5
        optimizer.build(variables)
        params = [torch.nn.Parameter(torch.from_numpy(x.copy())) for x in init]
        reference = torch.optim.Adam(params, lr=2e-4, betas=(0.5, 0.999))
        for step in grads:
            optimizer.apply_gradients(zip([tf.constant(g) for g in step], variables))
            for p, g in zip(params, step):
                p.grad = torch.from_numpy(g)
            reference.step()
            for ours, theirs, x in zip(variables, params, init):
                self.assertAllClose(ours.numpy() - x, theirs.detach().numpy() - x,
                                    rtol=1e-4, atol=2e-8)

    def test_uses_one_kernel_per_variable(self):
        variables = _variables(1)
        optimizer = Adam(1e-3)
        optimizer.build(variables)
        fn = tf.function(lambda: optimizer.apply_gradients(
            zip([tf.ones_like(v) for v in variables], variables)))
        ops = fn.get_concrete_function().graph.get_operations()
        kinds = [op.type for op in ops]
        self.assertEqual(kinds.count("ResourceApplyAdam"), len(variables))
        # The only square roots are scalar ones (the epsilon's bias correction).
        self.assertEqual([op.outputs[0].shape.rank for op in ops if op.type == "Sqrt"],
                         [0] * len(variables))

    def test_amsgrad_and_loss_scaling_keep_working(self):
        ours = _run(Adam(1e-2, amsgrad=True), _variables(2), 3)
        ref = _run(keras.optimizers.Adam(1e-2, amsgrad=True), _variables(2), 3)
        for a, b in zip(ours, ref):
            self.assertAllClose(a, b, rtol=1e-6, atol=1e-6)
        scaled = adam(1e-2, mixed_float16=True)
        self.assertIsInstance(scaled, keras.optimizers.LossScaleOptimizer)
        self.assertIsInstance(scaled.inner_optimizer, Adam)
        ours = _run(scaled, _variables(3), 3)
        # The unscaled gradients are ~1e-4, where torch's epsilon form (ours) and Keras'
        # differ: the reference is Keras' wrapper around our Adam.
        ref = _run(keras.optimizers.LossScaleOptimizer(Adam(1e-2, beta_1=0.5)),
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
            summed, part_terms, _extras = trainer.sequential_gradients(
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
