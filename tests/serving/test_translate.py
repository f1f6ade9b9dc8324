"""Tests for kgan.translate: folders of mixed images (sizes, grayscale, RGBA, corrupt), the three
model sources (SavedModel, TFLite, training run), seamless tiling, the HTML page and the CLI."""

import os
import subprocess
import sys
import tempfile

import keras
import numpy as np
import tensorflow as tf
from helpers import photo, run_cli
from PIL import Image

from kgan.cli.common import model_or_run
from kgan.data import images
from kgan.exporting import export, verify
from kgan.models import resnet_generator
from kgan.serving import inference, tiling
from kgan.serving.loading import load_model


class TranslateTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(3)
        cls.tmp = tempfile.mkdtemp()
        # No instance norm: its per-image statistics would make tiles differ from the whole.
        cls.model = resnet_generator(n_blocks=1, ngf=4, norm="none")
        cls.run_dir = os.path.join(cls.tmp, "run")
        os.makedirs(os.path.join(cls.run_dir, "generators"))
        cls.model.save(os.path.join(cls.run_dir, "generators", "AtoB.keras"))
        cls.model.save(os.path.join(cls.run_dir, "generators", "BtoA.keras"))
        cls.export_dir = os.path.join(cls.tmp, "export")
        export.export_generator(cls.model, cls.export_dir, tflite=("float32",), tflite_size=32,
                                verify=False)

        cls.inputs = os.path.join(cls.tmp, "inputs")
        os.makedirs(cls.inputs)
        Image.fromarray(photo(40, 52)).save(os.path.join(cls.inputs, "a.png"))
        Image.fromarray(photo(40, 52)).save(os.path.join(cls.inputs, "b.jpg"), quality=95)
        Image.fromarray(photo(33, 47)).convert("L").save(os.path.join(cls.inputs, "gray.png"))
        rgba = np.concatenate([photo(21, 30), np.full((21, 30, 1), 128, np.uint8)], axis=-1)
        Image.fromarray(rgba, "RGBA").save(os.path.join(cls.inputs, "alpha.png"))
        Image.fromarray(photo(24, 18)).save(os.path.join(cls.inputs, "c.bmp"))
        Image.fromarray(photo(24, 18)).convert("P").save(os.path.join(cls.inputs, "d.gif"))
        with open(os.path.join(cls.inputs, "corrupt.jpg"), "wb") as f:
            f.write(b"\xff\xd8\xff\xe0 definitely not a jpeg")
        with open(os.path.join(cls.inputs, "notes.txt"), "w") as f:
            f.write("ignored: not an image extension")
        cls.good = ["a", "b", "gray", "alpha", "c", "d"]

    def _check_outputs(self, summary, out):
        self.assertEqual(summary["translated"], len(self.good))
        self.assertEqual([os.path.basename(p) for p, _ in summary["skipped"]], ["corrupt.jpg"])
        for stem in self.good:
            source = images.load_image(
                os.path.join(self.inputs, next(n for n in os.listdir(self.inputs)
                                               if os.path.splitext(n)[0] == stem)))
            result = np.asarray(Image.open(os.path.join(out, stem + ".png")))
            self.assertEqual(result.shape, source.shape, stem)
        self.assertGreater(summary["images_per_second"], 0)

    def test_folder_through_saved_model_matches_keras(self):
        out = os.path.join(self.tmp, "out_saved_model")
        translator = load_model(self.export_dir)
        messages = []
        summary = inference.translate_images(translator, self.inputs, out, batch_size=2,
                                             log=messages.append)
        self._check_outputs(summary, out)
        self.assertIn("Skipped 1 unreadable file(s): corrupt.jpg", messages[-1])
        for stem, name in (("a", "a.png"), ("gray", "gray.png"), ("alpha", "alpha.png")):
            source = images.load_image(os.path.join(self.inputs, name))
            result = np.asarray(Image.open(os.path.join(out, stem + ".png")))
            expected = verify.reference_uint8(self.model, source)
            self.assertLessEqual(np.abs(result.astype(int) - expected).max(), 1, stem)
        with open(os.path.join(out, "index.html")) as f:
            page = f.read()
        for stem in self.good:
            self.assertIn(f"src='{stem}.png'", page)
            self.assertTrue(os.path.isfile(os.path.join(out, "index_files", stem + "_input.jpg")))
        self.assertIn("corrupt.jpg", page)

    def test_tflite_and_training_run_sources(self):
        tflite = load_model(os.path.join(self.export_dir, "float32.tflite"))
        self.assertEqual(tflite.fixed_size, 32)
        out = os.path.join(self.tmp, "out_tflite")
        self._check_outputs(inference.translate_images(tflite, self.inputs, out, html=False,
                                                       log=lambda _: None), out)
        self.assertFalse(os.path.exists(os.path.join(out, "index.html")))

        keras_translator = load_model(self.run_dir,
                                                     direction="BtoA")
        image = photo(24, 18)
        self.assertAllEqual(keras_translator(image[np.newaxis])[0],
                            verify.reference_uint8(self.model, image))
        # An image that fits the TFLite size is padded to it; away from the padding it matches.
        self.assertLessEqual(np.abs(tflite(image[np.newaxis])[0, 6:-6, 6:-6].astype(int)
                                    - verify.reference_uint8(self.model, image)[6:-6, 6:-6]
                                    ).max(), 2)

    def test_tiles_blend_without_seams(self):
        image = photo(96, 136)
        translator = load_model(self.run_dir)
        whole = translator(image[np.newaxis])[0].astype(int)
        tiled = tiling.translate_tiled(translator, image, tile=64, overlap=24).astype(int)
        self.assertEqual(tiled.shape, whole.shape)
        diff = np.abs(tiled - whole)
        self.assertLessEqual(diff[8:-8, 8:-8].max(), 2)
        self.assertLess(diff.mean(), 0.2)

    def test_16_bit_png_translates_like_its_8_bit_twin(self):
        folder = os.path.join(self.tmp, "bit_depths")
        os.makedirs(folder)
        gray8 = np.asarray(Image.fromarray(photo(28, 36)).convert("L"))
        Image.fromarray(gray8).save(os.path.join(folder, "eight.png"))
        Image.fromarray(gray8.astype(np.uint16) * 257).save(os.path.join(folder, "sixteen.png"))
        self.assertEqual(Image.open(os.path.join(folder, "sixteen.png")).mode[:3], "I;1")
        out = os.path.join(self.tmp, "out_bit_depths")
        translator = load_model(self.run_dir)
        summary = inference.translate_images(translator, folder, out, log=lambda _: None)
        self.assertEqual(summary["translated"], 2)
        eight = np.asarray(Image.open(os.path.join(out, "eight.png")))
        sixteen = np.asarray(Image.open(os.path.join(out, "sixteen.png")))
        self.assertAllEqual(sixteen, eight)

    def test_keras_file_is_a_model(self):
        path = os.path.join(self.run_dir, "generators", "AtoB.keras")
        translator = load_model(path)
        image = photo(24, 18)
        self.assertAllEqual(translator(image[np.newaxis])[0],
                            verify.reference_uint8(self.model, image))
        result = run_cli("translate", f"--model={path}", f"--input={self.inputs}",
                         f"--output={os.path.join(self.tmp, 'out_cli')}", timeout=180)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("6 translated, 1 skipped", result.stdout)

    def test_large_images_tile_automatically_and_out_of_memory_retries_in_tiles(self):
        translator = load_model(self.run_dir)
        self.assertIsNone(inference.choose_tile(translator, 40, 52))
        # A self-attention model's limit: the translator tiles above it.
        calls = []

        def limited(images):
            calls.append(images.shape[1:3])
            if images.shape[1] * images.shape[2] > 64 * 64:
                raise tf.errors.ResourceExhaustedError(None, None, "OOM when allocating")
            return translator(images)

        limited.pixel_limit, limited.multiple, limited.fixed_size = 48 * 48, 4, None
        self.assertEqual(inference.choose_tile(limited, 96, 136), 48)
        self.assertEqual(inference.choose_tile(limited, 96, 136, tile=0), None)
        image = photo(96, 136)
        tiled, side = inference.translate_one(limited, image)
        self.assertEqual((tiled.shape, side), (image.shape, 48))
        # Told to translate whole (--tile=0), the OOM makes it retry in tiles, not fail.
        calls.clear()
        whole, side = inference.translate_one(limited, image, tile=0)
        self.assertEqual(whole.shape, image.shape)
        self.assertEqual(calls[0], (96, 136))
        self.assertLessEqual(side, 64)

    def test_one_failing_file_does_not_end_the_run(self):
        translator = load_model(self.run_dir)

        def flaky(images):
            if images.shape[1:3] == (21, 30):  # alpha.png
                raise tf.errors.InvalidArgumentError(None, None, "a kernel failed")
            return translator(images)

        flaky.fixed_size, flaky.pixel_limit, flaky.multiple = None, None, 4
        out = os.path.join(self.tmp, "out_flaky")
        summary = inference.translate_images(flaky, self.inputs, out, log=lambda _: None)
        self.assertEqual(summary["translated"], len(self.good) - 1)
        reasons = dict(summary["skipped"])
        self.assertIn("translation failed (a kernel failed)",
                      reasons[os.path.join(self.inputs, "alpha.png")])

    def test_names_and_errors(self):
        names = images.output_names(["x/a.jpg", "x/a.png", "x/b.gif"])
        self.assertEqual(names, {"x/a.jpg": "a_jpg.png", "x/a.png": "a_png.png",
                                 "x/b.gif": "b.png"})
        with self.assertRaisesRegex(ValueError, "exactly one"):
            model_or_run(None, None)
        with self.assertRaisesRegex(ValueError, "exactly one"):
            model_or_run("a", "b")
        with self.assertRaisesRegex(ValueError, "--direction=CtoD"):
            load_model(self.run_dir, direction="CtoD")
        with self.assertRaisesRegex(FileNotFoundError, "several exports"):
            load_model(self._two_exports())
        with self.assertRaisesRegex(FileNotFoundError, "does not exist"):
            images.list_images(os.path.join(self.tmp, "missing"))
        with self.assertRaisesRegex(ValueError, "is the input folder"):
            inference.translate_images(lambda x: x, self.inputs, self.inputs)
        with self.assertRaisesRegex(ValueError, "not a readable image"):
            images.load_image(os.path.join(self.inputs, "corrupt.jpg"))

    def _two_exports(self):
        parent = os.path.join(self.tmp, "two_exports")
        for name in ("AtoB", "BtoA"):
            os.makedirs(os.path.join(parent, name, "1"), exist_ok=True)
            open(os.path.join(parent, name, "1", "saved_model.pb"), "w").close()
        return parent

    def test_cli_translates_a_single_file(self):
        out = os.path.join(self.tmp, "out_cli")
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-m", "kgan.translate", f"--model={self.export_dir}",
             f"--input={os.path.join(self.inputs, 'b.jpg')}", f"--output={out}"],
            capture_output=True, text=True, env=env)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("1 translated, 0 skipped", result.stdout)
        self.assertIn("images/s", result.stdout)
        self.assertTrue(os.path.isfile(os.path.join(out, "b.png")))
        self.assertTrue(os.path.isfile(os.path.join(out, "index.html")))


if __name__ == "__main__":
    tf.test.main()
