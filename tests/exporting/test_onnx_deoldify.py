"""ONNX of a converted DeOldify colouriser (issue 23): the Artistic fixture
(tests/fixtures/deoldify/artistic.pth, a small DynamicUnetDeep with DeOldify's key names) is
converted by kgan.interop.deoldify_weights, exported as ``kgan.convert --onnx`` does
(``export_generator(..., onnx=True)``: SavedModel -> tf2onnx, verified with onnxruntime against
the Keras model), and the ONNX file reproduces the outputs REAL PyTorch computed for the file
(tests/fixtures/deoldify/outputs.npz) within 1e-4, both on the export's [-1, 1] RGB and on
DeOldify's raw [-3, 3] output (the raw network exported the same way). Measured here (tf2onnx
1.16, onnxruntime, CPU): 1.4e-6 on the export's output, 3.3e-6 on the raw output. A wrongly
converted model (pixel shuffle left unpermuted) fails the export's ONNX verification and is
off the bound."""

import os
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
from helpers import ROOT

from kgan.exporting import export, saved_model
from kgan.exporting import onnx as onnx_export
from kgan.interop import deoldify_weights as dw
from kgan.models import raw_network
from kgan.models.encoders import TORCH_MEAN, TORCH_STD

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
TOLERANCE = 1e-4
MEAN, STD = np.float32(TORCH_MEAN), np.float32(TORCH_STD)


def _photo(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def _artistic():
    return dw.load_deoldify_generator(os.path.join(FIXTURES, "artistic.pth"),
                                      "deoldify_artistic")


class DeOldifyOnnxTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            onnx_export.require()
        except onnx_export.OnnxMissingError as error:
            raise __import__("unittest").SkipTest(str(error))
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = _artistic()
        cls.images = [_photo(37, 45), _photo(20, 28, 1)]
        cls.export_dir = os.path.join(cls.tmp.name, "export")
        cls.manifest = export.export_generator(cls.model, cls.export_dir, tflite="", onnx=True,
                                               verify_images=cls.images, render_factor=35)
        cls.runner = onnx_export.OnnxRunner(os.path.join(cls.export_dir, "model.onnx"))
        with np.load(os.path.join(FIXTURES, "outputs.npz")) as data:
            cls.arrays = {key: data[key] for key in data.files if key.startswith("artistic/")}

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def _worst_against_torch(self, run):
        worst = 0.0
        for i in range(2):
            x, raw = self.arrays[f"artistic/input_{i}"], self.arrays[f"artistic/output_{i}"]
            expected = np.clip(raw * STD + MEAN, 0, 1) * 2 - 1  # DeOldifyOutput
            worst = max(worst, float(np.abs(run(x) - expected).max()))
        return worst

    def test_the_export_verifies_its_onnx_file_and_equals_pytorch(self):
        entry = self.manifest["onnx"]
        self.assertEqual(entry["path"], "model.onnx")
        self.assertTrue(self.manifest["verified"], self.manifest.get("unverified"))
        self.assertLess(entry["verification"]["max_abs_error"], TOLERANCE)
        self.assertEqual(self.manifest["pipeline"], "deoldify")
        self.assertLess(self._worst_against_torch(self.runner), TOLERANCE)

    def test_the_raw_network_in_onnx_equals_pytorch_on_the_raw_output(self):
        raw_dir = os.path.join(self.tmp.name, "raw")
        saved_model.export_saved_model(raw_network(self.model), os.path.join(raw_dir, "1"))
        path = os.path.join(raw_dir, "raw.onnx")
        onnx_export.export_onnx(os.path.join(raw_dir, "1"), path)
        runner = onnx_export.OnnxRunner(path)
        worst = 0.0
        for i in range(2):
            x, raw = self.arrays[f"artistic/input_{i}"], self.arrays[f"artistic/output_{i}"]
            actual = runner(((x + 1) / 2 - MEAN) / STD)
            self.assertEqual(actual.shape, raw.shape)
            worst = max(worst, float(np.abs(actual - raw).max()))
        self.assertLess(worst, TOLERANCE)

    def test_a_wrongly_converted_model_breaks_the_bounds(self):
        with mock.patch.object(dw, "_shuffle_order", lambda channels: np.arange(channels)):
            wrong = _artistic()
        with self.assertRaisesRegex(onnx_export.OnnxExportError, "does not match"):
            onnx_export.verify_onnx(os.path.join(self.export_dir, "model.onnx"), wrong,
                                    self.images)
        self.assertGreater(self._worst_against_torch(
            lambda x: np.asarray(wrong(x, training=False))), TOLERANCE)
