"""The colourisation quickstart end to end, made tiny: ``python -m kgan.train
--flagfile=configs/colorize_quickstart.cfg`` with overrides (few steps, small crops, temporary
folders) prints the colour metrics table and the per-checkpoint colour/PSNR lines, exports a
SavedModel whose manifest lists the colorize_uint8 signature, and writes report.html; its held-out
colour score beats the gray input's by ``COLOUR_MARGIN`` (a colouriser gone gray fails that
check). Also the built-in colour split the quickstart trains and scores on."""

import json
import os
import tempfile

import pytest
import tensorflow as tf
from helpers import ROOT, run_cli

from kgan.data import samples
from kgan.evaluation.evaluate import QualityError, check_quality

# 60 pretraining steps at lr 3e-3 (a few seconds) are enough to colour: measured here, colour
# score 28.3 against the gray input's 58.7 (the full quickstart: 20.5).
TINY = ("--pretrain_g_steps=60", "--pretrain_d_steps=2", "--gan_steps=4", "--save_freq=2",
        "--crop_size=64", "--load_size=64", "--batch_size=4", "--steps_per_epoch=20",
        "--lr=3e-3", "--eval_size=64", "--ngf=8", "--critic_nf=4")
# Colour score units (lower is better): gray output scores the gray input's (gain 0); an output
# half as colourful as the truth pays about 7 units more than a perfect one.
COLOUR_MARGIN = 10.0


class ColorSplitTest(tf.test.TestCase):

    def test_split_is_natural_colour_disjoint_and_keeps_the_stereo_pair_together(self):
        train, test = samples.COLOR_TRAIN_PHOTOS, samples.COLOR_TEST_PHOTOS
        self.assertEmpty(set(train) & set(test))
        self.assertEqual({"motorcycle_left", "motorcycle_right"} <= set(train)
                         or {"motorcycle_left", "motorcycle_right"} <= set(test), True)
        for false_colour in ("immunohistochemistry", "hubble_deep_field", "retina"):
            self.assertNotIn(false_colour, train + test)
        self.assertLen(samples.sample_color_photos("train"), len(train))
        self.assertLen(samples.sample_color_photos("test"), len(test))


@pytest.mark.slow
class ColorizeQuickstartTest(tf.test.TestCase):

    def test_tiny_quickstart_prints_table_exports_and_reports(self):
        with tempfile.TemporaryDirectory() as tmp:
            run_dir, export_dir = os.path.join(tmp, "run"), os.path.join(tmp, "export")
            result = run_cli("train", "--flagfile=" + os.path.join(ROOT, "configs",
                                                                   "colorize_quickstart.cfg"),
                             *TINY, f"--output_dir={run_dir}", f"--export_dir={export_dir}",
                             timeout=240)
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            out = result.stdout
            for method in ("model", "gray_input", "mean_chroma", "ground_truth"):
                self.assertRegex(out, rf"(?m)^{method}\s")
            self.assertIn("dE2000", out)
            self.assertEqual(out.count("kgan: GAN checkpoint ckpt-"), 2)
            self.assertIn("<- best", out)
            with open(os.path.join(export_dir, "generator", "manifest.json")) as handle:
                manifest = json.load(handle)
            self.assertIn("colorize_uint8", json.dumps(manifest["signatures"]))
            self.assertTrue(os.path.isfile(os.path.join(run_dir, "report.html")))
            with open(os.path.join(run_dir, "evaluation.json")) as handle:
                results = json.load(handle)
            self.assertGreater(check_quality(results, COLOUR_MARGIN, "colour_score",
                                             "gray_input"), COLOUR_MARGIN)
            gone_gray = {**results, "model": results["gray_input"]}
            with self.assertRaises(QualityError):
                check_quality(gone_gray, COLOUR_MARGIN, "colour_score", "gray_input")
            for phase in ("pretrain_g", "gan"):
                self.assertTrue(os.path.isfile(os.path.join(run_dir, phase,
                                                            "generator.weights.h5")))
