"""Tests for kgan.data.images: listing, robust decoding, image sources, throughput."""

import os

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.data import images, sources
from kgan.data.images import DataError


def write_messy_folder(folder, rng):
    """A folder with good, odd and broken files. Returns (expected good names, bad count)."""
    os.makedirs(folder, exist_ok=True)
    rgb = rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(os.path.join(folder, "a_rgb.JPG"), quality=95)
    Image.fromarray(rgb[..., 0]).save(os.path.join(folder, "b_gray.png"))
    rgba = np.concatenate([rgb, np.full((40, 48, 1), 7, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(folder, "c_rgba.png"))
    rgb16 = rng.integers(0, 65536, (32, 32, 3), dtype=np.uint16)
    with open(os.path.join(folder, "d_rgb16.png"), "wb") as f:
        f.write(tf.io.encode_png(rgb16).numpy())
    gray16 = np.full((32, 32), 65535, np.uint16)
    gray16[:, :16] = 257 * 100
    Image.fromarray(gray16).save(os.path.join(folder, "e_gray16.png"))
    frames = [Image.fromarray(np.full((32, 32, 3), v, np.uint8)) for v in (10, 200)]
    frames[0].save(os.path.join(folder, "f_anim.gif"), save_all=True, append_images=frames[1:])
    Image.fromarray(rgb).save(os.path.join(folder, "g_rgb.bmp"))
    with open(os.path.join(folder, "a_rgb.JPG"), "rb") as f:
        jpeg = f.read()
    with open(os.path.join(folder, "x_truncated.jpg"), "wb") as f:
        f.write(jpeg[: len(jpeg) // 3])
    with open(os.path.join(folder, "y_corrupt.png"), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + bytes(rng.integers(0, 256, 200, dtype=np.uint8)))
    with open(os.path.join(folder, "z_text.jpg"), "w") as f:
        f.write("this is not an image")
    with open(os.path.join(folder, "notes.txt"), "w") as f:
        f.write("ignored: not an image extension")
    good = ["a_rgb.JPG", "b_gray.png", "c_rgba.png", "d_rgb16.png", "e_gray16.png",
            "f_anim.gif", "g_rgb.bmp"]
    return good, 3, rgb, rgb16


class ImagesTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.folder = os.path.join(self.get_temp_dir(), "messy")
        self.good, self.bad, self.rgb, self.rgb16 = write_messy_folder(
            self.folder, np.random.default_rng(0))

    def test_list_images_is_sorted_case_insensitive_and_skips_other_extensions(self):
        names = [os.path.basename(p) for p in images.list_images(self.folder)]
        self.assertEqual(names, sorted(self.good + ["x_truncated.jpg", "y_corrupt.png",
                                                    "z_text.jpg"]))

    def test_read_folder_decodes_good_files_and_counts_bad_ones(self):
        arrays, skipped = sources.read_image_folder(self.folder)
        self.assertEqual(skipped, self.bad)
        self.assertLen(arrays, len(self.good))
        for array in arrays:
            self.assertEqual(array.dtype, np.uint8)
            self.assertEqual(array.ndim, 3)
            self.assertEqual(array.shape[-1], 3)
        by_name = dict(zip(self.good, arrays))
        gray = by_name["b_gray.png"]
        self.assertAllEqual(gray[..., 0], self.rgb[..., 0])
        self.assertAllEqual(gray[..., 0], gray[..., 2])
        self.assertAllEqual(by_name["c_rgba.png"], self.rgb)  # Alpha dropped.
        self.assertAllEqual(by_name["g_rgb.bmp"], self.rgb)
        # 16-bit RGB keeps the high byte; 16-bit gray is scaled, not clipped to 255.
        self.assertAllClose(by_name["d_rgb16.png"].astype(int), self.rgb16 >> 8, atol=1)
        self.assertAllEqual(by_name["e_gray16.png"][0, 0], [100, 100, 100])
        self.assertAllEqual(by_name["e_gray16.png"][0, -1], [255, 255, 255])
        self.assertAllEqual(by_name["f_anim.gif"][0, 0], [10, 10, 10])  # First frame.

    def test_load_image_raises_on_broken_file(self):
        with self.assertRaises(Exception):
            images.load_image(os.path.join(self.folder, "x_truncated.jpg"))

    def test_missing_and_empty_folders_name_the_path(self):
        missing = os.path.join(self.get_temp_dir(), "does_not_exist")
        with self.assertRaisesRegex(DataError, "does_not_exist"):
            sources.scan_folder(missing)
        empty = os.path.join(self.get_temp_dir(), "empty_dir")
        os.makedirs(empty)
        with self.assertRaisesRegex(DataError, "empty_dir"):
            sources.scan_folder(empty)

    def test_folder_without_readable_image(self):
        folder = os.path.join(self.get_temp_dir(), "only_bad")
        os.makedirs(folder)
        with open(os.path.join(folder, "broken.png"), "wb") as f:
            f.write(b"not a png")
        with self.assertRaisesRegex(DataError, "No readable image.*only_bad"):
            sources.scan_folder(folder)

    def test_file_source_matches_memory_source(self):
        in_memory = sources.scan_folder(self.folder)
        from_files = sources.scan_folder(self.folder, cache_bytes=0)
        self.assertIsNotNone(in_memory.arrays)
        self.assertIsNone(from_files.arrays)
        self.assertEqual(from_files.skipped, self.bad)
        for index in range(in_memory.count):
            self.assertAllEqual(in_memory.load(index), from_files.load(index))
        ordered = [x.numpy() for x in in_memory.stream(shuffle=False, seed=0).take(3)]
        self.assertAllEqual(ordered[0], in_memory.arrays[0])

    def test_max_dataset_size_caps_readable_images(self):
        source = sources.scan_folder(self.folder, max_dataset_size=2)
        self.assertEqual(source.count, 2)

    def test_ensure_rgb(self):
        self.assertEqual(sources.ensure_rgb(tf.zeros([4, 4, 1], tf.uint8)).shape, [4, 4, 3])
        self.assertEqual(sources.ensure_rgb(tf.zeros([4, 4, 4], tf.uint8)).shape, [4, 4, 3])

    def test_measure_throughput(self):
        ds = tf.data.Dataset.from_tensors(tf.zeros([2, 8, 8, 3])).repeat()
        self.assertGreater(sources.measure_throughput(ds, num_batches=5), 0)


if __name__ == "__main__":
    tf.test.main()
