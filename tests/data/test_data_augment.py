"""Tests for kgan.data.augment: the reference preprocessing modes."""

import numpy as np
import tensorflow as tf

from kgan.data import augment
from kgan.data.images import DataError
from kgan.data.sources import ImageSource


def image(height, width, channels=3, seed=0):
    rng = np.random.default_rng(seed)
    return tf.constant(rng.integers(0, 256, (height, width, channels), dtype=np.uint8))


def seed(counter):
    return augment.element_seed(7, 1, counter)


class AugmentTest(tf.test.TestCase):

    def test_option_errors(self):
        with self.assertRaisesRegex(DataError, "Unknown preprocess 'zoom'"):
            augment.check_preprocess("zoom", 286, 256)
        with self.assertRaisesRegex(DataError, "crop_size \\(300\\) is larger than load_size"):
            augment.check_preprocess("resize_and_crop", 286, 300)
        with self.assertRaisesRegex(DataError, "multiple of 8"):
            augment.check_preprocess("crop", 0, 36, size_multiple=8)
        augment.check_preprocess("crop", 0, 300)  # load_size is unused by crop.

    def test_shapes_per_mode(self):
        x = image(40, 60)
        cases = {"resize_and_crop": (32, 32), "crop": (32, 32),
                 "scale_width_and_crop": (32, 32), "scale_width": (32, 44), "none": (40, 60)}
        for mode, shape in cases.items():
            out = augment.transform(x, seed(0), mode, load_size=42, crop_size=32)
            self.assertEqual(tuple(out.shape[:2]), shape, mode)
            self.assertEqual(tuple(augment.output_size(40, 60, mode, 42, 32)), shape, mode)
            self.assertEqual(out.dtype, tf.float32)
            self.assertBetween(float(tf.reduce_min(out)), -1.0, 1.0)
            self.assertBetween(float(tf.reduce_max(out)), -1.0, 1.0)

    def test_none_rounds_sides_to_the_size_multiple(self):
        out = augment.transform(image(37, 50), seed(0), "none", 0, 0, flip=False,
                                size_multiple=16)
        self.assertEqual(tuple(out.shape[:2]), (32, 48))

    def test_crop_without_resize_keeps_pixels(self):
        x = image(40, 40)
        out = augment.transform(x, seed(3), "crop", 0, 40, flip=False)
        self.assertAllClose(out, tf.cast(x, tf.float32) / 127.5 - 1.0, atol=1e-6)

    def test_same_seed_same_result_and_seeds_vary(self):
        x = image(50, 50)
        outs = [augment.transform(x, seed(i), "resize_and_crop", 48, 32) for i in range(8)]
        again = augment.transform(x, seed(0), "resize_and_crop", 48, 32)
        self.assertAllEqual(outs[0], again)
        self.assertGreater(len({out.numpy().tobytes() for out in outs}), 1)

    def test_stacked_pair_shares_crop_and_flip(self):
        x = image(40, 40)
        stacked = tf.concat([x, x], axis=-1)
        for counter in range(6):
            out = augment.transform(stacked, seed(counter), "resize_and_crop", 48, 32)
            self.assertAllEqual(out[..., :3], out[..., 3:])

    def test_flip_happens_about_half_the_time(self):
        x = image(8, 8)
        flips = 0
        for counter in range(40):
            out = augment.transform(x, seed(counter), "crop", 0, 8)
            flips += int(not np.allclose(out, augment.to_float(x)))
        self.assertBetween(flips, 8, 32)

    def test_check_sizes(self):
        with self.assertRaisesRegex(DataError, "smaller than crop_size"):
            augment.check_sizes([(20, 40)], "folder X", "crop", 0, 32, 1)
        with self.assertRaisesRegex(DataError, "cannot be batched"):
            augment.check_sizes([(20, 40), (40, 40)], "folder X", "none", 0, 0, 2)
        augment.check_sizes([(20, 40), (40, 40)], "folder X", "none", 0, 0, 1)

    def test_preresize_matches_in_pipeline_resize(self):
        x = image(50, 70)
        source = augment.preresize(ImageSource.from_arrays([x.numpy()], "one"),
                                   "resize_and_crop", 40, 32)
        self.assertEqual(source.sizes, [(40, 40)])
        direct = augment.transform(x, seed(1), "resize_and_crop", 40, 32)
        cached = augment.transform(source.load(0), seed(1), "resize_and_crop", 40, 32)
        self.assertAllClose(direct, cached, atol=1e-6)

    def test_uint8_round_trip(self):
        x = image(4, 4)
        self.assertAllEqual(augment.to_uint8(augment.to_float(x)), x)


if __name__ == "__main__":
    tf.test.main()
