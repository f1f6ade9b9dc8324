"""kgan.interop.deoldify_weights against outputs REAL PyTorch computed, without torch:
tests/fixtures/deoldify/ holds small DeOldify generators with DeOldify's key names (a
Learner.save zip file, a Learner.save legacy file, a bare state dict; written by
tests/fixtures/make_deoldify_fixtures.py from tests/fixtures/deoldify_reference.py) and their
eval-mode outputs. Each converts and matches within 1e-4 on DeOldify's [-3, 3] output; swapped
self-attention query/key, spectral norm left unfolded or re-estimated by power iteration, and an
unpermuted pixel shuffle each break that bound. Wrong files get one line naming the right flag.
With torch importable (CI installs it), the reconstruction's full-size counts are DeOldify's."""

import os
import sys
from unittest import mock

import numpy as np
import tensorflow as tf
from helpers import ROOT

from kgan.interop import deoldify_keys, torch_pickle
from kgan.interop import deoldify_weights as dw
from kgan.interop import pytorch_weights as pw
from kgan.models import raw_network
from kgan.models.encoders import TORCH_MEAN, TORCH_STD

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
TOLERANCE = 1e-4
GENERATORS = {"artistic": "deoldify_artistic", "stable": "deoldify_stable",
              "video": "deoldify_video"}

try:
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
    import deoldify_reference as ref
except ImportError:
    torch = None


def _outputs():
    with np.load(os.path.join(FIXTURES, "outputs.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _worst_error(name, model, arrays):
    raw = raw_network(model)
    worst = 0.0
    for i in range(2):
        x, expected = arrays[f"{name}/input_{i}"], arrays[f"{name}/output_{i}"]
        normalised = ((x + 1) / 2 - np.float32(TORCH_MEAN)) / np.float32(TORCH_STD)
        actual = np.asarray(raw(normalised))
        assert actual.shape == expected.shape, (actual.shape, expected.shape)
        worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def _load(name):
    return dw.load_deoldify_generator(os.path.join(FIXTURES, f"{name}.pth"), GENERATORS[name])


class DeOldifyFixtureTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.arrays = _outputs()

    def test_converted_networks_equal_pytorch(self):
        for name in GENERATORS:
            with self.subTest(name=name):
                self.assertLess(_worst_error(name, _load(name), self.arrays), TOLERANCE)

    def test_swapped_query_and_key_break_the_bound(self):
        real = dw._assignments

        def swapped(model, reader, *args):
            pairs = real(model, reader, *args)
            attention = next(x for x in model.layers if x.name.endswith("_conv2_3"))
            q, k = attention.query.kernel, attention.key.kernel
            return [(k if v is q else q if v is k else v, value) for v, value in pairs]

        with mock.patch.object(dw, "_assignments", swapped):
            model = _load("artistic")
        self.assertGreater(_worst_error("artistic", model, self.arrays), TOLERANCE)

    def test_spectral_norm_unfolded_or_re_estimated_breaks_the_bound(self):
        def power_iterated(w, u, v):
            mat = np.asarray(w, np.float64).reshape(w.shape[0], -1)
            return (w / np.linalg.svd(mat, compute_uv=False)[0]).astype(np.float32)

        for fold in (lambda w, u, v: w, power_iterated):
            with mock.patch.object(dw, "fold_spectral_norm", fold):
                model = _load("stable")
            self.assertGreater(_worst_error("stable", model, self.arrays), TOLERANCE)

    def test_an_unpermuted_pixel_shuffle_breaks_the_bound(self):
        with mock.patch.object(dw, "_shuffle_order", lambda channels: np.arange(channels)):
            model = _load("video")
        self.assertGreater(_worst_error("video", model, self.arrays), TOLERANCE)

    def test_learner_save_files_and_bare_state_dicts_both_read(self):
        self.assertEqual(set(torch_pickle.load(os.path.join(FIXTURES, "artistic.pth"))),
                         {"model", "opt"})
        self.assertNotIn("model", torch_pickle.load(os.path.join(FIXTURES, "video.pth")))
        self.assertEqual(len(pw.read_state_dict(os.path.join(FIXTURES, "stable.pth"))), 754)
        self.assertEqual(len(pw.read_state_dict(os.path.join(FIXTURES, "artistic.pth"))), 378)

    def test_a_wrong_variant_gets_one_line_naming_the_flag(self):
        both = "--generator=deoldify_stable or --generator=deoldify_video"
        cases = [("stable.pth", "deoldify_artistic", both),
                 ("artistic.pth", "deoldify_video", "--generator=deoldify_artistic"),
                 ("critic.pth", "deoldify_stable", "critic")]
        for file, generator, expected in cases:
            with self.subTest(file=file):
                with self.assertRaises(pw.WeightMismatchError) as caught:
                    dw.load_deoldify_generator(os.path.join(FIXTURES, file), generator)
                self.assertIn(expected, str(caught.exception))
                self.assertNotIn("\n", str(caught.exception))
        with self.assertRaises(pw.WeightMismatchError) as caught:
            pw.load_pytorch_generator(os.path.join(FIXTURES, "video.pth"))
        self.assertIn("--generator=deoldify_stable", str(caught.exception))
        self.assertLess(len(str(caught.exception)), 250)

    def test_describe_checkpoint_names_deoldify_files(self):
        text, flags = pw.describe_checkpoint(pw.read_state_dict(
            os.path.join(FIXTURES, "artistic.pth")))
        self.assertIn("Artistic", text)
        self.assertEqual(flags, "--generator=deoldify_artistic")
        info = deoldify_keys.recognise(pw.read_state_dict(os.path.join(FIXTURES, "stable.pth")))
        self.assertEqual((info["kind"], info["width"], info["blocks"], info["wide_nf"]),
                         ("wide", 2, (3, 4, 23, 3), 32))

    def test_a_missing_file_is_one_clear_line(self):
        with self.assertRaisesRegex(FileNotFoundError, "No checkpoint file .*never downloads"):
            dw.load_deoldify_generator("/nowhere/ColorizeStable_gen.pth", "deoldify_stable")


class DeOldifyReconstructionTest(tf.test.TestCase):
    """The PyTorch reconstruction at DeOldify's size (needs torch; CI installs it)."""

    def setUp(self):
        super().setUp()
        if torch is None:
            self.skipTest("torch is not installed: the reconstruction's counts need it")

    def test_full_size_counts_are_deoldifys(self):
        for build, params, keys in ((ref.artistic, 63_646_881, 378),
                                    (ref.stable, 218_222_197, 754)):
            net = build()
            self.assertEqual(ref.count_parameters(net), params)
            self.assertEqual(len(net.state_dict()), keys)
            self.assertIn("layers.8.conv.0.weight_g", net.state_dict())
            del net
