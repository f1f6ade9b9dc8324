"""Tests for kgan.core.weights: where pretrained weights files are looked for."""

import os
from unittest import mock

import tensorflow as tf

from kgan.core.weights import keras_cache_path


class KerasCachePathTest(tf.test.TestCase):

    def test_keras_home_is_read_at_call_time(self):
        home = self.get_temp_dir()
        with mock.patch.dict(os.environ, {"KERAS_HOME": home}):
            self.assertEqual(keras_cache_path("w.h5"), os.path.join(home, "models", "w.h5"))

    def test_unset_or_empty_keras_home_means_the_home_folder(self):
        expected = os.path.join(os.path.expanduser("~"), ".keras", "models", "w.h5")
        with mock.patch.dict(os.environ, {"KERAS_HOME": ""}):
            self.assertEqual(keras_cache_path("w.h5"), expected)
        environ = {k: v for k, v in os.environ.items() if k != "KERAS_HOME"}
        with mock.patch.dict(os.environ, environ, clear=True):
            self.assertEqual(keras_cache_path("w.h5"), expected)


if __name__ == "__main__":
    tf.test.main()
