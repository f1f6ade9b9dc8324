"""Tests for ``python -m kgan.colorize`` and ``kgan.evaluate`` with an exported DeOldify
colouriser (a tiny stand-in with the real structure, helpers.deoldify_stand_in): the
manifest's render factor is used when none is given, a folder with an EXIF-rotated JPEG, an
RGBA PNG and a 16-bit gray PNG comes out as DeOldify's own pipeline would colour the decoded
images (tests/fixtures/deoldify_pipeline.py), and a video goes through the stabiliser."""

import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf
from fixtures import deoldify_pipeline as reference
from helpers import ROOT, deoldify_stand_in, photo
from PIL import Image

from kgan.data.images import load_image, load_image_with_alpha
from kgan.exporting.export import export_generator

RENDER_FACTOR = 4  # the manifest's; the CLI gets no --render_factor


def _run(module, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
    return subprocess.run([sys.executable, "-m", module, *args], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=300, check=False)


class DeOldifyColorizeCliTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        model, network = deoldify_stand_in()
        cls.network = staticmethod(network)
        keras_path = os.path.join(cls.tmp, "stable.keras")
        model.save(keras_path)
        cls.export = os.path.join(cls.tmp, "deoldify_stable")
        export_generator(model, cls.export, tflite="", verify=False,
                         render_factor=RENDER_FACTOR, source={"checkpoint": keras_path})

    def test_folder_uses_the_manifests_factor_and_deoldifys_pipeline(self):
        src = os.path.join(self.tmp, "in")
        os.makedirs(src)
        rotated = photo(40, 64, "coffee")
        exif = Image.Exif()
        exif[0x0112] = 6  # rotate 90 degrees clockwise to display
        Image.fromarray(rotated).save(os.path.join(src, "a.jpg"), exif=exif, quality=95)
        rgba = np.concatenate([photo(36, 50, "chelsea"), np.full((36, 50, 1), 9, np.uint8)], -1)
        Image.fromarray(rgba).save(os.path.join(src, "b.png"))
        gray16 = (photo(30, 44, "astronaut")[..., 0].astype(np.uint16) * 257)
        Image.fromarray(gray16).save(os.path.join(src, "c.png"))
        out = os.path.join(self.tmp, "out")
        result = _run("kgan.colorize", f"--model={self.export}", f"--input={src}",
                      f"--output={out}", "--noprogress")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertIn("3 colourised", result.stdout)
        for name in ("a.jpg", "b.png", "c.png"):
            rgb, alpha = load_image_with_alpha(os.path.join(src, name))
            colour = np.asarray(Image.open(os.path.join(out, name[:-4] + ".png")))
            self.assertEqual(colour.shape[:2], rgb.shape[:2])
            expected = reference.colorize(self.network, rgb, RENDER_FACTOR)
            d = np.abs(colour[..., :3].astype(int) - expected)
            self.assertLessEqual(d.mean(), 1.0, name)
            self.assertLessEqual(d.max(), 4, name)
            if alpha is not None:
                self.assertAllEqual(colour[..., 3], alpha)
        self.assertEqual(load_image(os.path.join(src, "a.jpg")).shape[:2], (64, 40))  # EXIF
        self.assertEqual(np.asarray(Image.open(os.path.join(out, "b.png"))).shape[-1], 4)

    def test_video_with_the_stabiliser(self):
        import imageio_ffmpeg

        source = os.path.join(self.tmp, "clip.mp4")
        writer = imageio_ffmpeg.write_frames(source, (48, 32), fps=8, macro_block_size=1)
        writer.send(None)
        for i in range(5):
            writer.send(np.ascontiguousarray(np.roll(photo(32, 48, "coffee"), 2 * i, axis=1)))
        writer.close()
        output = os.path.join(self.tmp, "clip_colour.mp4")
        result = _run("kgan.colorize", f"--model={self.export}", f"--input={source}",
                      f"--output={output}", "--noprogress")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        reader = imageio_ffmpeg.read_frames(output)
        self.assertEqual(tuple(next(reader)["size"]), (48, 32))
        self.assertEqual(sum(1 for _ in reader), 5)

    def test_evaluate_takes_the_export_and_its_render_factor(self):
        path = os.path.join(self.tmp, "eval.json")
        result = _run("kgan.evaluate", f"--model={self.export}", "--data=colorize",
                      "--max_images=1", f"--output_json={path}")
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        with open(path) as handle:
            self.assertEqual(json.load(handle)["render_factor"], RENDER_FACTOR)
