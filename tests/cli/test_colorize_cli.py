"""Tests for ``python -m kgan.colorize`` and the colourisation export: a folder through the CLI
with a tiny .keras model (outputs exist, same sizes, luma kept, alpha kept, a broken file
skipped), the SavedModel's colorize_uint8 signature (labelled unverified for a gray model; a
wrong and a zeros model fail its check) and the fixed-size TFLite file through the same
inference, user errors, and a video."""

import contextlib
import io
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

from kgan.colorization.colorizer import Colorizer, check_render_factor, recommended_render_factor
from kgan.exporting import export
from kgan.exporting.colorize_signature import verify_colorize_signature
from kgan.exporting.saved_model import export_saved_model
from kgan.exporting.verify import ExportVerificationError
from kgan.metrics import color as cm
from kgan.models.colorize import colorization_generator
from kgan.serving.loading import load_model


def _run_cli(*args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", "kgan.colorize", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=300)


def _photo(height, width, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (height, width, 3)).astype(np.uint8)


class ColorizeCliTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        cls.tmp = tempfile.mkdtemp()
        cls.model = colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True)
        cls.keras_path = os.path.join(cls.tmp, "colorize.keras")
        cls.model.save(cls.keras_path)

    def test_folder_with_keras_model(self):
        src = os.path.join(self.tmp, "in")
        os.makedirs(src)
        images = {"a.png": _photo(40, 56, 1), "b.jpg": _photo(33, 21, 2)}
        for name, image in images.items():
            Image.fromarray(image).save(os.path.join(src, name))
        rgba = np.concatenate([_photo(24, 30, 3), np.full((24, 30, 1), 9, np.uint8)], -1)
        Image.fromarray(rgba).save(os.path.join(src, "c.png"))
        with open(os.path.join(src, "d.png"), "wb") as f:
            f.write(b"broken")
        out = os.path.join(self.tmp, "out")
        result = _run_cli(f"--model={self.keras_path}", f"--input={src}", f"--output={out}",
                          "--render_factor=3")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("3 colourised, 1 skipped", result.stdout)
        self.assertIn("d.png", result.stderr)
        for name, image in images.items():
            colour = np.asarray(Image.open(os.path.join(out, name[:-4] + ".png")))
            self.assertEqual(colour.shape, image.shape)
            source = np.asarray(Image.open(os.path.join(src, name)).convert("RGB"))
            self.assertLessEqual(np.abs(cm.rgb_luma(colour) - cm.rgb_luma(source)).max(),
                                 0.5 + 1e-3)
        self.assertTrue(np.all(np.asarray(Image.open(os.path.join(out, "c.png")))[..., 3] == 9))

    def test_colorize_signature_check_fails_for_wrong_and_zeros_models(self):
        # A colouriser with real chroma (init gain 0.2: std ~16 levels) verifies; one with other
        # weights and one with zero weights (gray output) fail the signature's check.
        def build(seed):
            keras.utils.set_random_seed(seed)
            return colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True,
                                          init_gain=0.2)

        model, wrong, zeros = build(0), build(1), build(2)
        zeros.set_weights([np.zeros_like(w) for w in zeros.get_weights()])
        saved = os.path.join(self.tmp, "colourful", "1")
        export_saved_model(model, saved)
        images = [_photo(27, 35, 5)]
        check = verify_colorize_signature(saved, model, images)
        self.assertTrue(check["colorize_uint8_verified"])
        self.assertGreaterEqual(check["colorize_uint8_chroma_margin_db"], 10)
        for other in (wrong, zeros):
            with self.assertRaisesRegex(ExportVerificationError, "colorize_uint8 differs"):
                verify_colorize_signature(saved, other, images)

    def test_user_errors(self):
        from kgan.cli import colorize as cli

        for args, message in (
                (["--input=/nonexistent.png", "--render_factor=auto"], "does not exist"),
                ([f"--input={self.keras_path}", "--render_factor=-3"], "positive integer")):
            stderr = io.StringIO()
            with contextlib.redirect_stderr(stderr), self.assertRaises(SystemExit) as exit_:
                cli.main(["kgan.colorize", f"--model={self.keras_path}",
                          f"--output={self.tmp}/x", *args])
            self.assertEqual(exit_.exception.code, 2)
            self.assertIn(message, stderr.getvalue())
        self.assertEqual(check_render_factor(None, video=True), 21)
        self.assertEqual(check_render_factor("", video=False), 35)
        self.assertEqual(check_render_factor("Auto", video=False), "auto")
        self.assertTrue(cli.is_video("a/b.MKV"))
        self.assertFalse(cli.is_video("a/b.png"))

    def test_a_model_that_is_not_a_colouriser_is_refused(self):
        from kgan.models import build_generator

        translator = os.path.join(self.tmp, "translator.keras")
        build_generator("resnet_6blocks", ngf=4).save(translator)
        src = os.path.join(self.tmp, "gray_in")
        os.makedirs(src)
        Image.fromarray(_photo(32, 32, 8)).save(os.path.join(src, "a.png"))
        out = os.path.join(self.tmp, "not_coloured")
        result = _run_cli(f"--model={translator}", f"--input={src}", f"--output={out}",
                          "--render_factor=2", "--noprogress")
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        self.assertLen(errors, 1, result.stderr[-2000:])
        self.assertIn("is not a colourisation model", errors[0])
        self.assertIn("resnet_6blocks", errors[0])
        self.assertIn("kgan.translate", errors[0])
        self.assertIn("--model=colorize", errors[0])
        self.assertNotIn("colourised", result.stdout)
        self.assertFalse(os.path.exists(out))

    def test_export_signature_and_tflite(self):
        export_dir = os.path.join(self.tmp, "export")
        verify = [_photo(27, 35, 5)]  # one odd-sized image: each verification reloads TF
        manifest = export.export_generator(self.model, export_dir, tflite=["float32"],
                                           tflite_size=64, verify_images=verify,
                                           render_factor=5)
        self.assertIn("colorize_uint8", manifest["signatures"])
        # The recommended render factor travels with the export; kgan.colorize, kgan.evaluate
        # and the demo read it when the user gives none.
        self.assertEqual(manifest["render_factor"], 5)
        self.assertEqual(recommended_render_factor(export_dir), 5)
        self.assertIsNone(recommended_render_factor(self.keras_path))  # nothing says
        run = os.path.join(self.tmp, "run_with_flags")
        os.makedirs(os.path.join(run, "generators"), exist_ok=True)
        with open(os.path.join(run, "flags.cfg"), "w") as handle:
            handle.write("--model=colorize\n--eval_size=128\n")
        self.assertEqual(recommended_render_factor(run), 8)  # --eval_size / 16
        self.assertEqual(recommended_render_factor(
            os.path.join(run, "generators", "generator.keras")), 8)
        check = manifest["saved_model"]["verification"]
        self.assertLessEqual(check["colorize_uint8_max_uint8_error"], 1)
        self.assertLessEqual(check["colorize_uint8_max_luma_error"], 0.5 + 1e-3)
        with open(os.path.join(export_dir, "manifest.json")) as f:
            self.assertIn("colorize_uint8", json.load(f)["signatures"])
        # This tiny model's chroma is 0 levels (gray): the check cannot tell it from another
        # model, so the signature is labelled unverified.
        self.assertFalse(check["colorize_uint8_verified"])
        self.assertFalse(manifest["verified"])
        self.assertEqual(manifest["unverified"], ["colorize_uint8"])
        image = _photo(45, 61, 6)
        expected = Colorizer(self.model, 4).colorize(image)
        saved = Colorizer(load_model(export_dir), 4).colorize(image)
        self.assertLessEqual(np.abs(saved.astype(int) - expected.astype(int)).max(), 1)
        tflite = load_model(os.path.join(export_dir, "float32.tflite"))
        self.assertEqual(tflite.fixed_size, 64)
        from_tflite = Colorizer(tflite, 35).colorize(image)  # runs at its own 64 px
        self.assertLessEqual(np.abs(from_tflite.astype(int) - expected.astype(int)).max(), 1)

    def test_video(self):
        import imageio_ffmpeg

        source = os.path.join(self.tmp, "clip.mp4")
        writer = imageio_ffmpeg.write_frames(source, (48, 32), fps=8, macro_block_size=1)
        writer.send(None)
        for i in range(6):
            writer.send(np.ascontiguousarray(np.roll(_photo(32, 48, 7), 2 * i, axis=1)))
        writer.close()
        output = os.path.join(self.tmp, "clip_colour.mp4")
        result = _run_cli(f"--model={self.keras_path}", f"--input={source}",
                          f"--output={output}", "--render_factor=2", "--noprogress")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        reader = imageio_ffmpeg.read_frames(output)
        meta = reader.__next__()
        self.assertEqual(tuple(meta["size"]), (48, 32))
        self.assertEqual(sum(1 for _ in reader), 6)
