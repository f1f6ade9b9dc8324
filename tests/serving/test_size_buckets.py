"""Tests for kgan.serving.size_buckets and its use in kgan.serving.inference
(``size_buckets=True``): the bucket sizes, the grid-keeping reflect padding and crop, one call per
bucket for a folder of sizes,
and where the outputs change."""

import os
import tempfile

import keras
import numpy as np
import tensorflow as tf
from helpers import photo
from PIL import Image

from kgan.models import resnet_generator
from kgan.serving import inference, size_buckets
from kgan.serving.translators import KerasTranslator


class RecordingTranslator:
    """uint8 batch -> 255 - batch, recording the batch shapes it is called with."""

    fixed_size, pixel_limit, multiple = None, None, 4

    def __init__(self):
        self.shapes = []

    def __call__(self, images):
        self.shapes.append(images.shape)
        return 255 - images


class SizeBucketsTest(tf.test.TestCase):

    def test_bucket_sides(self):
        cases = {1: 4, 10: 12, 40: 40, 47: 48, 64: 64, 65: 72, 100: 104, 140: 144, 256: 256,
                 286: 288, 600: 640, 1080: 1152, 1920: 1920, 3000: 3072}
        self.assertEqual({side: size_buckets.bucket_side(side, 4) for side in cases}, cases)
        sides = range(1, 3000)
        buckets = [size_buckets.bucket_side(side, 4) for side in sides]
        for side, bucket in zip(sides, buckets):
            self.assertEqual(bucket % 4, 0)
            self.assertLessEqual(bucket, max(side * 1.125, side + 3), side)
        self.assertEqual(buckets, sorted(buckets))
        # Sides 64..160 after the multiple of 4: 25 shapes per side; as buckets: 11.
        self.assertLen({size_buckets.bucket_side(side, 4) for side in range(64, 161)}, 11)
        self.assertEqual(size_buckets.bucket_side(300, 256), 512)  # a UNet's multiple rules

    def test_bucket_shape_keeps_within_the_pixel_limit(self):
        self.assertEqual(size_buckets.bucket_shape(100, 140, 4), (104, 144))
        self.assertEqual(size_buckets.bucket_shape(100, 140, 4, pixel_limit=104 * 144), (104, 144))
        self.assertEqual(size_buckets.bucket_shape(100, 145, 4, pixel_limit=104 * 144),
                         (100, 148))
        self.assertEqual(size_buckets.bucket_shape(101, 140, 4, pixel_limit=100 * 140),
                         (104, 140))

    def test_pad_and_crop(self):
        image = photo(21, 30)
        # The offset the translator's own padding to 4 gives (1 above, 1 left), the rest of
        # the padding below and to the right.
        padded, top, left = size_buckets.pad_to_shape(image, 24, 40, multiple=4)
        self.assertEqual((padded.shape, top, left), ((24, 40, 3), 1, 1))
        self.assertAllEqual(padded[top:top + 21, left:left + 30], image)
        self.assertAllEqual(padded[0, 1:31], image[1])  # reflected, not repeated
        self.assertAllEqual(padded[1:22, 31], image[:, 28])
        self.assertEqual(size_buckets.pad_to_shape(image, 24, 40)[1:], (0, 0))
        tiny = np.full((1, 2, 3), 7, np.uint8)
        self.assertAllEqual(size_buckets.pad_to_shape(tiny, 9, 9)[0], np.full((9, 9, 3), 7))
        same, _, _ = size_buckets.pad_to_shape(image, 21, 30)
        self.assertIs(same, image)

    def test_a_folder_of_sizes_runs_one_call_per_bucket(self):
        folder, out = tempfile.mkdtemp(), tempfile.mkdtemp()
        sizes = [(97, 130), (100, 136), (103, 141), (98, 129), (64, 64), (65, 64)]
        for i, (height, width) in enumerate(sizes):
            Image.fromarray(photo(height, width)).save(os.path.join(folder, f"{i}.png"))
        translator = RecordingTranslator()
        summary = inference.translate_images(translator, folder, out, batch_size=4,
                                             html=False, log=lambda _: None, size_buckets=True)
        self.assertEqual(summary["translated"], 6)
        self.assertCountEqual(translator.shapes, [(4, 104, 144, 3), (1, 64, 64, 3),
                                                  (1, 72, 64, 3)])
        for i, (height, width) in enumerate(sizes):
            source = np.asarray(Image.open(os.path.join(folder, f"{i}.png")))
            result = np.asarray(Image.open(os.path.join(out, f"{i}.png")))
            self.assertAllEqual(result, 255 - source)  # cropped back exactly
        exact = RecordingTranslator()
        inference.translate_images(exact, folder, tempfile.mkdtemp(), html=False,
                                   log=lambda _: None)  # the default: each image's own size
        self.assertCountEqual([shape[1:3] for shape in exact.shapes], sizes)
        one = RecordingTranslator()
        self.assertAllEqual(inference.translate_one(one, photo(97, 130), size_buckets=True)[0],
                            255 - photo(97, 130))
        self.assertEqual(one.shapes, [(1, 104, 144, 3)])
        one.fixed_size = 256  # a fixed-size (TFLite) translator keeps its own padding
        self.assertEqual(inference.whole_shape(one, 97, 130, size_buckets=True), (97, 130))

    def test_outputs_change_only_near_the_added_border(self):
        """A norm-free generator: identical away from the padding below and to the right (the
        image keeps its place on the stride-2 grid); an instance-norm one also moves in the
        interior, through its statistics, by little on a large image."""
        keras.utils.set_random_seed(1)
        for norm, interior_mean in (("none", 0.0), ("instance", 2.5)):
            translator = KerasTranslator(resnet_generator(n_blocks=2, ngf=8, norm=norm))
            for height, width in ((250, 330), (202, 131)):
                image = photo(height, width)
                exact = translator(image[np.newaxis])[0].astype(int)
                bucketed = inference.translate_one(translator, image, size_buckets=True)[0]
                diff = np.abs(bucketed.astype(int) - exact)
                self.assertEqual(diff.shape, exact.shape)
                # 64 px: more than the tiny generator's receptive field from the new border.
                interior = diff[:height - 64, :width - 64]
                if norm == "none":
                    self.assertLessEqual(interior.max(), 1, (height, width))
                else:
                    self.assertLess(interior.mean(), interior_mean, (height, width))
        # On a bucket already: identical.
        image = photo(64, 96)
        self.assertEqual(inference.whole_shape(translator, 64, 96, size_buckets=True), (64, 96))
        self.assertAllEqual(inference.translate_one(translator, image, size_buckets=True)[0],
                            translator(image[np.newaxis])[0])
