"""``python -m kgan.convert`` end to end, in a subprocess: a legacy-format, DataParallel-saved
reference checkpoint (ngf 4, written here without torch) becomes generator.keras plus a
verified SavedModel and model.onnx, all recorded in manifest.json."""

import json
import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from helpers import ROOT
from PIL import Image

from kgan.interop import pytorch_weights, torch_pickle
from kgan.models import build_generator


class ConvertCliTest(tf.test.TestCase):

    def test_convert_writes_a_verified_export(self):
        source = build_generator("resnet_6blocks", ngf=4)
        rng = np.random.default_rng(0)
        for variable in source.weights:
            variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.3)
        state = {"module." + k: v for k, v in pytorch_weights.keras_to_state_dict(source).items()}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "latest_net_G.pth")
            torch_pickle.save_state_dict(state, checkpoint, legacy=True)
            verify_dir = os.path.join(tmp, "photos")
            os.makedirs(verify_dir)
            Image.fromarray(rng.integers(0, 256, (30, 38, 3), dtype=np.uint8)).save(
                os.path.join(verify_dir, "a.png"))
            output_dir = os.path.join(tmp, "out")
            env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
            result = subprocess.run(
                [sys.executable, "-m", "kgan.convert", f"--pytorch={checkpoint}",
                 "--netG=resnet_6blocks", "--ngf=4", f"--output_dir={output_dir}",
                 "--tflite=", f"--verify_dir={verify_dir}",
                 "--onnx"],
                capture_output=True, text=True, env=env, cwd=tmp, timeout=600)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            printed = json.loads(result.stdout.strip().splitlines()[-1])
            self.assertEqual(printed["keras"], os.path.join(output_dir, "generator.keras"))
            self.assertEqual(sorted(os.listdir(output_dir)),
                             ["1", "generator.keras", "manifest.json", "model.onnx"])
            with open(os.path.join(output_dir, "manifest.json")) as f:
                manifest = json.load(f)
            self.assertEqual(manifest["source"]["pytorch"], checkpoint)
            self.assertEqual(manifest["source"]["flags"]["generator"], "resnet_6blocks")
            self.assertEqual(manifest["verify_image_sizes"], [[30, 38]])
            self.assertLess(manifest["saved_model"]["verification"]["max_abs_error"], 1e-4)
            self.assertEqual(manifest["tflite"], {})  # --tflite= (kgan.exporting.export tests TFLite)
            self.assertLess(manifest["onnx"]["verification"]["max_abs_error"], 1e-4)
            converted = keras.saving.load_model(os.path.join(output_dir, "generator.keras"),
                                                safe_mode=True, compile=False)
            x = rng.uniform(-1, 1, (1, 32, 40, 3)).astype(np.float32)
            np.testing.assert_array_equal(converted(x), source(x))
