"""The training CLI end to end: outputs (the saved generators loaded and run), resume after
kill -9, the non-finite-loss stop (exit 2, no checkpoint for that step), clear flag errors."""

import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import time

import helpers
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT

from kgan.serving import runs
from kgan.training import loop

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def run_train(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "kgan.train", *args], cwd=ROOT, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def checkpoint_steps(output_dir):
    return helpers.checkpoint_steps(os.path.join(output_dir, "checkpoints"))


class PlanTest(tf.test.TestCase):

    def test_fit_segments_keep_epochs_aligned_with_steps(self):
        self.assertEqual(loop.plan_fit_segments(0, 12, 4), [(0, 3, 4)])
        # Resumed mid-epoch 1 at step 6, stopping at step 17 (mid-epoch 4).
        self.assertEqual(loop.plan_fit_segments(6, 17, 4), [(1, 2, 2), (2, 4, 4), (4, 5, 1)])
        self.assertEqual(loop.plan_fit_segments(5, 5, 4), [])

    def test_end_step(self):
        self.assertEqual(loop.end_step_for(10, 4, None), 40)
        self.assertEqual(loop.end_step_for(10, 4, 7), 7)


class TrainCLITest(tf.test.TestCase):

    @pytest.mark.slow
    def test_smoke_run_writes_everything_and_reruns_as_done(self):
        out, result = helpers.smoke_run()  # python -m kgan.train --flagfile=configs/smoke.cfg
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        for path in ("flags.cfg", "samples.png", "generators/AtoB.keras",
                     "generators/BtoA.keras"):
            self.assertTrue(os.path.exists(os.path.join(out, path)), path)
        self.assertEqual(checkpoint_steps(out)[-1], 10)
        # The saved generators load (safe mode) and translate an image to the same shape.
        x = helpers.random_images(1, 32, 32)
        for name in ("AtoB", "BtoA"):
            generator = runs.load_generator(os.path.join(out, "generators", f"{name}.keras"))
            y = np.asarray(generator(x, training=False))
            self.assertEqual(y.shape, x.shape, name)
            self.assertTrue(np.all(np.isfinite(y)) and np.abs(y).max() <= 1.0, name)
            self.assertGreater(float(np.std(y)), 0.0, name)
        self.assertNotEmpty(glob.glob(os.path.join(out, "logs", "events.out.tfevents.*")))
        with open(os.path.join(out, "flags.cfg")) as handle:
            flagfile = handle.read()
        self.assertIn("--generator=resnet_6blocks", flagfile)
        self.assertIn("--ngf=4", flagfile)
        self.assertIn(f"--output_dir={out}", flagfile.split())
        # The written flagfile reproduces the run: rerunning it finds the run complete (on a
        # copy of the shared run, its --output_dir pointed at the copy).
        copy = helpers.copy_smoke_run(os.path.join(tempfile.mkdtemp(), "run"))
        with open(os.path.join(copy, "flags.cfg"), "w") as handle:
            handle.write(flagfile.replace(f"--output_dir={out}\n", f"--output_dir={copy}\n"))
        again = run_train(f"--flagfile={copy}/flags.cfg")
        self.assertEqual(again.returncode, 0, again.stderr[-3000:])
        self.assertIn("already trained to step 10", again.stderr)

    @pytest.mark.slow
    def test_kill_9_then_resume_continues_step_and_learning_rate(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        args = ["--flagfile=configs/smoke.cfg", f"--output_dir={out}", "--save_freq=3",
                "--steps_per_epoch=4", "--epochs=3", "--epochs_decay=3", "--print_freq=1"]
        process = subprocess.Popen([sys.executable, "-m", "kgan.train", *args], cwd=ROOT,
                                   env=ENV, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.time() + 240
            while time.time() < deadline and not [s for s in checkpoint_steps(out) if s >= 6]:
                time.sleep(0.2)
        finally:
            process.send_signal(signal.SIGKILL)
            process.wait()
        saved = checkpoint_steps(out)
        self.assertTrue(saved and saved[-1] >= 6, f"no checkpoint before the kill: {saved}")
        self.assertLess(saved[-1], 24, "the run finished before it was killed")
        resumed = run_train(*args)
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        match = re.search(r"Resumed from .*ckpt-(\d+)", resumed.stderr)
        self.assertIsNotNone(match, resumed.stderr[-3000:])
        self.assertGreaterEqual(int(match.group(1)), saved[-1])
        self.assertIn(f"from step {match.group(1)} to 24", resumed.stderr)
        self.assertEqual(checkpoint_steps(out)[-1], 24)
        # The learning rate sits where the schedule says for the resumed step (TensorBoard).
        lrs = {}
        for path in glob.glob(os.path.join(out, "logs", "events.out.tfevents.*")):
            for event in tf.compat.v1.train.summary_iterator(path):
                for value in event.summary.value:
                    if value.tag == "lr":
                        lrs[event.step] = float(tf.make_ndarray(value.tensor))
        # lr logged at step s is the one used by step s (epoch (s-1)//4, 3 + 3 epochs).
        for step, lr in lrs.items():
            epoch = (step - 1) // 4
            expected = 2e-4 * (1 - max(0, epoch + 1 - 3) / 4)
            self.assertAllClose(lr, expected, rtol=1e-5, msg=f"step {step}")
        self.assertIn(24, lrs)

    def test_a_non_finite_loss_stops_with_exit_2_and_no_checkpoint_for_that_step(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        result = run_train("--flagfile=configs/smoke.cfg", f"--output_dir={out}", "--lr=1e20",
                           "--save_freq=1")
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        match = re.search(r"Loss became non-finite at step (\d+)", result.stderr)
        self.assertIsNotNone(match, result.stderr[-3000:])
        step = int(match.group(1))
        self.assertNotIn("Traceback", result.stderr)
        # Checkpoints (one per step here) stop before the non-finite step (measured: step 2,
        # ckpt-1 kept).
        self.assertEqual(checkpoint_steps(out), list(range(1, step)))

    def test_bad_flags_give_one_clear_message(self):
        cases = [
            (["--generator=resnet_12blocks"], "resnet_9blocks"),
            (["--crop_size=300", "--load_size=286"], "--crop_size=300 is larger than"),
            (["--dataroot=/no/such/folder"], "/no/such/folder"),
        ]
        for extra, expected in cases:
            result = run_train("--flagfile=configs/smoke.cfg", "--output_dir=/tmp/kgan_bad",
                               *extra, timeout=120)
            self.assertNotEqual(result.returncode, 0, extra)
            self.assertIn(expected, result.stderr, extra)
            self.assertNotIn("Traceback", result.stderr, extra)


class InitFromCLITest(tf.test.TestCase):
    """``kgan.train --init_from`` through the CLI: a kgan.convert output folder (one generator,
    generator.keras) seeds G_A and says what starts fresh; a resumed run ignores --init_from."""

    def test_converted_generator_seeds_g_a_and_resume_ignores_init_from(self):
        import keras
        import numpy as np

        from kgan.interop import pytorch_weights, torch_pickle
        from kgan.models import build_generator

        tmp = tempfile.mkdtemp()
        source = build_generator("resnet_6blocks", ngf=4)
        rng = np.random.default_rng(3)
        for variable in source.weights:
            variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.3)
        checkpoint = os.path.join(tmp, "latest_net_G.pth")
        torch_pickle.save_state_dict(pytorch_weights.keras_to_state_dict(source), checkpoint,
                                     legacy=True)
        converted = os.path.join(tmp, "converted")
        result = helpers.run_cli("convert", f"--pytorch={checkpoint}",
                                 "--generator=resnet_6blocks", "--ngf=4", "--noexport",
                                 f"--output_dir={converted}")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertTrue(os.path.isfile(os.path.join(converted, "generator.keras")))

        out = os.path.join(tmp, "run")
        # --lr=0: the trained generators keep the weights the run started from.
        args = ["--flagfile=configs/smoke.cfg", f"--output_dir={out}", "--lr=0"]
        result = helpers.run_cli("train", *args, "--max_steps=2", f"--init_from={converted}")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        lines = [line for line in (result.stdout + result.stderr).splitlines()
                 if "--init_from" in line]
        self.assertLen(lines, 1, lines)
        self.assertIn("G_A <- " + os.path.join(converted, "generator.keras"), lines[0])
        self.assertIn("G_B, D_A, D_B start fresh", lines[0])
        x = rng.uniform(-1, 1, (1, 32, 32, 3)).astype(np.float32)
        a_to_b = keras.saving.load_model(os.path.join(out, "generators", "AtoB.keras"),
                                         safe_mode=True, compile=False)
        b_to_a = keras.saving.load_model(os.path.join(out, "generators", "BtoA.keras"),
                                         safe_mode=True, compile=False)
        np.testing.assert_allclose(a_to_b(x), source(x), atol=1e-5)
        self.assertGreater(float(np.abs(np.asarray(b_to_a(x)) - np.asarray(source(x))).max()),
                           1e-2)

        # Resuming: --init_from (here a folder that does not exist) is ignored, with one line.
        resumed = helpers.run_cli("train", *args, "--max_steps=3",
                                  f"--init_from={os.path.join(tmp, 'no_such_folder')}")
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn("Resumed from", resumed.stderr)
        self.assertIn("ignored: the run resumes from its own checkpoint",
                      resumed.stdout + resumed.stderr)
        self.assertEqual(checkpoint_steps(out)[-1], 3)

    def test_restore_generator_keras_seeds_pretrain_g(self):
        import keras
        import numpy as np

        from kgan.recipes import make_config
        from kgan.recipes.restore import restoration_generator

        tmp = tempfile.mkdtemp()
        # No self-attention: its spectral norm rewrites its kernels in every training step.
        network = ["--unet_downs=5", "--ngf=4", "--norm=instance", "--noself_attention"]
        source = restoration_generator(make_config(model="restore", unet_downs=5, ngf=4,
                                                   norm="instance", self_attention=False))
        rng = np.random.default_rng(4)
        for variable in source.weights:
            variable.assign(rng.standard_normal(variable.shape).astype(np.float32) * 0.1)
        folder = os.path.join(tmp, "pretrained")
        os.makedirs(folder)
        source.save(os.path.join(folder, "generator.keras"))
        out = os.path.join(tmp, "run")
        result = helpers.run_cli(
            "train", "--model=restore", *network, "--phase=pretrain_g", "--pretrain_g_steps=1",
            "--batch_size=1", "--lr=0", "--verbose=0", f"--output_dir={out}",
            f"--init_from={folder}")
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn(f"--init_from={folder}: G <- {os.path.join(folder, 'generator.keras')}",
                      result.stdout)
        trained = keras.saving.load_model(os.path.join(out, "generators", "generator.keras"),
                                          safe_mode=True, compile=False)
        x = rng.uniform(-1, 1, (1, 64, 64, 3)).astype(np.float32)
        np.testing.assert_allclose(trained(x), source(x), atol=1e-5)


class TFDSNotPreparedTest(tf.test.TestCase):

    def test_a_dataset_not_prepared_fails_at_once_and_leaves_nothing(self):
        tmp = tempfile.mkdtemp()
        out = os.path.join(tmp, "run")
        data_dir = os.path.join(tmp, "no_tfds_here")
        start = time.time()
        try:
            result = helpers.run_cli("train", "--flagfile=configs/smoke.cfg",
                                     "--tfds_name=cycle_gan/horse2zebra",
                                     f"--tfds_data_dir={data_dir}", f"--output_dir={out}",
                                     timeout=120)
        except subprocess.TimeoutExpired:
            self.fail("kgan.train was still trying to get the dataset after 120 s")
        self.assertEqual(result.returncode, 2, result.stderr[-3000:])
        self.assertLess(time.time() - start, 60)
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        self.assertLen(errors, 1, result.stderr[-3000:])
        for text in ("cycle_gan/horse2zebra", "not prepared", data_dir, "tfds build",
                     "--tfds_data_dir", "--dataroot"):
            self.assertIn(text, errors[0])
        self.assertFalse(os.path.exists(out), os.listdir(out) if os.path.exists(out) else "")
        self.assertFalse(os.path.exists(data_dir))
