"""Tests for kgan.evaluation.evaluate: PSNR/SSIM tables with baselines, FID/KID sets, the quality
check (a model worse than its input fails it), the CLI."""

import contextlib
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

from kgan.evaluation import evaluate
from kgan.metrics import image as metrics
from kgan.models import build_generator


def _pairs(n=3, size=24, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    clean = rng.uniform(-1, 1, (n, size, size, 3)).astype("float32")
    degraded = np.clip(clean + rng.normal(0, noise, clean.shape), -1, 1).astype("float32")
    return tf.data.Dataset.from_tensor_slices((degraded, clean)).batch(2), degraded, clean


def _identity_model():
    inputs = keras.Input((None, None, 3))
    return keras.Model(inputs, keras.layers.Activation("linear")(inputs))


class EvaluatePairsTest(tf.test.TestCase):

    def test_identity_model_scores_as_degraded_input(self):
        ds, degraded, clean = _pairs()
        results = evaluate.evaluate_pairs(_identity_model(), ds)
        self.assertEqual(results["num_images"], 3)
        expected_psnr = float(np.mean(metrics.psnr(degraded, clean)))
        self.assertAllClose(results["model"]["psnr"], expected_psnr, rtol=1e-5)
        self.assertAllClose(results["degraded_input"], results["model"], rtol=1e-6)
        self.assertIn("bicubic", results)
        table = evaluate.format_table(results)
        self.assertIn("degraded_input", table)
        self.assertIn("3 images of ", table)
        self.assertIn("+0.00 dB", table)

    def test_baselines_only_and_max_images(self):
        ds, _, _ = _pairs(n=5)
        results = evaluate.evaluate_pairs(None, ds, max_images=3)
        self.assertEqual(results["num_images"], 3)
        self.assertNotIn("model", results)

    def test_generator_on_sizes_off_its_multiple(self):
        generator = build_generator("resnet_6blocks", ngf=4)
        images = tf.random.uniform((1, 30, 26, 3), -1, 1)
        self.assertEqual(evaluate.run_generator(generator, images).shape, (1, 30, 26, 3))

    def test_bicubic_baseline_keeps_shape_and_smooth_images(self):
        ramp = tf.tile(tf.linspace(-1.0, 1.0, 32)[tf.newaxis, :, tf.newaxis, tf.newaxis],
                       (1, 1, 32, 3))
        out = evaluate.bicubic_baseline(ramp, 2.0)
        self.assertEqual(out.shape, ramp.shape)
        self.assertAllClose(out[:, 4:-4], ramp[:, 4:-4], atol=0.02)
        with self.assertRaisesRegex(ValueError, "> 1"):
            evaluate.bicubic_baseline(ramp, 1.0)

    def test_empty_dataset_is_a_clear_error(self):
        ds, _, _ = _pairs()
        with self.assertRaisesRegex(ValueError, "empty"):
            evaluate.evaluate_pairs(None, ds.take(0))


class EvaluateSetsTest(tf.test.TestCase):

    def test_fid_kid_sets_with_stand_in_features(self):
        ds, _, _ = _pairs(n=8, noise=0.5)
        feature_fn = lambda x: tf.reshape(tf.image.resize(x, (2, 2)), (tf.shape(x)[0], -1))
        results = evaluate.evaluate_sets_fid_kid(_identity_model(), ds, feature_fn=feature_fn,
                                                 kid_subsets=2, kid_subset_size=4)
        self.assertEqual(results["num_images"], 8)
        self.assertAllClose(results["model"]["fid"], results["degraded_input"]["fid"])
        self.assertGreater(results["degraded_input"]["fid"], 0.0)
        merged = evaluate.merge_results(evaluate.evaluate_pairs(None, ds), results)
        self.assertIn("fid", merged["bicubic"])
        self.assertIn("psnr", merged["bicubic"])
        self.assertIn("FID", evaluate.format_table(merged))

    def test_metric_parsing(self):
        self.assertEqual(evaluate.parse_metrics("psnr, kid", "restoration"), ["psnr", "kid"])
        with self.assertRaisesRegex(ValueError, "ground truth"):
            evaluate.parse_metrics("psnr", "unpaired")
        with self.assertRaisesRegex(ValueError, "subset"):
            evaluate.parse_metrics("lpips", "paired")


class CheckQualityTest(tf.test.TestCase):

    README = {"model": {"psnr": 24.97, "ssim": 0.729}, "degraded_input": {"psnr": 24.12},
              "bicubic": {"psnr": 23.71}}

    def test_the_readme_quickstart_passes_the_ci_margin(self):
        self.assertAllClose(evaluate.check_quality(self.README, 0.5), 0.85)
        self.assertAllClose(evaluate.check_quality(self.README, 1.0, baseline="bicubic"), 1.26)

    def test_a_model_worse_than_its_input_fails(self):
        """Real results of a generator that blurs its input: below the input."""
        dataset, _, _ = _pairs(noise=0.05)
        inputs = keras.Input((None, None, 3))
        blurred = keras.layers.AveragePooling2D(3, strides=1, padding="same")(inputs)
        results = evaluate.evaluate_pairs(keras.Model(inputs, blurred), dataset)
        self.assertLess(results["model"]["psnr"], results["degraded_input"]["psnr"])
        with self.assertRaisesRegex(evaluate.QualityError, r"psnr .* beats degraded_input's .* "
                                    r"by -\d.*below the required 0\.5"):
            evaluate.check_quality(results, 0.5)

    def test_a_gain_within_the_margin_or_nan_fails(self):
        identity = evaluate.evaluate_pairs(_identity_model(), _pairs()[0])
        with self.assertRaises(evaluate.QualityError):
            evaluate.check_quality(identity, 0.5)  # gain 0 dB
        self.assertAllClose(evaluate.check_quality(identity, 0.0), 0.0, atol=1e-6)
        with self.assertRaises(evaluate.QualityError):
            evaluate.check_quality({"model": {"psnr": float("nan")},
                                    "degraded_input": {"psnr": 20.0}}, 0.5)

    def test_lower_is_better_metrics_and_missing_ones(self):
        colour = {"model": {"colour_score": 20.5}, "gray_input": {"colour_score": 58.7}}
        self.assertAllClose(evaluate.check_quality(colour, 10.0, "colour_score", "gray_input"),
                            38.2)
        gray_model = {"model": {"colour_score": 58.7}, "gray_input": {"colour_score": 58.7}}
        with self.assertRaises(evaluate.QualityError):
            evaluate.check_quality(gray_model, 10.0, "colour_score", "gray_input")
        with self.assertRaisesRegex(ValueError, "no 'psnr' for 'degraded_input'"):
            evaluate.check_quality({"model": {"psnr": 20.0}, "degraded_input": {}}, 0.5)

    def test_cli_require_prints_the_gain(self):
        from kgan.cli.evaluate import require

        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            require(self.README, 0.5, "psnr", "degraded_input", " dB")
        self.assertIn("quality check passed: psnr beats degraded_input by +0.85 dB (required "
                      "0.5 dB)", out.getvalue())


class CliTest(tf.test.TestCase):

    def _run(self, *args):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        return subprocess.run([sys.executable, "-m", "kgan.evaluate", *args],
                              capture_output=True, text=True, env=env, timeout=300)

    def test_cli_scores_a_saved_generator_on_held_out_photos(self):
        run = os.path.join(self.get_temp_dir(), "run")
        os.makedirs(os.path.join(run, "generators"))
        build_generator("resnet_6blocks", ngf=4).save(
            os.path.join(run, "generators", "generator.keras"))
        # The run's own evaluation settings (as training wrote them) are the defaults, so the
        # command reproduces the table the run printed.
        with open(os.path.join(run, "flags.cfg"), "w") as f:
            f.write("--model=restore\n--eval_size=64\n--degradations=downscale\n--seed=3\n")
        path = os.path.join(self.get_temp_dir(), "eval.json")
        result = self._run(f"--checkpoint_dir={run}", "--max_images=3",
                           f"--output_json={path}")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("PSNR (dB)", result.stdout)
        with open(path) as f:
            results = json.load(f)
        self.assertEqual(results["source"]["crop_size"], 64)
        self.assertEqual(results["source"]["degradations"], "downscale")
        self.assertEqual(results["source"]["seed"], 3)
        self.assertEqual(results["num_images"], 3)
        # Restoration scores tiles of the photos, and the table says so.
        self.assertEqual(results["scored"], "3 tiles of 64x64 px")
        self.assertIn("3 tiles of 64x64 px; RGB", result.stdout)
        for method in ("model", "degraded_input", "bicubic"):
            self.assertGreater(results[method]["psnr"], 0.0)
            self.assertBetween(results[method]["ssim"], -1.0, 1.0)

    def test_cli_report_prints_the_runs_table_and_writes_the_page(self):
        run = os.path.join(self.get_temp_dir(), "report_run")
        os.makedirs(os.path.join(run, "generators"))
        build_generator("resnet_6blocks", ngf=4).save(
            os.path.join(run, "generators", "generator.keras"))
        with open(os.path.join(run, "flags.cfg"), "w") as f:
            f.write("--model=restore\n--eval_size=64\n--degradations=downscale\n")
        saved = {"model": {"psnr": 25.5, "ssim": 0.75},
                 "degraded_input": {"psnr": 24.0, "ssim": 0.70}, "num_images": 3,
                 "scored": "3 tiles of 64x64 px"}
        with open(os.path.join(run, "evaluation.json"), "w") as f:
            json.dump(saved, f)
        result = self._run(f"--checkpoint_dir={run}", "--report")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("model vs degraded input: +1.50 dB PSNR", result.stdout)
        self.assertIn("3 tiles of 64x64 px", result.stdout)
        self.assertTrue(os.path.isfile(os.path.join(run, "report.html")))

    def test_cli_require_gain_fails_a_model_worse_than_its_input(self):
        """An untrained generator is far below the degraded input: one error line, status 2,
        after the table and the JSON are written."""
        model = os.path.join(self.get_temp_dir(), "g.keras")
        build_generator("resnet_6blocks", ngf=4).save(model)
        path = os.path.join(self.get_temp_dir(), "eval.json")
        result = self._run(f"--model={model}", "--crop_size=64", "--max_images=2",
                           "--require_gain_db=0.5", f"--output_json={path}")
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        self.assertIn("model vs degraded input", result.stdout)
        self.assertTrue(os.path.isfile(path))
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        self.assertLen(errors, 1)
        self.assertRegex(errors[0], r"^kgan\.evaluate: error: the model's psnr .* below the "
                         r"required 0\.5")

    def test_cli_missing_model_is_a_clear_error(self):
        result = self._run("--model=/nonexistent/g.keras")
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("no such file", result.stderr)


if __name__ == "__main__":
    tf.test.main()
