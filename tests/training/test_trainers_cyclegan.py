"""CycleGAN trainer: loss wiring against hand computations, update order, and learning."""

import numpy as np
import pytest
import tensorflow as tf

from kgan.data import sample_mapping, sample_photos
from kgan.training import losses
from kgan.training.trainers.cyclegan import build_cyclegan


def batch(seed, size=32, n=2):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.uniform(-1, 1, (n, size, size, 3)).astype("float32"))


def weights(model):
    return [w.numpy().copy() for w in model.trainable_weights]


class CycleGANLossTest(tf.test.TestCase):

    def test_generator_terms_match_hand_computation(self):
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                 pool_size=0, lambda_a=10.0, lambda_b=7.0, lambda_identity=0.5)
        a, b = batch(0), batch(1)
        terms, _, _ = trainer._generator_losses(a, b, training=False)
        g_ab, g_ba = trainer.generator_ab, trainer.generator_ba
        d_a, d_b = trainer.discriminator_a, trainer.discriminator_b
        fake_b, fake_a = g_ab(a).numpy(), g_ba(b).numpy()
        mean = lambda x: x.reshape(len(x), -1).mean(axis=1)
        expected = {
            "G_A": mean((d_b(fake_b).numpy() - 1.0) ** 2),
            "G_B": mean((d_a(fake_a).numpy() - 1.0) ** 2),
            "cycle_A": 10.0 * mean(np.abs(g_ba(fake_b).numpy() - a.numpy())),
            "cycle_B": 7.0 * mean(np.abs(g_ab(fake_a).numpy() - b.numpy())),
            # Identity: G_A should leave B images alone, weighted lambda_B * lambda_identity.
            "idt_A": 7.0 * 0.5 * mean(np.abs(g_ab(b).numpy() - b.numpy())),
            "idt_B": 10.0 * 0.5 * mean(np.abs(g_ba(a).numpy() - a.numpy())),
        }
        self.assertEqual(set(terms), set(expected))
        for name, value in expected.items():
            self.assertAllClose(terms[name], value, rtol=1e-5, atol=1e-6, msg=name)

    def test_no_identity_term_when_lambda_identity_is_zero(self):
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                 pool_size=0, lambda_identity=0.0)
        terms, _, _ = trainer._generator_losses(batch(0), batch(1), training=False)
        self.assertNotIn("idt_A", terms)

    def test_step_updates_every_network_and_logs_the_reference_terms(self):
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=4, ndf=4, crop_size=32,
                                 pool_size=2)
        nets = [trainer.generator_ab, trainer.generator_ba, trainer.discriminator_a,
                trainer.discriminator_b]
        before = [weights(net) for net in nets]
        logs = trainer.train_step((batch(0), batch(1)))
        self.assertEqual(set(logs), {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B",
                                     "D_A", "D_B", "lr"})
        for net, old in zip(nets, before):
            changed = [not np.allclose(o, w.numpy()) for o, w in zip(old, net.trainable_weights)]
            self.assertTrue(all(changed), f"{net.name}: some weights did not move")
        self.assertEqual(int(trainer.g_optimizer.iterations), 1)
        self.assertEqual(int(trainer.d_optimizer.iterations), 1)
        self.assertEqual(int(trainer.pool_a.count.numpy()), 2)

    def test_discriminator_loss_is_half_real_plus_fake(self):
        real = tf.constant(np.full((1, 2, 2, 1), 0.8, "float32"))
        fake = tf.constant(np.full((1, 2, 2, 1), 0.3, "float32"))
        self.assertAllClose(losses.discriminator_loss(real, fake, "lsgan"),
                            [0.5 * ((0.8 - 1) ** 2 + 0.3 ** 2)])


class CycleGANLearnsTest(tf.test.TestCase):

    @pytest.mark.slow
    def test_learns_the_sample_mapping(self):
        """A tiny model on the built-in unpaired task moves G(x) towards the known mapping."""
        from kgan.data import unpaired_dataset
        tf.keras.utils.set_random_seed(0)
        dataset, _ = unpaired_dataset(preprocess="resize_and_crop", load_size=40, crop_size=32,
                                      batch_size=2, seed=0)
        # norm="none": a pointwise colour mapping needs absolute colour levels, which
        # instance norm removes after the first conv (it learns far slower with it).
        trainer = build_cyclegan(generator="resnet_6blocks", ngf=8, ndf=8, norm="none",
                                 crop_size=32, pool_size=10, lr=1e-3, steps_per_epoch=300,
                                 epochs=1, epochs_decay=0)
        photos = [tf.image.resize(p, (32, 32), method="area") for p in sample_photos("test")]
        test_a = tf.stack(photos) / 127.5 - 1.0
        target = sample_mapping(test_a)

        def psnr():
            return float(tf.reduce_mean(tf.image.psnr(
                trainer.generator_ab(test_a) + 1.0, target + 1.0, max_val=2.0)))

        def cycle_error():
            return float(tf.reduce_mean(tf.abs(
                trainer.generator_ba(trainer.generator_ab(test_a)) - test_a)))

        start, start_cycle = psnr(), cycle_error()
        trainer.fit(dataset, steps_per_epoch=150, epochs=2, verbose=0)
        end, end_cycle = psnr(), cycle_error()
        # A pointwise colour mapping is slow for a GAN (a tiny generator trained *supervised*
        # on it for 300 steps reaches only ~17 dB here); +1 dB in 300 unpaired steps is the
        # measurable part, and the cycle error shows both directions were learned.
        self.assertGreater(end, start + 1.0, f"PSNR {start:.2f} -> {end:.2f} dB")
        # The generators moved towards being inverses of each other on held-out photos
        # (measured here 0.320 -> 0.264; a single step's logged cycle loss is too noisy at
        # batch 2 to compare).
        self.assertLess(end_cycle, 0.9 * start_cycle, f"{start_cycle:.3f} -> {end_cycle:.3f}")
