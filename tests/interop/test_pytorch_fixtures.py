"""kgan.interop against outputs REAL PyTorch computed, without torch: tests/fixtures/torch_reference/
holds small ``.pth`` files of the reference's networks (a ResNet generator in the legacy format
with old instance-norm statistics, a batch-norm UNet saved through DataParallel, a PatchGAN
discriminator) and the outputs torch gave for fixed inputs, written by
tests/fixtures/make_torch_fixtures.py. Each file is read with kgan.interop.torch_pickle, put on
the kgan network with pytorch_weights.assign_state_dict and compared (atol 1e-5). A mirrored key
mapping (two same-shaped convolutions swapped) passes kgan's own write-and-read round trip but
fails this comparison. The live comparisons with torch are in test_pytorch_weights.py."""

import os
from unittest import mock

import numpy as np
import tensorflow as tf
from helpers import ROOT

from kgan.interop import pytorch_weights as pw
from kgan.interop import torch_pickle
from kgan.models import build_discriminator, resnet_generator, unet_generator

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "torch_reference")
TOLERANCE = 1e-5

# fixture name -> the kgan network it converts to (tests/fixtures/make_torch_fixtures.py).
NETWORKS = {
    "resnet_2blocks": lambda: resnet_generator(n_blocks=2, ngf=4),
    "unet_5downs": lambda: unet_generator(num_downs=5, ngf=4, norm="batch"),
    "patchgan_basic": lambda: build_discriminator("basic", 6, ndf=4),
}


def _outputs():
    with np.load(os.path.join(FIXTURES, "outputs.npz"), allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _converted(name):
    model = NETWORKS[name]()
    pw.assign_state_dict(model, torch_pickle.load_state_dict(
        os.path.join(FIXTURES, f"{name}.pth")))
    return model


def _worst_error(name, model, arrays):
    worst, count = 0.0, 0
    while f"{name}/input_{count}" in arrays:
        x, expected = arrays[f"{name}/input_{count}"], arrays[f"{name}/output_{count}"]
        actual = np.asarray(model(x, training=False))
        if actual.shape != expected.shape:
            raise AssertionError(f"{name}: shape {actual.shape}, torch gave {expected.shape}")
        worst = max(worst, float(np.abs(actual - expected).max()))
        count += 1
    assert count, f"no inputs for {name} in outputs.npz"
    return worst


def _mirrored_resnet_map(n_blocks, dropout):
    """The ResNet key mapping with a mirrored-block bug: each block's two convolutions (same
    shape) take each other's weights."""
    swap = {"_conv1": "_conv2", "_conv2": "_conv1"}
    pairs = []
    for prefix, name in _REAL_RESNET_MAP(n_blocks, dropout):
        for old, new in swap.items():
            if name.endswith(old):
                name = name[:-len(old)] + new
                break
        pairs.append((prefix, name))
    return pairs


_REAL_RESNET_MAP = pw._resnet_map


class TorchFixtureTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.arrays = _outputs()

    def test_fixtures_are_small_and_from_real_torch(self):
        self.assertTrue(str(self.arrays["torch_version"]).startswith("2."))
        for entry in os.listdir(FIXTURES):
            self.assertLess(os.path.getsize(os.path.join(FIXTURES, entry)), 300_000, entry)
        self.assertEqual(sorted(n for n in os.listdir(FIXTURES) if n.endswith(".pth")),
                         sorted(f"{name}.pth" for name in NETWORKS))

    def test_every_fixture_matches_torch_outputs(self):
        for name in NETWORKS:
            with self.subTest(name):
                model = _converted(name)
                self.assertLessEqual(_worst_error(name, model, self.arrays), TOLERANCE)

    def test_a_mirrored_key_mapping_fails_the_comparison(self):
        name = "resnet_2blocks"
        with mock.patch.object(pw, "_resnet_map", _mirrored_resnet_map):
            model = _converted(name)  # loads without complaint: the shapes agree
            # kgan's own writer and reader share the bug, so their round trip still passes.
            again = NETWORKS[name]()
            pw.assign_state_dict(again, pw.keras_to_state_dict(model))
            x = self.arrays[f"{name}/input_0"]
            np.testing.assert_array_equal(again(x, training=False), model(x, training=False))
        worst = _worst_error(name, model, self.arrays)
        self.assertGreater(worst, 100 * TOLERANCE)
        # Without the bug, the same file is within the tolerance.
        self.assertLessEqual(_worst_error(name, _converted(name), self.arrays), TOLERANCE)
