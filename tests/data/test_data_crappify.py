"""Tests for kgan.data.crappify, restoration_dataset and the ``python -m kgan.crappify`` CLI."""

import os
import subprocess
import sys

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.data import (
    DEGRADATIONS,
    DataError,
    crappify,
    crappify_array,
    restoration_dataset,
    sample_photos,
)
from kgan.data.crappify import crappify_folder


def psnr(a, b):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(255.0**2 / mse)


def photo_crop(size=64):
    return sample_photos("train")[0][100:100 + size, 200:200 + size].copy()


class CrappifyTest(tf.test.TestCase):

    def test_each_degradation_degrades_deterministically(self):
        clean = photo_crop()
        for name in DEGRADATIONS:
            out = crappify_array(clean, [name], seed=3)
            self.assertEqual(out.dtype, np.uint8)
            self.assertEqual(out.shape, clean.shape)
            value = psnr(out, clean)
            self.assertTrue(np.isfinite(value), name)
            self.assertLess(value, 40.0, name)
            self.assertAllEqual(out, crappify_array(clean, [name], seed=3))
        self.assertNotAllEqual(crappify_array(clean, ["noise"], seed=3),
                               crappify_array(clean, ["noise"], seed=4))

    def test_grayscale_has_equal_channels(self):
        out = crappify_array(photo_crop(32), "grayscale", seed=0)
        self.assertAllEqual(out[..., 0], out[..., 1])
        self.assertAllEqual(out[..., 0], out[..., 2])

    def test_text_is_white_in_top_left_quadrant(self):
        black = np.zeros((64, 64, 3), np.uint8)
        out = crappify_array(black, "text", seed=1)
        ys, xs = np.nonzero(out.max(-1))
        self.assertNotEmpty(ys)
        self.assertLess(ys.min(), 32)
        self.assertLess(xs.min(), 32)

    def test_works_inside_tf_data_with_per_example_seeds(self):
        clean = tf.constant(photo_crop(32))
        ds = tf.data.Dataset.range(3).map(
            lambda i: crappify(clean, ("downscale", "text", "jpeg"), tf.stack([i, i + 1])))
        outs = [x.numpy() for x in ds]
        self.assertEqual(outs[0].shape, (32, 32, 3))
        self.assertAllEqual(outs[1], crappify_array(clean.numpy(), "downscale,text,jpeg",
                                                    tf.constant([1, 2])))

    def test_bad_options(self):
        with self.assertRaisesRegex(DataError, "Unknown degradation.*sepia"):
            crappify_array(photo_crop(16), "jpeg,sepia")
        with self.assertRaisesRegex(DataError, "at least one"):
            crappify_array(photo_crop(16), "")
        with self.assertRaisesRegex(DataError, "uint8"):
            crappify(tf.zeros([8, 8, 3]), "jpeg")


class RestorationDatasetTest(tf.test.TestCase):

    def test_builtin_train_pairs(self):
        ds, info = restoration_dataset(crop_size=32, batch_size=2, seed=0)
        self.assertEqual(info.num_a, 6)
        degraded, clean = next(iter(ds))
        self.assertEqual(degraded.shape, (2, 32, 32, 3))
        self.assertEqual(clean.dtype, tf.float32)
        self.assertGreater(float(tf.reduce_mean(tf.abs(degraded - clean))), 0.005)
        again = next(iter(restoration_dataset(crop_size=32, batch_size=2, seed=0)[0]))
        self.assertAllEqual(degraded, again[0])

    def test_builtin_test_split_is_held_out_and_repeatable(self):
        ds, info = restoration_dataset(phase="test", crop_size=64, batch_size=4, repeat=False)
        self.assertIn("chelsea", info.source)
        first = [d.numpy() for d, _ in ds]
        second = [d.numpy() for d, _ in ds]
        self.assertLen(first, info.num_a // 4)
        self.assertAllEqual(np.stack(first), np.stack(second))
        endless, _ = restoration_dataset(phase="test", crop_size=64, batch_size=4)
        looped = [d.numpy() for d, _ in endless.take(len(first) + 1)]
        self.assertAllEqual(looped[0], looped[len(first)])

    def test_folder_sources_and_errors(self):
        root = os.path.join(self.get_temp_dir(), "clean")
        os.makedirs(root)
        photo = photo_crop(48)
        Image.fromarray(photo).save(os.path.join(root, "one.png"))
        _, flat = restoration_dataset(dataroot=root, crop_size=32)
        self.assertEqual(flat.num_a, 1)
        os.makedirs(os.path.join(root, "test"))
        Image.fromarray(photo).save(os.path.join(root, "test", "t.png"))
        ds, info = restoration_dataset(dataroot=root, phase="test", crop_size=16, repeat=False)
        self.assertEqual(info.num_a, 9)  # A 3 x 3 grid of tiles.
        self.assertEqual(sum(1 for _ in ds), 9)
        with self.assertRaisesRegex(DataError, "load_size"):
            restoration_dataset(dataroot=root, crop_size=32, load_size=16)
        missing = os.path.join(self.get_temp_dir(), "missing_clean")
        with self.assertRaisesRegex(DataError, "missing_clean"):
            restoration_dataset(dataroot=missing)


class CrappifyCliTest(tf.test.TestCase):

    def test_folder_and_cli(self):
        source = os.path.join(self.get_temp_dir(), "in")
        os.makedirs(source)
        Image.fromarray(photo_crop(32)).save(os.path.join(source, "a.jpg"), quality=95)
        Image.fromarray(photo_crop(40)).save(os.path.join(source, "b.png"))
        with open(os.path.join(source, "c.png"), "w") as f:
            f.write("not an image")
        out = os.path.join(self.get_temp_dir(), "out")
        written, skipped = crappify_folder(source, out, ["downscale", "jpeg"], seed=1)
        self.assertEqual((written, skipped), (2, 1))
        self.assertEqual(sorted(os.listdir(out)), ["a.png", "b.png"])
        first = np.asarray(Image.open(os.path.join(out, "b.png")))
        self.assertEqual(first.shape, (40, 40, 3))

        cli_out = os.path.join(self.get_temp_dir(), "cli_out")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "kgan.crappify", f"--input_dir={source}",
             f"--output_dir={cli_out}", "--degradations=downscale,jpeg", "--seed=1"],
            capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("skipped 1", result.stdout)
        self.assertAllEqual(np.asarray(Image.open(os.path.join(cli_out, "b.png"))), first)

        missing = subprocess.run(
            [sys.executable, "-m", "kgan.crappify", "--input_dir=/nonexistent_kgan_dir",
             f"--output_dir={cli_out}"], capture_output=True, text=True, env=env, timeout=300)
        self.assertNotEqual(missing.returncode, 0)
        self.assertIn("nonexistent_kgan_dir", missing.stderr)
        self.assertNotIn("Traceback", missing.stderr)


if __name__ == "__main__":
    tf.test.main()
