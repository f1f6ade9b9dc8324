"""kgan.exporting.export with a relative output folder: the verification reloads the SavedModel in a
fresh process whose working directory differs, so the path it gets must be absolute."""

import json
import os

import keras
import tensorflow as tf

from kgan.exporting.export import export_generator
from kgan.models import resnet_generator


class RelativeExportDirTest(tf.test.TestCase):

    def test_verified_export_to_a_relative_folder(self):
        keras.utils.set_random_seed(0)
        model = resnet_generator(n_blocks=1, ngf=4)
        cwd = os.getcwd()
        os.chdir(self.get_temp_dir())
        try:
            manifest = export_generator(model, os.path.join("relative", "generator"),
                                        tflite="", verify=True)
        finally:
            os.chdir(cwd)
        check = manifest["saved_model"]["verification"]
        self.assertLess(check["max_abs_error"], 1e-4)
        path = os.path.join(self.get_temp_dir(), "relative", "generator", "manifest.json")
        with open(path) as f:
            self.assertEqual(json.load(f)["saved_model"]["verification"], check)
