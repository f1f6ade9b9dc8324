"""Tests for kgan.data.colorize and the natural colour photo split of kgan.data.samples."""

import numpy as np
import tensorflow as tf

from kgan.data import samples
from kgan.data.colorize import colorization_dataset, gray3


def _luma(x):
    return 0.299 * x[..., 0] + 0.587 * x[..., 1] + 0.114 * x[..., 2]


class ColorPhotosTest(tf.test.TestCase):

    def test_split(self):
        self.assertEqual(samples.COLOR_TRAIN_PHOTOS,
                         ("astronaut", "rocket", "motorcycle_left", "motorcycle_right"))
        self.assertEqual(samples.COLOR_TEST_PHOTOS, ("coffee", "chelsea"))
        # The stereo pair stays in one split; no false-colour image is used.
        for name in ("hubble_deep_field", "retina", "immunohistochemistry"):
            self.assertNotIn(name, samples.COLOR_TRAIN_PHOTOS + samples.COLOR_TEST_PHOTOS)
        train, test = samples.sample_color_photos("train"), samples.sample_color_photos("test")
        self.assertLen(test, 2)
        self.assertEqual(train[2].shape, train[3].shape)
        self.assertFalse(np.array_equal(train[2], train[3]))  # left and right views differ
        self.assertLessEqual(max(test[0].shape[:2]), samples.MAX_SIDE)


class ColorizationDatasetTest(tf.test.TestCase):

    def test_train_pairs_are_gray_and_colour_with_the_same_luma(self):
        dataset, info = colorization_dataset(crop_size=32, batch_size=4, seed=0)
        gray, colour = (x.numpy() for x in next(iter(dataset)))
        self.assertEqual(gray.shape, (4, 32, 32, 3))
        self.assertIn("astronaut", info.source)
        self.assertAllClose(gray[..., 0], gray[..., 2], atol=1e-6)
        self.assertGreater(np.abs(colour[..., 0] - colour[..., 2]).max(), 0.1)
        # The gray input is the target's luma rounded to uint8: half a level, plus up to 0.03
        # level from tf.image.rgb_to_grayscale's 0.2989 red weight (BT.601 says 0.299).
        self.assertLessEqual(np.abs(gray[..., 0] - _luma(colour)).max(), 0.55 / 127.5)

    def test_extra_degradations_stay_gray(self):
        dataset, _ = colorization_dataset(phase="test", degradations="noise,jpeg", crop_size=64,
                                          batch_size=2, repeat=False)
        gray, colour = (x.numpy() for x in next(iter(dataset)))
        self.assertAllClose(gray[..., 0], gray[..., 1], atol=1e-6)
        self.assertGreater(np.abs(gray[..., 0] - _luma(colour)).mean(), 0.01)  # degraded

    def test_gray3(self):
        x = tf.constant([[[1.0, 0.0, -1.0]]])
        self.assertAllClose(gray3(x), [[[0.299 - 0.114] * 3]], atol=1e-6)
