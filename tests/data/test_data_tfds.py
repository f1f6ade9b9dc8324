"""Tests for kgan.data.tfds_source through the real TFDS code path (tfds.testing.mock_data)."""

import os

import tensorflow as tf
import tensorflow_datasets as tfds

from kgan.data import DataError, unpaired_dataset
from kgan.data.tfds_source import tfds_image_stream


class TfdsTest(tf.test.TestCase):

    def test_cycle_gan_splits_through_mock_data(self):
        # mock_data stands in for TFDS's download and reading, not for the files on disk that
        # kgan's check_prepared looks at: let "TFDS download" (mocked) here.
        with tfds.testing.mock_data(num_examples=5):
            ds, info = unpaired_dataset(tfds_name="cycle_gan/horse2zebra", load_size=36,
                                        crop_size=32, batch_size=2, seed=0, tfds_download=True)
            self.assertEqual((info.num_a, info.num_b, info.skipped), (5, 5, 0))
            self.assertEqual(info.steps_per_epoch, 2)
            self.assertIn("cycle_gan/horse2zebra", info.source)
            real_a, real_b = next(iter(ds))
            self.assertEqual(real_a.shape, (2, 32, 32, 3))
            self.assertEqual(real_b.dtype, tf.float32)
            self.assertBetween(float(tf.reduce_min(real_a)), -1.0, 1.0)
            _, test_info = unpaired_dataset(tfds_name="cycle_gan/horse2zebra", phase="test",
                                            load_size=36, crop_size=32, max_dataset_size=3,
                                            tfds_download=True)
            self.assertEqual(test_info.num_a, 3)

    def test_stream_is_endless_uint8_rgb(self):
        with tfds.testing.mock_data(num_examples=3):
            ds, count = tfds_image_stream("cycle_gan/horse2zebra", "trainB", seed=1,
                                          download=True)
            images = list(ds.take(7))
        self.assertEqual(count, 3)
        self.assertLen(images, 7)
        self.assertEqual(images[0].dtype, tf.uint8)
        self.assertEqual(images[0].shape[-1], 3)

    def test_missing_dataset_is_a_clear_error(self):
        empty = os.path.join(self.get_temp_dir(), "no_tfds_here")
        with self.assertRaisesRegex(DataError, "not prepared in .*no_tfds_here.*tfds_data_dir"):
            unpaired_dataset(tfds_name="cycle_gan/horse2zebra", tfds_data_dir=empty,
                             load_size=36, crop_size=32)
        with self.assertRaisesRegex(DataError, "no_such_dataset_xyz"):
            unpaired_dataset(tfds_name="no_such_dataset_xyz", tfds_data_dir=empty,
                             tfds_download=False, load_size=36, crop_size=32)


if __name__ == "__main__":
    tf.test.main()
