"""The CycleGAN loss-ablation options: ``lambda_gan`` weights both generators' adversarial
terms (the paper's "cycle alone" is lambda_gan=0), and ``residual`` generators."""

import numpy as np
import tensorflow as tf

from kgan.training.trainers.cyclegan import build_cyclegan


def batch(seed, size=32, n=1):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"))


def tiny(**options):
    tf.keras.utils.set_random_seed(0)
    return build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32, pool_size=0,
                          lambda_identity=0.0, **options)


def generator_weights(trainer):
    return [w.numpy().copy() for net in (trainer.generator_ab, trainer.generator_ba)
            for w in net.trainable_weights]


def scramble_discriminators(trainer, seed=9):
    rng = np.random.default_rng(seed)
    for net in (trainer.discriminator_a, trainer.discriminator_b):
        for w in net.trainable_weights:
            w.assign(rng.normal(0, 0.5, w.shape).astype("float32"))


class LambdaGanTest(tf.test.TestCase):

    def test_scales_both_adversarial_terms_only(self):
        a, b = batch(0), batch(1)
        reference = tiny()
        self.assertEqual(reference.lambda_gan, 1.0)  # the reference's behaviour by default
        weighted = tiny(lambda_gan=0.25)
        ref_terms, _, _ = reference._generator_losses(a, b, training=False)
        terms, _, _ = weighted._generator_losses(a, b, training=False)
        for name in ("G_A", "G_B"):
            self.assertAllClose(terms[name], 0.25 * ref_terms[name], rtol=1e-5)
            self.assertGreater(float(ref_terms[name][0]), 0.0)
        for name in ("cycle_A", "cycle_B"):
            self.assertAllClose(terms[name], ref_terms[name], rtol=1e-6)

    def test_zero_makes_the_generator_update_independent_of_the_discriminators(self):
        a, b = batch(2), batch(3)
        updates = {}
        for lambda_gan in (0.0, 1.0):
            results = []
            for scramble in (False, True):
                trainer = tiny(lambda_gan=lambda_gan)
                if scramble:
                    scramble_discriminators(trainer)
                logs = trainer.train_step((a, b))
                results.append(generator_weights(trainer))
                if lambda_gan == 0.0:
                    self.assertEqual(float(logs["G_A"]), 0.0)
                    self.assertGreater(float(logs["cycle_A"]), 0.0)
            updates[lambda_gan] = max(float(np.max(np.abs(x - y)))
                                      for x, y in zip(*results))
        self.assertLess(updates[0.0], 1e-7)  # cycle alone: D plays no part in G's step
        self.assertGreater(updates[1.0], 1e-6)  # with the GAN term it does


class ResidualCycleGANTest(tf.test.TestCase):

    def test_residual_generators_start_as_the_identity(self):
        x = batch(4)
        residual = tiny(residual=True)
        for generator in (residual.generator_ab, residual.generator_ba):
            self.assertAllClose(generator(x), x, atol=1e-6)
        plain = tiny()
        self.assertGreater(float(tf.reduce_max(tf.abs(plain.generator_ab(x) - x))), 0.1)
        self.assertEqual(plain.generator_ab.count_params(),
                         residual.generator_ab.count_params())
