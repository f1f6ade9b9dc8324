"""Tests for kgan.benchmarking.bench: peaks, the FLOP counter, the CycleGAN step count, the CLI end
to end
(CPU info, step timing and memory readings: tests/core/test_measure.py)."""

import json
import os
import subprocess
import sys

import keras
import tensorflow as tf

from kgan.benchmarking import bench, peaks
from kgan.core import measure
from kgan.models import build_discriminator, build_generator
from kgan.recipes import TrainConfig


class PeaksTest(tf.test.TestCase):

    def test_peaks_are_positive(self):
        self.assertGreater(peaks.matmul_peak("float32", size=64, reps=2), 0.0)
        self.assertGreater(peaks.matmul_peak("bfloat16", size=64, reps=2), 0.0)
        self.assertGreater(peaks.conv_peak("float32", size=8, channels=8, reps=2), 0.0)

    def test_matmul_probe_measures_gflops(self):
        self.assertGreater(peaks.matmul_probe("float32", size=64, reps=1)(), 0.0)


class FlopsTest(tf.test.TestCase):

    def test_flop_counter_on_a_hand_checkable_model(self):
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, padding="same")(inputs)            # 2*9*3*4*8*8
        x = keras.layers.Conv2D(6, 3, strides=2, padding="same")(x)      # 2*9*4*6*4*4
        x = keras.layers.Conv2DTranspose(5, 2, strides=2)(x)             # 2*4*6*5*4*4 (input grid)
        x = keras.layers.GlobalAveragePooling2D()(x)
        outputs = keras.layers.Dense(7)(x)                               # 2*5*7
        model = keras.Model(inputs, outputs)
        expected = 2 * (9 * 3 * 4 * 64 + 9 * 4 * 6 * 16 + 4 * 6 * 5 * 16 + 5 * 7)
        self.assertEqual(peaks.forward_flops(model, (1, 8, 8, 3)), expected)
        self.assertEqual(peaks.forward_flops(model, (2, 8, 8, 3)), 2 * expected)

    def test_reference_networks_at_256_match_design(self):
        g = peaks.forward_flops(build_generator("resnet_9blocks"), (1, 256, 256, 3))
        d = peaks.forward_flops(build_discriminator("basic"), (1, 256, 256, 3))
        self.assertAllClose(g / 1e9, 99.1, atol=0.05)
        self.assertAllClose(d / 1e9, 6.29, atol=0.01)
        self.assertAllClose(measure.cyclegan_step_flops(g, d) / 1e12, 1.88, atol=0.01)

    def test_dynamic_shape_is_a_clear_error(self):
        model = build_generator("resnet_6blocks", ngf=4)
        with self.assertRaisesRegex(ValueError, "not static"):
            peaks.forward_flops(model, (1, None, None, 3))


class ConfigTest(tf.test.TestCase):

    def test_parse_overrides(self):
        config, options = TrainConfig(), bench.BenchOptions()
        self.assertEqual(
            bench.parse_overrides("mixed_precision=mixed_bfloat16,jit_compile=true,steps=3",
                                  config, options),
            ({"mixed_precision": "mixed_bfloat16", "jit_compile": True}, {"steps": 3}))
        with self.assertRaisesRegex(ValueError, "FLAG=VALUE"):
            bench.parse_overrides("no_such_flag=1", config, options)


class CliTest(tf.test.TestCase):

    def test_cli_tiny_config_writes_json(self):
        path = os.path.join(self.get_temp_dir(), "bench.json")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        result = subprocess.run(
            [sys.executable, "-m", "kgan.bench", "--ngf=4", "--ndf=4", "--crop_size=32",
             "--steps=2", "--warmup=1", "--peak_size=128", "--peak_reps=2", "--profile_steps=1",
             f"--output_json={path}"], capture_output=True, text=True, env=env, timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("step median (s)", result.stdout)
        self.assertIn("% of concurrent matmul peak", result.stdout)
        with open(path) as f:
            report = json.load(f)
        self.assertEqual(set(report), {"machine", "peaks", "configs"})
        self.assertGreater(report["peaks"]["conv_bf16_gflops"], 0)
        config = report["configs"][0]
        for key in ("first_step_s", "step_median_s", "step_p10_s", "step_p90_s",
                    "achieved_gflops", "ratio_to_matmul_peak", "peak_rss_gib", "step_gflop",
                    "input_images_per_s", "inference_images_per_s", "cpu_utilisation",
                    "concurrent_matmul_peak_gflops", "ratio_to_concurrent_matmul_peak",
                    "ratio_to_conv_peak", "inference_fp32_images_per_s",
                    "inference_bf16_images_per_s", "inference_fp32_gflops",
                    "inference_bf16_gflops", "inference_fp32_ratio_to_conv_peak",
                    "inference_bf16_ratio_to_conv_peak", "inference_bf16_vs_fp32_mean_uint8",
                    "inference_bf16_vs_fp32_max_uint8"):
            self.assertIn(key, config)
        self.assertIn("inference bf16 % of bf16 conv peak", result.stdout)
        # --profile_steps: the op time split by kind, the convolutions' among them.
        self.assertIn("by kind: ", result.stdout)
        kinds = config["profile"]["kinds"]
        for kind in ("conv forward", "conv input gradient", "conv filter gradient"):
            self.assertGreater(kinds[kind]["share"], 0, kind)
        self.assertAllClose(sum(v["share"] for v in kinds.values()), 1.0)
        self.assertGreater(config["inference_bf16_images_per_s"], 0)
        self.assertAllClose(config["inference_bf16_ratio_to_conv_peak"],
                            config["inference_bf16_gflops"] / report["peaks"]["conv_bf16_gflops"])
        self.assertGreater(config["input_images_per_s"], 0)
        self.assertGreater(config["inference_images_per_s"]["saved_model"], 0)
        self.assertGreater(config["inference_images_per_s"]["tflite_float32"], 0)
        # 32^2, ngf 4: 6 G forwards x 3 plus 16 D-forward equivalents.
        self.assertAllClose(config["step_gflop"],
                            (18 * config["generator_forward_gflop"]
                             + 16 * config["discriminator_forward_gflop"]), rtol=1e-6)

    def test_cli_rejects_bad_compare(self):
        result = subprocess.run(
            [sys.executable, "-m", "kgan.bench", "--compare=bogus", "--peaks=false"],
            capture_output=True, text=True, timeout=120,
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        self.assertNotEqual(result.returncode, 0)
        self.assertIn("FLAG=VALUE", result.stderr)


if __name__ == "__main__":
    tf.test.main()
