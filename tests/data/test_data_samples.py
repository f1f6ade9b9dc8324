"""Tests for kgan.data.samples: the built-in photos and the known sample mapping."""

import numpy as np
import tensorflow as tf

from kgan.data import samples


class SamplesTest(tf.test.TestCase):

    def test_photos_and_fixed_split(self):
        train = samples.sample_photos("train")
        test = samples.sample_photos("test")
        self.assertLen(train, len(samples.TRAIN_PHOTOS))
        self.assertLen(test, len(samples.TEST_PHOTOS))
        self.assertEmpty(set(samples.TRAIN_PHOTOS) & set(samples.TEST_PHOTOS))
        for photo in train + test:
            self.assertEqual(photo.dtype, np.uint8)
            self.assertEqual(photo.shape[-1], 3)
            self.assertLessEqual(max(photo.shape[:2]), samples.MAX_SIDE)
        train_bytes = {p.tobytes() for p in train}
        self.assertFalse(any(p.tobytes() in train_bytes for p in test))
        train[0][:] = 0  # Callers get copies.
        self.assertGreater(samples.sample_photos("train")[0].max(), 0)
        with self.assertRaisesRegex(ValueError, "split"):
            samples.sample_photos("val")

    def test_mapping_is_a_known_invertible_colour_transform(self):
        x = np.random.default_rng(0).uniform(-1, 1, (2, 8, 8, 3)).astype(np.float32)
        mapped = samples.sample_mapping(x)
        self.assertIsInstance(mapped, np.ndarray)
        self.assertAllClose(mapped, samples.sample_mapping(tf.constant(x)), atol=1e-6)
        self.assertBetween(float(mapped.min()), -1.0, 1.0)
        self.assertBetween(float(mapped.max()), -1.0, 1.0)
        self.assertGreater(float(np.abs(mapped - x).mean()), 0.2)
        # Output green is input red (gamma 1); output red is input blue ** 0.8.
        self.assertAllClose(mapped[..., 1], x[..., 0], atol=1e-6)
        unit_blue = (x[..., 2] + 1) / 2
        self.assertAllClose((mapped[..., 0] + 1) / 2, unit_blue ** 0.8, atol=1e-5)

    def test_sample_source_loads_by_index(self):
        source = samples.sample_source("test", max_dataset_size=1)
        self.assertEqual(source.count, 1)
        self.assertAllEqual(source.load(0), samples.sample_photos("test")[0])


if __name__ == "__main__":
    tf.test.main()
