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
from helpers import ROOT, run_cli
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

    def test_readme_command_on_a_published_style_no_dropout_checkpoint(self):
        # The reference's published CycleGAN generators: legacy format, DataParallel prefix,
        # instance-norm running statistics on every norm layer (old PyTorch saved them), no
        # dropout. Without dropout conv_block.6 is the second instance norm, so its running
        # statistics must not be read as a dropout-shifted conv.
        source = build_generator("resnet_9blocks", ngf=4)
        rng = np.random.default_rng(1)
        for variable in source.weights:
            variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.3)
        state = pytorch_weights.keras_to_state_dict(source)
        norms = ["model.2", "model.5", "model.8", "model.20", "model.23"]
        norms += [f"model.{10 + b}.conv_block.{j}" for b in range(9) for j in (2, 6)]
        for prefix in norms:
            head, index = prefix.rsplit(".", 1)
            channels = state[f"{head}.{int(index) - 1}.bias"].shape[0]  # the conv before it
            state[f"{prefix}.running_mean"] = np.zeros(channels, np.float32)
            state[f"{prefix}.running_var"] = np.ones(channels, np.float32)
            state[f"{prefix}.num_batches_tracked"] = np.array(0, np.int64)
        state = {"module." + k: v for k, v in state.items()}
        with tempfile.TemporaryDirectory() as tmp:
            checkpoint = os.path.join(tmp, "latest_net_G.pth")
            torch_pickle.save_state_dict(state, checkpoint, legacy=True)
            output_dir = os.path.join(tmp, "horse2zebra")
            # The README's command (kgan.convert --pytorch=... --generator=resnet_9blocks
            # --output_dir=...), with a tiny --ngf and no TFLite files to keep it fast.
            result = run_cli("convert", f"--pytorch={checkpoint}", "--generator=resnet_9blocks",
                             f"--output_dir={output_dir}", "--ngf=4", "--tflite=",
                             cwd=tmp, timeout=600)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            converted = keras.saving.load_model(os.path.join(output_dir, "generator.keras"),
                                                safe_mode=True, compile=False)
            x = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
            np.testing.assert_array_equal(converted(x), source(x))
            text, flags_line = pytorch_weights.describe_checkpoint(
                pytorch_weights.strip_module_prefix(torch_pickle.load_state_dict(checkpoint)))
            self.assertIn("no dropout", text)
            self.assertIn("--no_dropout", flags_line)
            self.assertNotIn("--no_dropout=false", flags_line)
