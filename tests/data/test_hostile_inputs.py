"""Hostile and huge images through every reader (kgan.data.images and its users: translate,
colorize, evaluate, training folders): a decompression bomb, zero-byte, truncated, wrong-
extension and non-image files, HTML/shell characters in names and a symlink loop, all in one
folder, are skipped by name (or handled) without a hang or a deep trace; a large photo is tiled
with bounded memory."""

import json
import os
import struct
import subprocess
import sys
import tempfile
import textwrap
import zlib

import keras
import numpy as np
import tensorflow as tf
from helpers import ROOT, cli_env, photo, run_cli
from PIL import Image

from kgan.data import images
from kgan.data.crappify import restoration_dataset
from kgan.models import resnet_generator
from kgan.models.colorize import colorization_generator

HTML_NAME = "<img src=x onerror=alert(1)>.png"
SHELL_NAME = "$(touch PWNED); `touch PWNED2`.png"
# The files of hostile_folder that every reader must skip by name.
BAD_NAMES = ("bomb.png", "empty.jpg", "truncated.jpg", "notes.png", "postscript.tif",
             "loop_a.png", "loop_b.png")


def bomb_png(path, width=20000, height=12000):
    """A PNG of a few hundred bytes whose header declares ``width`` x ``height`` pixels (one
    compressed row of data: decoding it would need gigabytes)."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = zlib.compress(b"\0" + b"\0" * (3 * width), 9)
    with open(path, "wb") as handle:
        handle.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", rows)
                     + chunk(b"IEND", b""))


def hostile_folder(root):
    """A folder of good and bad inputs.

    Returns:
        (folder, good: {file name: uint8 image}, bad: [file names that must be skipped]).
    """
    folder = os.path.join(root, "inputs")
    os.makedirs(folder)
    good = {"astronaut.png": photo(40, 48), HTML_NAME: photo(36, 44, "coffee"),
            SHELL_NAME: photo(32, 40, "chelsea"),
            "png_named.jpg": photo(32, 32, "rocket")}  # a PNG under a .jpg name still reads
    for name, image in good.items():
        Image.fromarray(image).save(os.path.join(folder, name), format="PNG")
    bomb_png(os.path.join(folder, "bomb.png"))
    open(os.path.join(folder, "empty.jpg"), "wb").close()
    Image.fromarray(photo(64, 64)).save(os.path.join(folder, "full.jpg"), quality=90)
    with open(os.path.join(folder, "full.jpg"), "rb") as handle:
        data = handle.read()
    with open(os.path.join(folder, "truncated.jpg"), "wb") as handle:
        handle.write(data[:len(data) // 3])
    os.remove(os.path.join(folder, "full.jpg"))
    with open(os.path.join(folder, "notes.png"), "w") as handle:
        handle.write("not an image\n")
    with open(os.path.join(folder, "vector.eps"), "w") as handle:  # not listed at all
        handle.write("%!PS-Adobe-3.0 EPSF-3.0\n")
    with open(os.path.join(folder, "postscript.tif"), "w") as handle:  # EPS under a .tif name
        handle.write("%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n")
    os.symlink("loop_b.png", os.path.join(folder, "loop_a.png"))
    os.symlink("loop_a.png", os.path.join(folder, "loop_b.png"))
    os.mkdir(os.path.join(folder, "folder.png"))  # a folder with an image name: not listed
    os.symlink(".", os.path.join(folder, "self"))  # a folder loop (readers do not recurse)
    return folder, good, list(BAD_NAMES)


class ImageReaderTest(tf.test.TestCase):

    def test_every_bad_file_is_refused_by_name_before_decoding(self):
        folder, good, bad = hostile_folder(tempfile.mkdtemp())
        listed = sorted(os.path.basename(p) for p in images.list_images(folder))
        self.assertEqual(listed, sorted(list(good) + bad))
        for name in good:
            self.assertEqual(images.load_image(os.path.join(folder, name)).shape,
                             good[name].shape)
        for name in bad:
            with self.assertRaisesRegex(images.ImageReadError, name.replace(".", r"\.")):
                images.load_image(os.path.join(folder, name))
        with self.assertRaisesRegex(images.ImageReadError,
                                    "declared size of 240 Mpx is above .* not decoded"):
            images.image_size(os.path.join(folder, "bomb.png"))

    def test_decode_files_skips_with_reasons_and_names_print_safely(self):
        folder, good, bad = hostile_folder(tempfile.mkdtemp())
        paths = images.list_images(folder)
        results = dict(zip((os.path.basename(p) for p in paths), images.decode_files(paths)))
        self.assertEqual(sorted(n for n, (array, _) in results.items() if array is not None),
                         sorted(good))
        reasons = {n: reason for n, (array, reason) in results.items() if array is None}
        self.assertEqual(sorted(reasons), sorted(bad))
        self.assertIn("decompression bomb", reasons["bomb.png"])
        self.assertEqual(images.display_name("/x/evil\n\x1b[31mname.png"),
                         "evil\\n\\x1b[31mname.png")

    def test_training_folder_skips_bad_files(self):
        root = tempfile.mkdtemp()
        folder, good, _ = hostile_folder(root)
        with self.assertLogs(level="WARNING") as logs:
            dataset, info = restoration_dataset(folder, crop_size=32, batch_size=1,
                                                repeat=False, seed=0)
            count = sum(1 for _ in dataset)
        self.assertEqual(count, len(good))
        self.assertEqual(info.skipped, len(BAD_NAMES))
        self.assertTrue(any("bomb.png" in line for line in logs.output), logs.output)


class HostileFolderCLITest(tf.test.TestCase):
    """The same folder through the command-line tools."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.root = tempfile.mkdtemp()
        cls.folder, cls.good, cls.bad = hostile_folder(cls.root)
        keras.utils.set_random_seed(0)
        cls.translator = os.path.join(cls.root, "generator.keras")
        resnet_generator(n_blocks=1, ngf=4).save(cls.translator)
        cls.colorizer = os.path.join(cls.root, "colorize.keras")
        colorization_generator(num_downs=5, ngf=4, norm="none", last_cross=True).save(
            cls.colorizer)

    def _check_skips(self, result, out):
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        text = result.stdout + result.stderr
        for name in self.bad:
            self.assertIn(name, text)
        self.assertNotIn("Traceback", text)
        for name in self.good:
            self.assertTrue(os.path.exists(os.path.join(out, os.path.splitext(name)[0]
                                                        + ".png")), name)
        self.assertFalse(os.path.exists(os.path.join(ROOT, "PWNED")))
        self.assertFalse(os.path.exists(os.path.join(self.root, "PWNED")))

    def test_translate(self):
        out = os.path.join(self.root, "translated")
        result = run_cli("translate", f"--model={self.translator}", f"--input={self.folder}",
                         f"--output={out}", timeout=240, cwd=self.root)
        self._check_skips(result, out)
        self.assertIn("decompression bomb", result.stdout + result.stderr)
        with open(os.path.join(out, "index.html"), encoding="utf-8") as handle:
            page = handle.read()
        self.assertNotIn("<img src=x", page)
        self.assertIn("&lt;img src=x onerror=alert(1)&gt;", page)
        self.assertNotIn("`touch", page.replace("&#x27;", "'").split("<body>")[0])

    def test_colorize(self):
        out = os.path.join(self.root, "colourised")
        result = run_cli("colorize", f"--model={self.colorizer}", f"--input={self.folder}",
                         f"--output={out}", "--render_factor=3", timeout=240, cwd=self.root)
        self._check_skips(result, out)
        self.assertIn(f"{len(self.good)} colourised, {len(self.bad)} skipped", result.stdout)

    def test_evaluate(self):
        result = run_cli("evaluate", f"--model={self.translator}", f"--dataroot={self.folder}",
                         "--crop_size=32", timeout=240, cwd=self.root)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("PSNR (dB)", result.stdout)
        self.assertIn("bomb.png", result.stderr)
        self.assertNotIn("Traceback", result.stderr)


class LargePhotoTest(tf.test.TestCase):

    def test_a_large_photo_is_tiled_with_bounded_memory(self):
        """A 4000x3000 photo (12 Mpx, above kgan.serving.tiling.CONV_PIXEL_LIMIT) is translated in
        tiles: the process's peak RSS stays within a bound that a whole-image pass at this size
        exceeds (its float32 activations alone are several GiB)."""
        root = tempfile.mkdtemp()
        keras.utils.set_random_seed(0)
        model_path = os.path.join(root, "generator.keras")
        resnet_generator(n_blocks=1, ngf=8).save(model_path)
        big = np.asarray(Image.fromarray(photo(300, 400)).resize((4000, 3000)))
        Image.fromarray(big).save(os.path.join(root, "big.png"))
        script = textwrap.dedent(f"""
            import json, resource
            from kgan.serving.inference import translate_images
            from kgan.serving.loading import load_model
            translator = load_model({model_path!r})
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            summary = translate_images(translator, {os.path.join(root, 'big.png')!r},
                                       {os.path.join(root, 'out')!r}, html=False)
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            print(json.dumps({{"base_mib": base / 1024, "peak_mib": peak / 1024}}))
            """)
        result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=cli_env(),
                                capture_output=True, text=True, timeout=600)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        memory = json.loads(result.stdout.strip().splitlines()[-1])
        out = images.load_image(os.path.join(root, "out", "big.png"))
        self.assertEqual(out.shape, big.shape)
        # Input + output uint8 (72 MB) and the float32 blend of the tiles (~0.2 GB) on top of
        # the loaded model; a whole-image pass of this generator would add > 3 GiB.
        self.assertLess(memory["peak_mib"] - memory["base_mib"], 1200, memory)


if __name__ == "__main__":
    tf.test.main()
