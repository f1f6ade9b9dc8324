"""Tests for kgan.serving.worker: a translator in a child process gives the in-process results, is
replaced when its memory grows past the budget or when it dies, and reports errors as the
same kinds of exceptions (so kgan.serving.inference skips or tiles as it would in process)."""

import os
import signal
import subprocess
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf
import worker_fakes
from helpers import ROOT, cli_env, photo
from PIL import Image

from kgan.core.errors import ModelFileError
from kgan.models import resnet_generator
from kgan.serving.loading import load_model
from kgan.serving.worker import WorkerDiedError, WorkerTranslator


def batch(height, width=8, n=2):
    return np.arange(n * height * width * 3, dtype=np.uint8).reshape(n, height, width, 3)


class WorkerTest(tf.test.TestCase):

    def test_matches_the_translator_in_this_process(self):
        keras.utils.set_random_seed(0)
        path = os.path.join(tempfile.mkdtemp(), "g.keras")
        resnet_generator(n_blocks=1, ngf=4).save(path)
        images = np.stack([photo(36, 44), photo(36, 44, "chelsea")])
        local = load_model(path)
        with load_model(path, max_memory_growth_mib=2048) as worker:
            self.assertIsInstance(worker, WorkerTranslator)
            self.assertAllEqual(worker(images), local(images))
            self.assertEqual((worker.multiple, worker.fixed_size, worker.precision),
                             (local.multiple, None, "float32"))
            self.assertEqual(worker.restarts, 0)

    def test_replaced_once_its_memory_grows_past_the_budget(self):
        messages = []
        # Each call of this fake keeps 30 MiB: the second call is 30 MiB over the first, the
        # third 60 (> 50): the child is replaced and the fourth call runs in a fresh one.
        worker = WorkerTranslator(worker_fakes.growing, (), max_growth_mib=50, log=messages.append)
        pids = []
        for _ in range(4):
            pids.append(worker.process.pid)
            self.assertAllEqual(worker(batch(8)), batch(8) + 1)
        worker.close()
        self.assertEqual(worker.restarts, 1)
        self.assertEqual(len(set(pids)), 2)
        self.assertRegex(messages[0], r"Restarting the translate worker: its memory grew \d+ MiB "
                                      r"\(more than 50 MiB\)")
        self.assertEqual(worker.pixel_limit, 1234)

    def test_a_dead_worker_is_replaced(self):
        with WorkerTranslator(worker_fakes.dying_on_13, ()) as worker:
            self.assertAllEqual(worker(batch(8)), batch(8) + 1)
            # Killed while idle: the next call starts a new one and succeeds.
            os.kill(worker.process.pid, signal.SIGKILL)
            worker.process.join()
            self.assertAllEqual(worker(batch(8)), batch(8) + 1)
            self.assertEqual(worker.restarts, 1)
            # Dying mid-call (as under the kernel's OOM killer): MemoryError, so that
            # kgan.serving.inference retries in tiles, and the worker is ready again.
            with self.assertRaisesRegex(MemoryError, "died on a 13x8 batch"):
                worker(batch(13))
            self.assertEqual(worker.restarts, 2)
            self.assertAllEqual(worker(batch(8)), batch(8) + 1)

    def test_errors_keep_their_kind(self):
        with WorkerTranslator(worker_fakes.failing_on_5_and_7, ()) as worker:
            with self.assertRaisesRegex(ValueError, "a bad shape"):
                worker(batch(5))
            with self.assertRaisesRegex(MemoryError, "out of memory"):
                worker(batch(7))
            self.assertAllEqual(worker(batch(8)), batch(8) + 1)
            self.assertEqual(worker.restarts, 0)
        with self.assertRaisesRegex(ModelFileError, "Could not load the generator x.keras"):
            WorkerTranslator(worker_fakes.failing_load, ("x.keras",))
        with self.assertRaisesRegex(WorkerDiedError, r"exited while loading the model \(exit "
                                                     r"code 9; .*--max_memory_growth_mib=0"):
            WorkerTranslator(worker_fakes.dies_while_loading, ())


class TranslateWorkerCliTest(tf.test.TestCase):

    def test_ctrl_c_ends_translate_and_its_worker_in_one_line(self):
        folder = tempfile.mkdtemp()
        keras.utils.set_random_seed(0)
        model = os.path.join(folder, "g.keras")
        resnet_generator(n_blocks=1, ngf=4).save(model)
        photos = os.path.join(folder, "photos")
        os.makedirs(photos)
        for i in range(400):
            Image.fromarray(photo(40 + i % 5 * 4, 48)).save(os.path.join(photos, f"{i}.png"))
        process = subprocess.Popen(
            [sys.executable, "-m", "kgan.translate", f"--model={model}", f"--input={photos}",
             f"--output={folder}/out", "--batch_size=1"], cwd=ROOT, env=cli_env(),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        lines = []
        for line in process.stdout:  # wait until images are being translated
            lines.append(line)
            if "[" in line and "/400]" in line:
                break
        with open(f"/proc/{process.pid}/task/{process.pid}/children") as handle:
            children = [int(pid) for pid in handle.read().split()]
        workers = [pid for pid in children if "spawn_main" in _command_line(pid)]
        self.assertLen(workers, 1)  # (the other child is multiprocessing's resource tracker)
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C reaches the whole process group
        output = "".join(lines) + process.stdout.read()
        self.assertEqual(process.wait(timeout=60), 130, output)
        self.assertIn("kgan.translate: interrupted (Ctrl-C)", output)
        self.assertNotIn("Traceback", output)
        deadline = time.time() + 10
        while _running(workers[0]) and time.time() < deadline:
            time.sleep(0.1)
        self.assertFalse(_running(workers[0]), "the worker outlived the CLI")


def _command_line(pid):
    with open(f"/proc/{pid}/cmdline", "rb") as handle:
        return handle.read().replace(b"\0", b" ").decode(errors="replace")


def _running(pid):
    """Whether ``pid`` is alive (a zombie, exited but not yet reaped, is not)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except OSError:
        return False
