"""kgan.training.trainers.pix2pix: the reference's logged terms, and learning a tiny paired task."""

import tensorflow as tf

from kgan.data import paired_dataset
from kgan.models import build_discriminator, unet_generator
from kgan.training.trainers.base import adam
from kgan.training.trainers.pix2pix import Pix2Pix


class Pix2PixTest(tf.test.TestCase):

    def test_logs_reference_terms_and_learns_a_paired_task(self):
        tf.keras.utils.set_random_seed(0)
        dataset, _ = paired_dataset(preprocess="resize_and_crop", load_size=36, crop_size=32,
                                    batch_size=4, seed=0, size_multiple=32)
        generator = unet_generator(num_downs=5, ngf=8, norm="batch", use_dropout=False)
        discriminator = build_discriminator("basic", in_channels=6, ndf=8, norm="batch")
        trainer = Pix2Pix(generator, discriminator, lambda_l1=100.0)
        trainer.compile(g_optimizer=adam(2e-3, 0.5), d_optimizer=adam(2e-4, 0.5))
        inputs, targets = next(iter(dataset))
        start = float(tf.reduce_mean(tf.abs(generator(inputs, training=False) - targets)))
        history = trainer.fit(dataset, steps_per_epoch=100, epochs=1, verbose=0).history
        self.assertEqual(set(history), {"G_GAN", "G_L1", "D_real", "D_fake", "lr"})
        end = float(tf.reduce_mean(tf.abs(generator(inputs, training=False) - targets)))
        self.assertLess(end, 0.5 * start, f"L1 {start:.3f} -> {end:.3f}")


if __name__ == "__main__":
    tf.test.main()
