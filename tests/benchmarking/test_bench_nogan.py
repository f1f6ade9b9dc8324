"""Tests for kgan.benchmarking.bench's additions: NoGAN (restore, colorize) phase FLOP counts
against hand
computations and in a tiny timed run, bf16 inference rows, and the report's new rows."""

import keras
import numpy as np
import tensorflow as tf

from kgan.benchmarking import bench
from kgan.benchmarking import nogan as bench_nogan
from kgan.benchmarking import table as bench_report
from kgan.benchmarking.bench import BenchOptions
from kgan.core import measure
from kgan.models.generators import unet_generator
from kgan.recipes import make_config


def _conv_model(channels_in, channels_out, size):
    inputs = keras.Input((size, size, channels_in))
    return keras.Model(inputs, keras.layers.Conv2D(channels_out, 3, padding="same")(inputs))


class _FakePerceptual:
    """A content loss with a ``features`` network, as ``losses.PerceptualLoss``."""

    def __init__(self, size):
        self.features = _conv_model(3, 5, size)


class NoGANFlopsTest(tf.test.TestCase):

    def test_phase_formulas(self):
        g, c, v = 100, 10, 1000
        self.assertEqual(measure.nogan_step_flops("pretrain_g", g, c, v), 300 + 3000)
        self.assertEqual(measure.nogan_step_flops("pretrain_d", g, c, v), 100 + 60)
        self.assertEqual(measure.nogan_step_flops("gan_generator", g, c, v), 300 + 20 + 3000)
        self.assertEqual(measure.nogan_step_flops("gan_critic", g, c, v), 100 + 60)
        with self.assertRaisesRegex(ValueError, "Unknown NoGAN update"):
            measure.nogan_step_flops("nogan", g, c, v)

    def test_counts_from_traced_networks_match_hand_computation(self):
        size, batch = 8, 2
        generator, critic = _conv_model(3, 3, size), _conv_model(3, 1, size)
        g = 2 * 9 * 3 * 3 * size * size * batch
        c = 2 * 9 * 3 * 1 * size * size * batch
        v = 2 * 9 * 3 * 5 * size * size * batch
        shape = (batch, size, size, 3)
        loss = _FakePerceptual(size)
        gan = bench_nogan.nogan_flops("gan", generator, critic, loss, shape, shape)
        self.assertAllClose(gan["generator_forward_gflop"], g / 1e9)
        self.assertAllClose(gan["discriminator_forward_gflop"], c / 1e9)
        self.assertAllClose(gan["vgg_forward_gflop"], v / 1e9)
        self.assertAllClose(gan["gan_generator_update_gflop"], (3 * g + 2 * c + 3 * v) / 1e9)
        self.assertAllClose(gan["gan_critic_update_gflop"], (g + 6 * c) / 1e9)
        self.assertAllClose(gan["step_gflop"], (4 * g + 8 * c + 3 * v) / 1e9)
        pretrain_g = bench_nogan.nogan_flops("pretrain_g", generator, None, loss, shape, shape)
        self.assertAllClose(pretrain_g["step_gflop"], (3 * g + 3 * v) / 1e9)
        self.assertIsNone(pretrain_g["discriminator_forward_gflop"])
        pretrain_d = bench_nogan.nogan_flops("pretrain_d", generator, critic, loss, shape, shape)
        self.assertAllClose(pretrain_d["step_gflop"], (g + 6 * c) / 1e9)
        self.assertEqual(pretrain_d["vgg_forward_gflop"], 0.0)
        # A pixel content loss has no feature network.
        pixel = bench_nogan.nogan_flops("pretrain_g", generator, None, object(), shape, shape)
        self.assertAllClose(pixel["step_gflop"], 3 * g / 1e9)


class NoGANBenchTest(tf.test.TestCase):

    def _config(self, **fields):
        fields = dict(dict(ngf=4, critic_nf=4, crop_size=64, unet_downs=5, batch_size=1,
                           content_loss="perceptual", vgg_weights="none", seed=0), **fields)
        return make_config(**fields)

    def _run(self, pipeline=False, **fields):
        options = BenchOptions(steps=1, warmup=1, inference=False, pipeline=pipeline,
                               probe=False)
        return bench.run_config(self._config(**fields), options)

    def test_restore_gan_phase_times_a_critic_and_a_generator_update(self):
        result = self._run(model="restore", phase="gan")
        self.assertEqual(result["updates_per_step"], 2)
        g, c, v = (result[k] for k in ("generator_forward_gflop", "discriminator_forward_gflop",
                                       "vgg_forward_gflop"))
        self.assertGreater(v, 0.0)
        self.assertAllClose(result["step_gflop"], 4 * g + 8 * c + 3 * v)
        self.assertAllClose(result["achieved_gflops"],
                            result["step_gflop"] / result["step_median_s"])
        self.assertEqual(result["content_loss"], "perceptual (fastai, VGG16 none)")

    def test_colorize_pretrain_g_counts_the_vgg_and_times_the_pipeline(self):
        result = self._run(model="colorize", phase="pretrain_g", pipeline=True)
        self.assertEqual(result["updates_per_step"], 1)
        self.assertAllClose(result["step_gflop"], 3 * result["generator_forward_gflop"]
                            + 3 * result["vgg_forward_gflop"])
        self.assertGreater(result["achieved_gflops"], 0.0)
        self.assertGreater(result["input_images_per_s"], 0.0)
        self.assertAllClose(result["input_over_step_consumption"],
                            result["input_images_per_s"] / result["images_per_s"])

    def test_the_timed_pipeline_is_the_recipes(self):
        # colorize: gray inputs made on the fly (three equal channels), colour targets.
        inputs, targets = next(iter(bench_nogan.nogan_input_dataset(
            self._config(model="colorize", batch_size=2))))
        self.assertEqual(inputs.shape, (2, 64, 64, 3))
        self.assertAllClose(inputs[..., 0], inputs[..., 1])
        self.assertGreater(float(tf.reduce_max(tf.abs(targets[..., 0] - targets[..., 1]))), 0.1)
        # restore: degraded inputs differ from their clean targets.
        inputs, targets = next(iter(bench_nogan.nogan_input_dataset(
            self._config(model="restore", batch_size=2))))
        self.assertGreater(float(tf.reduce_mean(tf.abs(inputs - targets))), 0.01)


class InferencePrecisionTest(tf.test.TestCase):

    def test_fp32_and_bf16_rows_and_the_uint8_error(self):
        keras.utils.set_random_seed(0)
        generator = unet_generator(num_downs=5, ngf=8, norm="batch", use_dropout=False,
                                   upsample="pixel_shuffle", residual=False, name="g")
        x = np.random.default_rng(0).uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
        result = bench.bench_inference_precisions(generator, x, generator_gflop=0.5, reps=1)
        for tag in ("fp32", "bf16"):
            self.assertGreater(result[f"inference_{tag}_images_per_s"], 0.0)
            self.assertAllClose(result[f"inference_{tag}_gflops"],
                                0.5 * result[f"inference_{tag}_images_per_s"])
        # bf16 really ran (some difference) and stays within a few levels.
        self.assertGreater(result["inference_bf16_vs_fp32_max_uint8"], 0.0)
        self.assertLess(result["inference_bf16_vs_fp32_mean_uint8"], 3.0)
        self.assertLessEqual(result["inference_bf16_vs_fp32_mean_uint8"],
                             result["inference_bf16_vs_fp32_max_uint8"])
        measure.add_inference_peak_ratios(result, {"conv_fp32_gflops": 10.0,
                                                   "conv_bf16_gflops": 20.0})
        self.assertAllClose(result["inference_bf16_ratio_to_conv_peak"],
                            result["inference_bf16_gflops"] / 20.0)
        self.assertAllClose(result["inference_fp32_ratio_to_conv_peak"],
                            result["inference_fp32_gflops"] / 10.0)

    def test_report_prints_the_new_rows(self):
        config = dict(make_config(model="restore", phase="gan").__dict__, steps=1, warmup=1)
        report = {"machine": {"model": "cpu", "cores": 2, "features": [],
                              "load_average": [0.0, 0.0, 0.0]},
                  "configs": [{"config": config, "first_step_s": 1.0, "step_median_s": 0.5,
                               "step_p10_s": 0.5, "step_p90_s": 0.5, "step_gflop": 2.0,
                               "achieved_gflops": 4.0, "peak_rss_gib": 1.0,
                               "updates_per_step": 2, "content_loss": "l1_ssim",
                               "inference_bf16_images_per_s": 3.0,
                               "inference_bf16_ratio_to_conv_peak": 0.25,
                               "inference_bf16_vs_fp32_mean_uint8": 0.5,
                               "inference_bf16_vs_fp32_max_uint8": 4.0}]}
        text = bench_report.format_report(report)
        self.assertIn("float32 gan", text)
        self.assertIn("inference bf16 % of bf16 conv peak    25.00", text)
        self.assertIn("0.500 / 4", text)
        self.assertIn("content loss: l1_ssim", text)
        self.assertIs(bench.format_report, bench_report.format_report)


if __name__ == "__main__":
    tf.test.main()
