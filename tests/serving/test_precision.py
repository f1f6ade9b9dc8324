"""Tests for bfloat16 inference (kgan.serving.precision and the translators' ``precision=``): the
copy runs its convolutions in bf16 and its output tail in float32, stays within a stated bound of
float32 on real photos, leaves the original model alone, and the CLIs take ``--precision``."""

import json
import os

import keras
import numpy as np
import tensorflow as tf
from helpers import photo, run_cli

from kgan.core.errors import UsageError
from kgan.exporting.saved_model import export_saved_model
from kgan.models import build_generator
from kgan.models.colorize import colorization_generator
from kgan.models.generators import unet_generator
from kgan.serving import precision, runs
from kgan.serving import translators as serving
from kgan.serving.loading import load_model


def _graph_dtypes(model, op_types, size=32):
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((1, size, size, 3), tf.float32)).graph
    return {tf.dtypes.as_dtype(op.get_attr("T")).name
            for op in graph.get_operations() if op.type in op_types}


class WithPrecisionTest(tf.test.TestCase):

    def setUp(self):
        keras.utils.set_random_seed(0)

    def test_bf16_copy_runs_convs_in_bf16_and_keeps_a_float32_tail(self):
        model = unet_generator(num_downs=5, ngf=8, norm="batch", use_dropout=False,
                               upsample="pixel_shuffle", residual=True)
        copy = precision.with_precision(model, "bfloat16")
        self.assertEqual(_graph_dtypes(copy, ("Conv2D",)), {"bfloat16"})
        self.assertEqual(_graph_dtypes(model, ("Conv2D",)), {"float32"})  # original unchanged
        self.assertEqual(set(precision.compute_dtypes(copy).values()), {"bfloat16"})
        by_name = {layer.name: layer for layer in copy.layers}
        for name in ("residual", "residual_clip", "residual_unshift"):
            self.assertEqual(by_name[name].compute_dtype, "float32", name)
        x = tf.constant(np.random.default_rng(0).uniform(-1, 1, (2, 32, 32, 3)), tf.float32)
        y32, y16 = model(x, training=False), copy(x, training=False)
        self.assertEqual(y16.dtype, tf.float32)
        error = np.abs(y32.numpy() - y16.numpy())
        self.assertGreater(error.max(), 0.0)       # really computed in bf16
        self.assertLess(error.max(), 0.05)
        for a, b in zip(model.get_weights(), copy.get_weights()):
            self.assertAllEqual(a, b)

    def test_round_trip_to_float32_is_exact(self):
        model = build_generator("resnet_6blocks", ngf=4)
        back = precision.with_precision(precision.with_precision(model, "bfloat16"), "float32")
        x = tf.constant(np.random.default_rng(1).uniform(-1, 1, (1, 32, 32, 3)), tf.float32)
        self.assertAllEqual(model(x, training=False), back(x, training=False))
        self.assertEqual(_graph_dtypes(back, ("Conv2D",)), {"float32"})

    def test_output_tail_of_a_colorization_model(self):
        model = colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True)
        tail = {layer.name for layer in model.layers
                if id(layer) in precision.output_tail(model)}
        self.assertIn("luma_chroma_merge", tail)
        self.assertFalse(any(layer.weights for layer in model.layers if layer.name in tail))

    def test_a_generator_trained_in_bf16_exports_as_float32_and_verifies(self):
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        try:
            model = build_generator("resnet_6blocks", ngf=4)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        self.assertIn("bfloat16", set(precision.compute_dtypes(model).values()))
        from kgan.exporting.export import export_generator
        manifest = export_generator(model, os.path.join(self.get_temp_dir(), "bf16_export"),
                                    tflite="float32", verify=True)
        self.assertLess(manifest["saved_model"]["verification"]["max_abs_error"], 1e-4)
        self.assertEqual(set(precision.compute_dtypes(model).values()) - {"float32"},
                         {"bfloat16"}, "the trained model itself is left in bf16")

    def test_unknown_precision(self):
        with self.assertRaisesRegex(UsageError, "float32, bfloat16"):
            precision.check_precision("float16")


class TranslatorPrecisionTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        keras.utils.set_random_seed(0)
        cls.tmp = tf.compat.v1.test.get_temp_dir()
        cls.model = build_generator("resnet_6blocks", ngf=8)
        cls.keras_path = runs.save_generators({"AtoB": cls.model},
                                              os.path.join(cls.tmp, "run"))["AtoB"]
        cls.photos = np.stack([photo(48, 40, "astronaut"), photo(48, 40, "coffee")])

    def test_bf16_translator_within_bound_on_photos(self):
        f32 = load_model(self.keras_path)
        bf16 = load_model(self.keras_path, precision="bfloat16")
        self.assertEqual((f32.precision, bf16.precision), ("float32", "bfloat16"))
        a, b = f32(self.photos).astype(int), bf16(self.photos).astype(int)
        self.assertEqual(b.shape, self.photos.shape)
        error = np.abs(a - b)
        # Random tiny weights: bf16's 8-bit mantissa moves outputs by a few levels at most.
        self.assertLess(error.mean(), 1.5)
        self.assertLessEqual(error.max(), 12)
        self.assertGreater(error.max(), 0)

    def test_checkpoint_dir_and_export_source(self):
        run_dir = os.path.dirname(os.path.dirname(self.keras_path))
        from_run = load_model(run_dir, precision="bfloat16")
        self.assertEqual(_graph_dtypes(from_run.model, ("Conv2D",)), {"bfloat16"})
        export_dir = os.path.join(self.tmp, "export")
        export_saved_model(self.model, os.path.join(export_dir, "1"))
        with self.assertRaisesRegex(UsageError, "names no .keras"):
            load_model(export_dir, precision="bfloat16")
        with open(os.path.join(export_dir, "manifest.json"), "w") as f:
            json.dump({"source": {"checkpoint": self.keras_path}}, f)
        from_export = load_model(export_dir, precision="bfloat16")
        self.assertIsInstance(from_export, serving.KerasTranslator)
        self.assertAllEqual(from_export(self.photos), from_run(self.photos))
        self.assertIsInstance(load_model(export_dir),
                              serving.SavedModelTranslator)

    def test_tflite_refuses_bf16(self):
        path = os.path.join(self.tmp, "model.tflite")
        with open(path, "wb") as f:
            f.write(b"not read")
        with self.assertRaisesRegex(UsageError, "tflite"):
            load_model(path, precision="bfloat16")

    def test_translate_cli_bf16(self):
        from PIL import Image
        src, out = os.path.join(self.tmp, "in"), os.path.join(self.tmp, "out")
        os.makedirs(src, exist_ok=True)
        Image.fromarray(self.photos[0]).save(os.path.join(src, "a.png"))
        result = run_cli("translate", f"--model={self.keras_path}", f"--input={src}",
                         f"--output={out}", "--precision=bfloat16", "--nohtml")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        written = np.asarray(Image.open(os.path.join(out, "a.png")))
        expected = load_model(self.keras_path, precision="bfloat16")(
            self.photos[:1])[0]
        self.assertLessEqual(np.abs(written.astype(int) - expected).max(), 1)


class ColorizePrecisionTest(tf.test.TestCase):

    def test_colorize_bf16_keeps_luma_and_is_close_to_float32(self):
        from PIL import Image

        from kgan.colorization.colorizer import Colorizer
        from kgan.models.colorize import luma
        from kgan.serving.loading import load_model

        keras.utils.set_random_seed(0)
        tmp = self.get_temp_dir()
        path = os.path.join(tmp, "colorize.keras")
        colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True).save(path)
        gray = photo(40, 56, "coffee")
        outputs = {p: Colorizer(load_model(path, precision=p), render_factor=2).colorize(gray)
                   for p in ("float32", "bfloat16")}
        error = np.abs(outputs["float32"].astype(int) - outputs["bfloat16"])
        self.assertLess(error.mean(), 1.0)
        self.assertLessEqual(error.max(), 6)
        y_in = luma(gray.astype(np.float32)[None] / 255.0).numpy()
        y_out = luma(outputs["bfloat16"].astype(np.float32)[None] / 255.0).numpy()
        self.assertLess(np.abs(y_in - y_out).max() * 255, 1.5)  # luma kept up to rounding
        src, out = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(src)
        Image.fromarray(gray).save(os.path.join(src, "g.png"))
        result = run_cli("colorize", f"--model={path}", f"--input={src}", f"--output={out}",
                         "--render_factor=2", "--precision=bfloat16", "--noprogress")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        written = np.asarray(Image.open(os.path.join(out, "g.png")))
        self.assertAllEqual(written, outputs["bfloat16"])


if __name__ == "__main__":
    tf.test.main()
