"""End-to-end parity with a REAL converted DeOldify network (issue 23): the Artistic fixture
(tests/fixtures/deoldify/artistic.pth, a small DynamicUnetDeep with DeOldify's key names) is
converted (kgan.interop.deoldify_weights) and exported as ``kgan.convert`` does, then
``python -m kgan.colorize`` colours a held-out non-square photo (chelsea, 300x451) at render
factor 10. The expected picture is DeOldify's own pipeline (tests/fixtures/deoldify_pipeline.py,
from DeOldify's filters.py) driven by the PyTorch rebuild with the same file's weights, computed
by real PyTorch and committed (tests/fixtures/deoldify/pipeline.npz, written by
tests/fixtures/make_deoldify_fixtures.py), so this runs without torch.

Bound: mean <= 1, max <= 4 uint8 levels. Measured here (CPU, TF 2.21, torch 2.13): mean
3.7e-5, max 3 levels (15 levels summed over 405,900 values: float32 rounding before the truncation to
uint8).
A wrongly converted network (pixel shuffle left unpermuted) is off the bound. With torch
importable, the reference pipeline is also run live on the torch network and gives the
committed picture."""

import os
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf
from fixtures import deoldify_pipeline as reference
from helpers import (
    ROOT,
    uint8_differences as differences,
    within_pipeline_bound as within,
)
from PIL import Image

from kgan.colorization.colorizer import Colorizer
from kgan.data.samples import sample_color_photos
from kgan.exporting.export import export_generator
from kgan.interop import deoldify_weights as dw
from kgan.serving.translators import KerasTranslator

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
RENDER_FACTOR = 10

try:
    import torch

    sys.path.insert(0, os.path.join(ROOT, "tests", "fixtures"))
    import deoldify_reference as ref
except ImportError:
    torch = None


def _artistic():
    return dw.load_deoldify_generator(os.path.join(FIXTURES, "artistic.pth"),
                                      "deoldify_artistic")


class DeOldifyEndToEndParityTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.TemporaryDirectory()
        cls.photo = sample_color_photos("test")[1]  # chelsea, as skimage.data.chelsea()
        with np.load(os.path.join(FIXTURES, "pipeline.npz")) as data:
            cls.expected = data[f"artistic/chelsea_rf{RENDER_FACTOR}"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()
        super().tearDownClass()

    def test_kgan_colorize_cli_gives_deoldifys_picture(self):
        self.assertEqual(self.photo.shape, (300, 451, 3))
        export = os.path.join(self.tmp.name, "deoldify_artistic")
        export_generator(_artistic(), export, tflite="", verify=False, render_factor=35,
                         source={"pytorch": "artistic.pth"})
        src = os.path.join(self.tmp.name, "chelsea.png")
        Image.fromarray(self.photo).save(src)
        out = os.path.join(self.tmp.name, "out")
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2",
                   CUDA_VISIBLE_DEVICES="")
        result = subprocess.run(
            [sys.executable, "-m", "kgan.colorize", f"--model={export}", f"--input={src}",
             f"--output={out}", f"--render_factor={RENDER_FACTOR}", "--noprogress"],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=300, check=False)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        colour = np.asarray(Image.open(os.path.join(out, "chelsea.png")))
        figures = differences(colour, self.expected)
        print(f"kgan.colorize vs DeOldify's pipeline on torch (artistic fixture, chelsea "
              f"300x451, render factor {RENDER_FACTOR}): {figures}")
        self.assertTrue(within(figures), figures)

    def test_a_wrongly_converted_network_is_off_the_bound(self):
        with mock.patch.object(dw, "_shuffle_order", lambda channels: np.arange(channels)):
            wrong = _artistic()
        colour = Colorizer(KerasTranslator(wrong), RENDER_FACTOR).colorize(self.photo)
        self.assertFalse(within(differences(colour, self.expected)))

    def test_live_torch_reference_gives_the_committed_picture(self):
        if torch is None:
            self.skipTest("torch is not installed: the committed picture stands in for it")
        net = ref.artistic(width=4)
        saved = torch.load(os.path.join(FIXTURES, "artistic.pth"), map_location="cpu",
                           weights_only=True)
        net.load_state_dict(saved["model"])
        net.eval()

        def network(x_nchw):
            with torch.no_grad():
                return net(torch.from_numpy(np.ascontiguousarray(x_nchw))).numpy()

        live = reference.colorize(network, self.photo, RENDER_FACTOR)
        self.assertTrue(within(differences(live, self.expected)))
        kgan = Colorizer(KerasTranslator(_artistic()), RENDER_FACTOR).colorize(self.photo)
        self.assertTrue(within(differences(kgan, live)), differences(kgan, live))
