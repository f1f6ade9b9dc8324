"""kgan.core.atomic and its users: a write that fails or is killed leaves the previous file (or
nothing) and never a half-written file that later looks complete; a full disk is one clear
error."""

import errno
import glob
import os
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from unittest import mock

import keras
import numpy as np
import tensorflow as tf
from helpers import ROOT, cli_env
from PIL import Image

from kgan.core import atomic
from kgan.core.errors import KganError
from kgan.data import images
from kgan.models import resnet_generator
from kgan.serving import runs
from kgan.serving.loading import load_model

ENOSPC = OSError(errno.ENOSPC, "No space left on device")


class AtomicPathTest(tf.test.TestCase):

    def test_success_renames_and_failure_keeps_the_previous_file(self):
        path = os.path.join(tempfile.mkdtemp(), "sub", "file.txt")
        with atomic.atomic_path(path) as partial:
            self.assertNotEqual(partial, path)
            self.assertTrue(os.path.basename(partial).startswith("."))
            with open(partial, "w") as handle:
                handle.write("first")
        with self.assertRaises(RuntimeError):
            with atomic.atomic_path(path) as partial:
                with open(partial, "w") as handle:
                    handle.write("half")
                raise RuntimeError("killed")
        with open(path) as handle:
            self.assertEqual(handle.read(), "first")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["file.txt"])

    def test_disk_full_is_one_clear_error(self):
        path = os.path.join(tempfile.mkdtemp(), "file.txt")
        with open(path, "w") as handle:
            handle.write("old")
        with self.assertRaisesRegex(atomic.DiskFullError, "No space left on the disk while "
                                    "writing file.txt.*The previous file.txt is intact.*rerun"):
            with atomic.atomic_path(path) as partial:
                open(partial, "w").close()
                raise ENOSPC
        self.assertIsInstance(atomic.DiskFullError("x"), KganError)
        with open(path) as handle:
            self.assertEqual(handle.read(), "old")
        self.assertEqual(os.listdir(os.path.dirname(path)), ["file.txt"])

    def test_disk_full_is_recognised_from_tensorflow_and_h5py_texts(self):
        self.assertTrue(atomic.is_disk_full(ENOSPC))
        self.assertTrue(atomic.is_disk_full(tf.errors.ResourceExhaustedError(
            None, None, "write failed: No space left on device")))
        try:
            try:
                raise ENOSPC
            except OSError as error:
                raise RuntimeError("Unable to synchronously write data") from error
        except RuntimeError as wrapped:
            self.assertTrue(atomic.is_disk_full(wrapped))
        self.assertFalse(atomic.is_disk_full(OSError(errno.EACCES, "Permission denied")))

    def test_png_and_generator_saves_on_a_full_disk(self):
        folder = tempfile.mkdtemp()
        png = os.path.join(folder, "out.png")
        images.write_image(png, np.zeros((4, 4, 3), np.uint8))
        with mock.patch.object(Image.Image, "save", side_effect=ENOSPC):
            with self.assertRaises(atomic.DiskFullError):
                images.write_image(png, np.full((4, 4, 3), 255, np.uint8))
        self.assertAllEqual(images.load_image(png), np.zeros((4, 4, 3), np.uint8))

        model = resnet_generator(n_blocks=1, ngf=4)
        [path] = runs.save_generators({"AtoB": model}, folder).values()
        before = os.path.getsize(path)
        with mock.patch.object(keras.Model, "save", side_effect=ENOSPC):
            with self.assertRaisesRegex(atomic.DiskFullError, "the generator AtoB"):
                runs.save_generators({"AtoB": model}, folder)
        self.assertEqual(os.path.getsize(path), before)
        self.assertEqual(sorted(os.listdir(os.path.dirname(path))), ["AtoB.keras"])
        runs.load_generator(path)


class KilledExportTest(tf.test.TestCase):
    """kill -9 in the middle of an export: nothing loadable appears at the export path, and an
    export being overwritten stays the old, complete one."""

    def _export_and_kill(self, model_path, export_dir, overwrite):
        script = textwrap.dedent(f"""
            from kgan.exporting.export import export_generator
            from kgan.serving.runs import load_generator
            export_generator(load_generator({model_path!r}), {export_dir!r}, tflite="float32",
                             overwrite={overwrite})
            """)
        process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=cli_env(),
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        parent = os.path.dirname(export_dir)
        pattern = os.path.join(parent, f".{os.path.basename(export_dir)}.partial-*",
                               "1", "saved_model.pb")
        try:
            deadline = time.time() + 240
            while time.time() < deadline and not glob.glob(pattern) and process.poll() is None:
                time.sleep(0.05)
            self.assertTrue(glob.glob(pattern), "the export never started writing")
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()

    def test_killed_export_leaves_nothing_loadable_and_keeps_an_old_one(self):
        folder = tempfile.mkdtemp()
        keras.utils.set_random_seed(0)
        model = resnet_generator(n_blocks=1, ngf=4)
        [model_path] = runs.save_generators({"AtoB": model}, folder).values()
        export_dir = os.path.join(folder, "export")

        self._export_and_kill(model_path, export_dir, overwrite=False)
        self.assertFalse(os.path.exists(export_dir))
        with self.assertRaisesRegex(KganError, "does not exist"):
            load_model(export_dir)
        abandoned = glob.glob(os.path.join(folder, ".export.partial-*"))
        self.assertLen(abandoned, 1)
        # A live export's hidden folder (this process's) is not touched by the next export.
        live = os.path.join(folder, f".export.partial-{socket.gethostname()}.{os.getpid()}-x")
        os.mkdir(live)

        from kgan.exporting.export import export_generator
        export_generator(model, export_dir, tflite="", verify=False)
        self.assertEqual(glob.glob(os.path.join(folder, ".export.partial-*")), [live],
                         "the killed export's folder is removed by the next export")
        self._export_and_kill(model_path, export_dir, overwrite=True)
        translator = load_model(export_dir)
        self.assertEqual(translator(np.zeros((1, 32, 32, 3), np.uint8)).shape, (1, 32, 32, 3))
        self.assertFalse(os.path.exists(os.path.join(export_dir, "model_float32.tflite")),
                         "the old export, not a mix of old and new")


if __name__ == "__main__":
    tf.test.main()
