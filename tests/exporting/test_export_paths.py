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


def _modes(root):
    """``{relative path: permission bits}`` of everything under ``root`` (itself included)."""
    modes = {".": os.stat(root).st_mode & 0o777}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            modes[os.path.relpath(path, root)] = os.stat(path).st_mode & 0o777
    return modes


class UmaskTest(tf.test.TestCase):
    """Exports and reports follow the user's umask like any other output (TF Serving often runs
    as another user; reports are meant to be copied and shared), not tempfile's private 0700."""

    def setUp(self):
        super().setUp()
        self.previous = os.umask(0o022)
        self.addCleanup(os.umask, self.previous)

    def assert_follows_umask(self, root):
        modes = _modes(root)
        for path, mode in modes.items():
            expected = 0o755 if os.path.isdir(os.path.join(root, path)) else 0o644
            self.assertEqual(oct(mode), oct(expected), path)

    def test_export_folder_and_files(self):
        keras.utils.set_random_seed(0)
        final = os.path.join(self.get_temp_dir(), "umask_export")
        export_generator(resnet_generator(n_blocks=1, ngf=4), final, tflite=["float32"],
                         tflite_size=32, verify=False)
        self.assert_follows_umask(final)
        # Replacing an export keeps it so.
        export_generator(resnet_generator(n_blocks=1, ngf=4), final, tflite="", verify=False,
                         overwrite=True)
        self.assert_follows_umask(final)

    def test_report_files(self):
        import numpy as np

        from kgan.evaluation.report import write_run_report

        run = os.path.join(self.get_temp_dir(), "umask_run")
        image = np.zeros((16, 16, 3), np.uint8)
        write_run_report(run, [("a", image, image, None)], metrics={"psnr": 1.0})
        self.assert_follows_umask(run)
