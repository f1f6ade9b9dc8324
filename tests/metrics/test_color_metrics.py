"""Tests for kgan.metrics.color against hand computations: colourfulness of constructed images,
CIELAB chroma of sRGB primaries, CIEDE2000 of grays by the formula, zombie share, saturation
ratio, the colour score and the baselines."""

import numpy as np
import tensorflow as tf

from kgan.metrics import color as cm


def _solid(rgb, height=4, width=4):
    return np.tile(np.asarray(rgb, np.uint8), (height, width, 1))


def _srgb_to_l(value):
    """CIE L* of an sRGB gray level (0..255), by the textbook formulas."""
    c = value / 255.0
    linear = c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4
    f = linear ** (1 / 3) if linear > (6 / 29) ** 3 else linear / (3 * (6 / 29) ** 2) + 4 / 29
    return 116 * f - 16


class ColourfulnessTest(tf.test.TestCase):

    def test_half_red_half_blue(self):
        image = np.concatenate([_solid((255, 0, 0), 2, 4), _solid((0, 0, 255), 2, 4)])
        # rg = R - G: 255 and 0; yb = (R + G) / 2 - B: 127.5 and -255 (signed).
        expected = (np.sqrt(127.5 ** 2 + 191.25 ** 2)
                    + 0.3 * np.sqrt(127.5 ** 2 + 63.75 ** 2))
        self.assertAlmostEqual(cm.colourfulness(image), expected, places=6)

    def test_gray_is_zero_and_rejects_floats(self):
        gray = np.repeat(np.arange(16, dtype=np.uint8).reshape(4, 4, 1) * 16, 3, -1)
        self.assertEqual(cm.colourfulness(gray), 0.0)
        with self.assertRaisesRegex(ValueError, "uint8"):
            cm.colourfulness(gray.astype(np.float32))


class LabMetricsTest(tf.test.TestCase):

    def test_chroma_of_primaries(self):
        # CIELAB (D65) of sRGB red: L 53.24, a 80.09, b 67.20 -> C* 104.55; gray: C* 0 (0.0025
        # with scikit-image's D65 white, rounded to 4 digits).
        self.assertAllClose(cm.lab_chroma(cm.to_lab(_solid((255, 0, 0)))), np.full((4, 4), 104.55),
                            atol=0.02)
        self.assertAllClose(cm.lab_chroma(cm.to_lab(_solid((90, 90, 90)))), np.zeros((4, 4)),
                            atol=0.01)

    def test_identical_images(self):
        image = np.random.default_rng(0).integers(0, 256, (8, 8, 3)).astype(np.uint8)
        metrics = cm.image_metrics(image, image)
        for name in ("ciede2000", "chroma_error", "ab_error", "zombie_share", "colour_score"):
            self.assertAlmostEqual(metrics[name], 0.0, places=9)
        self.assertAlmostEqual(metrics["saturation_ratio"], 1.0, places=9)

    def test_ciede2000_of_two_grays_by_the_formula(self):
        l1, l2 = _srgb_to_l(100), _srgb_to_l(128)
        mean = (l1 + l2) / 2
        s_l = 1 + 0.015 * (mean - 50) ** 2 / np.sqrt(20 + (mean - 50) ** 2)
        metrics = cm.image_metrics(_solid((100, 100, 100)), _solid((128, 128, 128)))
        self.assertAlmostEqual(metrics["ciede2000"], abs(l2 - l1) / s_l, places=3)

    def test_gray_output_of_a_half_red_truth(self):
        truth = np.concatenate([_solid((200, 30, 30), 2, 4), _solid((120, 120, 120), 2, 4)])
        gray = cm.gray_baseline(truth)
        metrics = cm.image_metrics(gray, truth)
        self.assertAlmostEqual(metrics["zombie_share"], 0.5)
        self.assertAlmostEqual(metrics["saturation_ratio"], 0.0, places=3)
        c_truth = cm.lab_chroma(cm.to_lab(truth))
        self.assertAlmostEqual(metrics["chroma_error"], c_truth.mean(), delta=0.01)
        # colour score = mean dE2000 + 10 |ln((0 + 1) / (M_truth + 1))|.
        expected = metrics["ciede2000"] + 10 * np.log(cm.colourfulness(truth) + 1)
        self.assertAlmostEqual(metrics["colour_score"], expected, places=6)
        self.assertAlmostEqual(cm.colour_score([gray], [truth]), expected, places=6)

    def test_shape_mismatch(self):
        with self.assertRaisesRegex(ValueError, "differ"):
            cm.image_metrics(_solid((0, 0, 0), 4, 4), _solid((0, 0, 0), 4, 5))
        with self.assertRaisesRegex(ValueError, "as many"):
            cm.mean_metrics([_solid((0, 0, 0))], [])


class BaselinesTest(tf.test.TestCase):

    def test_gray_baseline_is_rounded_bt601_luma(self):
        truth = np.random.default_rng(1).integers(0, 256, (6, 5, 3)).astype(np.uint8)
        gray = cm.gray_baseline(truth)
        luma = 0.299 * truth[..., 0] + 0.587 * truth[..., 1] + 0.114 * truth[..., 2]
        self.assertAllEqual(gray[..., 0], gray[..., 2])
        self.assertLessEqual(np.abs(gray[..., 0] - luma).max(), 0.5 + 1e-6)

    def test_constant_chroma_keeps_luma(self):
        gray = cm.gray_baseline(np.random.default_rng(2).integers(0, 256, (16, 16, 3))
                                .astype(np.uint8))
        out = cm.constant_chroma_baseline(gray, (-0.05, 0.3))
        self.assertLessEqual(np.abs(cm.rgb_luma(out) - gray[..., 0]).max(), 0.5 + 1e-6)
        self.assertGreater(cm.colourfulness(out), 10)

    def test_mean_uv(self):
        # U of pure blue is 0.436 (the U bound), V of pure red is 0.615.
        uv = cm.mean_uv([_solid((0, 0, 255)), _solid((255, 0, 0))])
        self.assertAllClose(uv, [(0.43601035 - 0.14714119) / 2, (-0.10001026 + 0.61497538) / 2],
                            atol=1e-6)

    def test_evaluate_and_table(self):
        rng = np.random.default_rng(3)
        truths = [rng.integers(0, 256, (8, 8, 3)).astype(np.uint8) for _ in range(2)]
        results = cm.evaluate_colorization(truths, truths)
        self.assertAlmostEqual(results["model"]["ciede2000"], 0.0, places=9)
        self.assertAlmostEqual(results["gray_input"]["saturation_ratio"], 0.0, places=2)
        self.assertGreater(results["mean_chroma"]["colourfulness"], 0.0)
        self.assertEqual(results["num_images"], 2)
        table = cm.format_color_table(results)
        for row in ("model", "gray_input", "mean_chroma", "ground_truth", "dE2000"):
            self.assertIn(row, table)
