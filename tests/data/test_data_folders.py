"""Tests for kgan.data.folders: unaligned (CycleGAN) and aligned (pix2pix) datasets."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.data import DataError, paired_dataset, sample_mapping, unpaired_dataset


def save(folder, name, array):
    os.makedirs(folder, exist_ok=True)
    Image.fromarray(array).save(os.path.join(folder, name))


def random_image(rng, height=40, width=40):
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


SMALL = dict(load_size=36, crop_size=32)


class UnpairedTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        rng = np.random.default_rng(0)
        self.root = os.path.join(self.get_temp_dir(), "horses")
        for i in range(3):
            save(os.path.join(self.root, "trainA"), f"a{i}.png", random_image(rng))
        for i in range(2):
            save(os.path.join(self.root, "trainB"), f"b{i}.jpg", random_image(rng, 48, 40))
        with open(os.path.join(self.root, "trainB", "broken.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 truncated")

    def test_folder_batches_and_info(self):
        ds, info = unpaired_dataset(dataroot=self.root, batch_size=2, seed=1, **SMALL)
        self.assertEqual((info.num_a, info.num_b, info.skipped), (3, 2, 1))
        self.assertEqual(info.steps_per_epoch, 1)
        self.assertEqual(ds.element_spec[0].shape.as_list(), [2, 32, 32, 3])
        real_a, real_b = next(iter(ds))
        self.assertEqual(real_a.dtype, tf.float32)
        self.assertEqual(real_b.shape, (2, 32, 32, 3))
        self.assertBetween(float(tf.reduce_min(real_a)), -1.0, 1.0)
        self.assertBetween(float(tf.reduce_max(real_b)), -1.0, 1.0)

    def test_same_seed_same_batches(self):
        def batches(seed):
            ds, _ = unpaired_dataset(dataroot=self.root, seed=seed, **SMALL)
            return [np.concatenate([a.numpy(), b.numpy()]) for a, b in ds.take(4)]

        first, second, other = batches(5), batches(5), batches(6)
        self.assertAllEqual(np.stack(first), np.stack(second))
        self.assertNotAllClose(np.stack(first), np.stack(other))

    def test_one_pass_without_repeat(self):
        ds, info = unpaired_dataset(dataroot=self.root, repeat=False, seed=0, **SMALL)
        self.assertEqual(sum(1 for _ in ds), max(info.num_a, info.num_b))

    def test_serial_batches_read_in_order(self):
        ds, _ = unpaired_dataset(dataroot=self.root, serial_batches=True, no_flip=True,
                                 preprocess="crop", crop_size=40, seed=0)
        firsts = [a.numpy()[0] for a, _ in ds.take(4)]
        self.assertAllClose(firsts[0], firsts[3])  # A wraps around after 3 images.
        self.assertNotAllClose(firsts[0], firsts[1])

    def test_user_errors(self):
        with self.assertRaisesRegex(DataError, "testA"):
            unpaired_dataset(dataroot=self.root, phase="test", **SMALL)
        with self.assertRaisesRegex(DataError, "larger than load_size"):
            unpaired_dataset(dataroot=self.root, load_size=32, crop_size=36)
        with self.assertRaisesRegex(DataError, "smaller than crop_size"):
            unpaired_dataset(dataroot=self.root, preprocess="crop", crop_size=64)
        with self.assertRaisesRegex(DataError, "not both"):
            unpaired_dataset(dataroot=self.root, tfds_name="cycle_gan/horse2zebra")
        empty = os.path.join(self.get_temp_dir(), "nothing")
        os.makedirs(os.path.join(empty, "trainA"))
        with self.assertRaisesRegex(DataError, "nothing/trainA"):
            unpaired_dataset(dataroot=empty, **SMALL)

    def test_builtin_sample_task(self):
        ds, info = unpaired_dataset(batch_size=2, seed=0, **SMALL)
        self.assertIn("sample", info.source)
        self.assertEqual(info.num_a, 6)
        real_a, real_b = next(iter(ds))
        self.assertEqual(real_a.shape, (2, 32, 32, 3))
        # B is mapped photos, but not the mapping of the A crops (unaligned).
        self.assertGreater(float(tf.reduce_mean(tf.abs(sample_mapping(real_a) - real_b))), 0.05)


class PairedTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.rng = np.random.default_rng(1)
        self.root = os.path.join(self.get_temp_dir(), "facades")

    def test_identical_halves_stay_identical(self):
        for i in range(3):
            half = random_image(self.rng, 40, 40)
            save(os.path.join(self.root, "train"), f"{i}.png", np.concatenate([half, half], 1))
        ds, info = paired_dataset(dataroot=self.root, batch_size=1, seed=0, **SMALL)
        self.assertEqual(info.num_a, 3)
        for source, target in ds.take(6):
            self.assertEqual(source.shape, (1, 32, 32, 3))
            self.assertAllEqual(source, target)

    def test_direction_swaps_halves(self):
        left = np.full((32, 32, 3), 20, np.uint8)
        right = np.full((32, 32, 3), 220, np.uint8)
        save(os.path.join(self.root, "train"), "0.png", np.concatenate([left, right], 1))
        options = dict(dataroot=self.root, preprocess="crop", crop_size=32, seed=0)
        a_to_b = next(iter(paired_dataset(direction="AtoB", **options)[0]))
        b_to_a = next(iter(paired_dataset(direction="BtoA", **options)[0]))
        self.assertLess(float(tf.reduce_mean(a_to_b[0])), 0)
        self.assertGreater(float(tf.reduce_mean(a_to_b[1])), 0)
        self.assertAllEqual(a_to_b[0], b_to_a[1])
        self.assertAllEqual(a_to_b[1], b_to_a[0])
        with self.assertRaisesRegex(DataError, "direction"):
            paired_dataset(direction="AtoC", **options)

    def test_two_folders_pair_by_name(self):
        for i in range(2):
            clean = random_image(self.rng)
            save(os.path.join(self.root, "trainB"), f"p{i}.bmp", clean)
            save(os.path.join(self.root, "trainA"), f"p{i}.png", clean)  # Same stem.
        save(os.path.join(self.root, "trainA"), "orphan.png", random_image(self.rng))
        ds, info = paired_dataset(dataroot=self.root, seed=3, **SMALL)
        self.assertEqual(info.num_a, 2)
        for source, target in ds.take(4):  # PNG and BMP copies of one image, same crop.
            self.assertAllEqual(source, target)

    def test_missing_layout_names_both_options(self):
        os.makedirs(self.root)
        with self.assertRaisesRegex(DataError, "facades/train/.*trainA"):
            paired_dataset(dataroot=self.root, **SMALL)

    def test_builtin_paired_task_target_is_the_known_mapping(self):
        ds, info = paired_dataset(batch_size=2, seed=0, **SMALL)
        source, target = next(iter(ds))
        self.assertAllClose(sample_mapping(source), target, atol=0.5 / 127.5 + 1e-5)
        _, test_info = paired_dataset(phase="test", **SMALL)
        self.assertEqual(test_info.num_a, 2)


if __name__ == "__main__":
    tf.test.main()
