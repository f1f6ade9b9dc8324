"""kgan.cli.demo_page without a browser: which exports a --model path holds, what the page says
about them, translation of uploaded files (whole, tiled, TFLite), unreadable files, and the
message when Gradio is missing."""

import os
import shutil
import sys
import tempfile
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.cli import demo_page as demo_app
from kgan.exporting.export import export_generator
from kgan.models import resnet_generator


class DemoAppTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp(prefix="kgan_demo_app_")
        keras.utils.set_random_seed(0)
        cls.models = {}
        cyclegan = os.path.join(cls.root, "cyclegan")
        for direction in ("AtoB", "BtoA"):
            model = resnet_generator(n_blocks=1, ngf=4, name=f"G_{direction}")
            cls.models[direction] = model
            export_generator(model, os.path.join(cyclegan, direction),
                             tflite="float32" if direction == "AtoB" else "",
                             tflite_size=32, verify=False)
        cls.cyclegan = cyclegan
        rng = np.random.default_rng(0)
        cls.image = rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
        cls.big = rng.integers(0, 256, (100, 72, 3), dtype=np.uint8)
        cls.files = {"small.jpg": cls.image, "big.tiff": cls.big}
        for name, image in cls.files.items():
            Image.fromarray(image).save(os.path.join(cls.root, name), quality=95)
        with open(os.path.join(cls.root, "notes.txt"), "w") as f:
            f.write("text")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)
        super().tearDownClass()

    def path(self, name):
        return os.path.join(self.root, name)

    def keras_uint8(self, direction, image):
        x = image[None].astype(np.float32) / 127.5 - 1.0
        y = self.models[direction](x, training=False).numpy()[0]
        return np.clip(np.round((y + 1) * 127.5), 0, 255)

    def test_cyclegan_folder_gives_both_directions_and_its_facts(self):
        model = demo_app.demo_model(self.cyclegan)
        self.assertEqual(model.kind, "cycle_gan")
        self.assertEqual(model.name, "CycleGAN: cyclegan")
        self.assertEqual(list(model.translators), ["AtoB", "BtoA"])
        facts = dict(model.facts["AtoB"])
        self.assertIn("G_AtoB", facts["network"])
        self.assertEqual(facts["measured export error"], "not verified")
        self.assertIn("4", facts["size multiple"])

    def test_models_in_worker_processes_give_the_same_outputs(self):
        from kgan.serving.worker import WorkerTranslator

        local = demo_app.demo_model(self.cyclegan)
        workers = demo_app.demo_model(self.cyclegan, max_memory_growth_mib=2048)
        try:
            self.assertIsInstance(workers.translators["BtoA"], WorkerTranslator)
            paths = [self.path("small.jpg"), self.path("big.tiff")]
            for model, name in ((local, "local"), (workers, "workers")):
                results, errors = demo_app.translate_files(model, "BtoA", paths,
                                                           self.path(f"out_{name}"), tile=64)
                self.assertEqual((len(results), errors), (2, []))
            for stem in ("small", "big"):
                with Image.open(self.path(f"out_local/{stem}_output.png")) as f:
                    expected = np.asarray(f)
                with Image.open(self.path(f"out_workers/{stem}_output.png")) as f:
                    self.assertAllEqual(np.asarray(f), expected)
        finally:
            for translator in workers.translators.values():
                translator.close()

    def test_kind_comes_from_the_run_flags_when_present(self):
        folder = os.path.join(self.root, "restore_export")
        shutil.copytree(os.path.join(self.cyclegan, "BtoA"), os.path.join(folder, "generator"))
        with open(os.path.join(folder, "flags.cfg"), "w") as f:
            f.write("--crop_size=64\n--model=restore\n")
        model = demo_app.demo_model(folder)
        self.assertEqual((model.kind, list(model.translators)), ("restore", ["generator"]))
        single = demo_app.demo_model(os.path.join(folder, "generator"))
        self.assertEqual(single.name, "Restoration: restore_export")

    def test_files_are_translated_whole_or_tiled_and_bad_files_reported(self):
        model = demo_app.demo_model(self.cyclegan)
        out = os.path.join(self.root, "out_savedmodel")
        paths = [self.path("small.jpg"), self.path("notes.txt"), self.path("big.tiff")]
        results, errors = demo_app.translate_files(model, "BtoA", paths, out, tile=64)
        self.assertEqual([r["name"] for r in results], ["small.jpg", "big.tiff"])
        self.assertLen(errors, 1)
        self.assertRegex(errors[0], r"^notes\.txt: not a readable image")
        self.assertNotIn(self.root, errors[0])  # the upload folder is not shown
        small, big = results
        with Image.open(small["input"]) as f:
            decoded = np.asarray(f)  # the decoded JPEG the model saw
        with Image.open(small["output"]) as f:
            output = np.asarray(f)
        self.assertEqual(output.shape, self.image.shape)
        self.assertAllClose(output, self.keras_uint8("BtoA", decoded), atol=1)
        with Image.open(big["output"]) as f:
            tiled = np.asarray(f)
        self.assertEqual(tiled.shape, self.big.shape)  # 100 > 64: tiles, blended
        self.assertEqual(big["size"], (100, 72))
        self.assertGreater(big["seconds"], 0.0)

    def test_colourisation_export_gets_a_colourise_tab_that_keeps_the_luma(self):
        from kgan.metrics.color import gray_baseline, rgb_luma
        from kgan.models import colorization_generator

        keras.utils.set_random_seed(1)
        folder = os.path.join(self.root, "colorize", "generator")
        export_generator(colorization_generator(num_downs=5, ngf=4, self_attention=False),
                         folder, tflite="", verify=False, render_factor=6)
        model = demo_app.demo_model(folder)
        self.assertEqual(model.kind, "colorize")
        # The manifest's recommended render factor starts the tab, and the facts say so.
        self.assertEqual(model.render_factor, 6)
        facts = dict(model.facts["generator"])
        self.assertIn("colorize_uint8", facts["file"])
        self.assertIn("6 recommended", facts["render factor"])
        self.assertTrue(model.name.startswith("Colourisation"))
        gray = gray_baseline(self.image)
        Image.fromarray(gray).save(self.path("gray.png"))
        for factor in (2, demo_app.AUTO):
            results, errors = demo_app.translate_files(
                model, "generator", [self.path("gray.png")],
                os.path.join(self.root, f"out_colour_{factor}"), render_factor=factor)
            self.assertEqual(errors, [])
            with Image.open(results[0]["output"]) as f:
                output = np.asarray(f)
            self.assertEqual(output.shape, gray.shape)
            self.assertLessEqual(np.abs(rgb_luma(output) - gray[..., 0]).max(), 1.0)
        text = demo_app.summary_markdown(model, "generator", results, ["bad.png: unreadable"])
        self.assertIn("Colourised 1 image(s)", text)
        self.assertIn("1 file(s) not colourised", text)
        self.assertNotIn("Translated", text)

    def test_tflite_file_and_images_larger_than_its_fixed_size(self):
        model = demo_app.demo_model(os.path.join(self.cyclegan, "AtoB", "float32.tflite"))
        self.assertEqual(model.translators["generator"].fixed_size, 32)
        facts = dict(model.facts["generator"])
        self.assertIn("TFLite float32, fixed input [1, 32, 32, 3]", facts["file"])
        out = os.path.join(self.root, "out_tflite")
        results, errors = demo_app.translate_files(model, "generator", [self.path("big.tiff")],
                                                   out)
        self.assertEqual(errors, [])
        with Image.open(results[0]["output"]) as f:
            self.assertEqual(np.asarray(f).shape, self.big.shape)
        text = demo_app.summary_markdown(model, "generator", results, errors)
        self.assertIn("big.tiff: 72×100", text)
        self.assertIn("Translated 1 image(s)", text)

    def test_paths_that_are_not_exports_name_the_fix(self):
        with self.assertRaisesRegex(demo_app.DemoModelError, "does not exist"):
            demo_app.demo_model(self.path("missing"))
        with self.assertRaisesRegex(demo_app.DemoModelError, "holds no kgan export"):
            demo_app.demo_model(tempfile.mkdtemp(dir=self.root))
        with self.assertRaisesRegex(demo_app.DemoModelError, "at least one --model"):
            demo_app.build_demo([])

    def test_missing_gradio_names_the_extra(self):
        with mock.patch.dict(sys.modules, {"gradio": None}):
            with self.assertRaisesRegex(demo_app.DemoDependencyError, r"\.\[demo\]"):
                demo_app.import_gradio()

    def test_page_has_one_tab_per_model(self):
        blocks, output_root = demo_app.build_demo(
            [self.cyclegan, os.path.join(self.cyclegan, "AtoB", "float32.tflite")])
        import gradio as gr

        tabs = [block.label for block in blocks.blocks.values() if isinstance(block, gr.Tab)]
        self.assertEqual(tabs, ["CycleGAN: cyclegan", "Translation: float32.tflite"])
        self.assertTrue(os.path.isdir(output_root))


class DeOldifyDemoTest(tf.test.TestCase):
    """A DeOldify export (kgan.convert's output; a tiny stand-in here) gets its own tab that
    colourises with DeOldify's pipeline, also when the model runs in a worker process."""

    def test_deoldify_export_gets_its_own_tab_and_deoldifys_picture(self):
        from fixtures import deoldify_pipeline as reference
        from helpers import deoldify_stand_in

        root = tempfile.mkdtemp(prefix="kgan_demo_deoldify_")
        model, network = deoldify_stand_in()
        export = os.path.join(root, "deoldify_stable")
        export_generator(model, export, tflite="", verify=False, render_factor=5)
        image = np.random.default_rng(3).integers(0, 256, (30, 46, 3), dtype=np.uint8)
        path = os.path.join(root, "photo.png")
        Image.fromarray(image).save(path)
        for growth in (0, 2048):  # in this process; in a worker process (the CLI's default)
            demo_model = demo_app.demo_model(export, max_memory_growth_mib=growth)
            self.assertEqual((demo_model.name, demo_model.kind, demo_model.pipeline,
                              demo_model.render_factor),
                             ("DeOldify: deoldify_stable", "colorize", "deoldify", 5))
            self.assertIn("DeOldify", dict(demo_model.facts["generator"])["file"])
            results, errors = demo_app.translate_files(demo_model, "generator", [path],
                                                       os.path.join(root, f"out{growth}"))
            self.assertEqual(errors, [])
            output = np.asarray(Image.open(results[0]["output"]))
            expected = reference.colorize(network, image, 5)
            self.assertLessEqual(np.abs(output.astype(int) - expected).max(), 4)
            for translator in demo_model.translators.values():
                getattr(translator, "close", lambda: None)()
        shutil.rmtree(root, ignore_errors=True)
