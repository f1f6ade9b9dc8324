"""``python -m kgan.convert --generator=deoldify_*``: a DeOldify fixture file becomes a verified
export folder (SavedModel and TFLite float32 checked against the Keras model by kgan.exporting's
verify path) whose manifest carries DeOldify's render factor, and whose SavedModel reproduces
the real PyTorch outputs; a wrong variant is one error line, exit code 2."""

import json
import os

import numpy as np
import tensorflow as tf
from helpers import ROOT, run_cli

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")


class ConvertDeOldifyTest(tf.test.TestCase):

    def test_artistic_fixture_exports_verified_with_its_render_factor(self):
        out = os.path.join(self.get_temp_dir(), "deoldify_artistic")
        result = run_cli("convert", f"--pytorch={os.path.join(FIXTURES, 'artistic.pth')}",
                         "--generator=deoldify_artistic", f"--output_dir={out}",
                         "--tflite=float32", "--tflite_size=64", timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        with open(os.path.join(out, "manifest.json")) as f:
            manifest = json.load(f)
        self.assertEqual(manifest["render_factor"], 35)
        self.assertTrue(manifest["verified"], manifest.get("unverified"))
        # The SavedModel against torch's own outputs (through DeOldifyOutput: [-1, 1]).
        with np.load(os.path.join(FIXTURES, "outputs.npz")) as data:
            x, raw = data["artistic/input_1"], data["artistic/output_1"]
        loaded = tf.saved_model.load(os.path.join(out, manifest["saved_model"]["path"]))
        images = loaded.signatures["serving_default"](tf.constant(x))
        actual = np.asarray(next(iter(images.values())))
        mean, std = np.float32((0.485, 0.456, 0.406)), np.float32((0.229, 0.224, 0.225))
        expected = np.clip(raw * std + mean, 0, 1) * 2 - 1
        self.assertAllClose(actual, expected, atol=1e-4)

    def test_a_stable_file_as_artistic_is_one_line(self):
        result = run_cli("convert", f"--pytorch={os.path.join(FIXTURES, 'stable.pth')}",
                         "--generator=deoldify_artistic",
                         f"--output_dir={self.get_temp_dir()}/x")
        self.assertEqual(result.returncode, 2)
        lines = result.stderr.strip().splitlines()
        self.assertIn("--generator=deoldify_stable or --generator=deoldify_video", lines[-1])
        self.assertEqual(len([line for line in lines if "error" in line]), 1)
