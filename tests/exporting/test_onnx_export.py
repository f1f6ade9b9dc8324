"""kgan.exporting.onnx: a generator's SavedModel as ONNX (dynamic sizes, XLA-marked conv inlined),
onnxruntime against Keras within the float32 bound, and the missing-extra error (the
export_generator(onnx=True) manifest entry is checked by tests/cli/test_convert_cli.py)."""

import os
import sys
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf

from kgan.exporting import export, saved_model
from kgan.exporting import onnx as onnx_export
from kgan.models import build_generator


def _photo(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


class OnnxExportTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.model = build_generator("resnet_6blocks", ngf=4)
        saved_model_dir = os.path.join(cls.tmp.name, "1")
        saved_model.export_saved_model(cls.model, saved_model_dir)
        cls.entry = onnx_export.export_and_verify(saved_model_dir, cls.tmp.name, cls.model,
                                                  [_photo(37, 45), _photo(20, 28, 1)])
        cls.path = os.path.join(cls.tmp.name, "model.onnx")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_resnet_onnx_matches_keras_at_several_sizes(self):
        entry = self.entry
        self.assertEqual(entry["path"], "model.onnx")
        self.assertEqual(list(entry["inputs"]), ["images"])
        self.assertEqual(list(entry["outputs"]), ["output_images"])
        check = entry["verification"]
        self.assertLess(check["max_abs_error"], onnx_export.ERROR_BOUND["max"])
        self.assertGreaterEqual(check["margin_db"], onnx_export.ERROR_BOUND["min_margin_db"])
        self.assertEqual(check["image_sizes"], [[37, 45], [20, 28]])
        runner = onnx_export.OnnxRunner(self.path)
        for shape in ((2, 32, 32, 3), (1, 44, 24, 3)):  # batch, height, width are dynamic
            x = np.random.default_rng(2).uniform(-1, 1, shape).astype(np.float32)
            np.testing.assert_allclose(runner(x), self.model(x, training=False), atol=1e-4)
        self.assertEqual(os.path.getsize(self.path), entry["size_bytes"])

    def test_a_wrong_or_constant_model_fails_verification(self):
        # Other random weights, drawn from a seed of their own: the global draw is not enough
        # (after an earlier export in the same process it repeated self.model's weights).
        keras.utils.set_random_seed(12345)
        other = build_generator("resnet_6blocks", ngf=4)
        self.assertGreater(max(np.abs(a - b).max() for a, b in
                               zip(other.get_weights(), self.model.get_weights())), 1e-3)
        zeros = build_generator("resnet_6blocks", ngf=4)
        zeros.set_weights([np.zeros_like(w) for w in zeros.get_weights()])
        images = [_photo(37, 45), _photo(20, 28, 1)]
        pattern = "does not match the Keras model.*dB over a constant image"
        for model in (other, zeros):
            with self.assertRaisesRegex(onnx_export.OnnxExportError, pattern):
                onnx_export.verify_onnx(self.path, model, images)
        # The zeros model's own ONNX file against the right model.
        zeros_dir = os.path.join(self.tmp.name, "zeros")
        saved_model.export_saved_model(zeros, os.path.join(zeros_dir, "1"))
        zeros_path = os.path.join(zeros_dir, "zeros.onnx")
        onnx_export.export_onnx(os.path.join(zeros_dir, "1"), zeros_path)
        with self.assertRaisesRegex(onnx_export.OnnxExportError, pattern):
            onnx_export.verify_onnx(zeros_path, self.model, images)

    def test_missing_extra_names_it(self):
        with mock.patch.dict(sys.modules, {"tf2onnx": None}):
            with self.assertRaisesRegex(onnx_export.OnnxMissingError, r"\.\[onnx\]"):
                onnx_export.require()
            with tempfile.TemporaryDirectory() as tmp:
                with self.assertRaises(onnx_export.OnnxMissingError):
                    export.export_generator(build_generator("resnet_6blocks", ngf=4), tmp,
                                            tflite="", onnx=True)
                self.assertEqual(os.listdir(tmp), [])  # failed before writing anything
