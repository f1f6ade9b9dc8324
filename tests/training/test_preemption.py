"""Stopping on SIGTERM / SIGINT (kgan.training.preemption, kgan.training.loop, kgan.cli.train): a
checkpoint at the step reached, TensorBoard continuing, a second signal exiting at once, the
run lock refusing a second trainer, and a corrupt latest checkpoint falling back on rerun."""

import glob
import os
import re
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import helpers
import pytest
import tensorflow as tf
from helpers import ROOT, cli_env, copy_smoke_run, run_cli

from kgan.training import preemption

# A smoke CycleGAN that would run for minutes: it is always stopped by a signal first.
LONG_RUN = ["--flagfile=configs/smoke.cfg", "--steps_per_epoch=50", "--epochs=400",
            "--epochs_decay=0", "--save_freq=100000", "--print_freq=1", "--display_freq=1000",
            "--verbose=0"]


def checkpoint_steps(output_dir):
    return helpers.checkpoint_steps(os.path.join(output_dir, "checkpoints"))


def logged_steps(output_dir, tag="lr"):
    """Every step at which TensorBoard has ``tag``, in file order (repeats kept)."""
    steps = []
    for path in sorted(glob.glob(os.path.join(output_dir, "logs", "events.out.tfevents.*")),
                       key=os.path.getmtime):
        for event in tf.compat.v1.train.summary_iterator(path):
            steps += [event.step for value in event.summary.value if value.tag == tag]
    return steps


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


class StopSignalsTest(tf.test.TestCase):

    def test_first_signal_requests_a_stop_and_handlers_are_restored(self):
        before = signal.getsignal(signal.SIGTERM)
        with preemption.StopSignals() as stop:
            self.assertFalse(stop.requested.is_set())
            os.kill(os.getpid(), signal.SIGTERM)
            self.assertTrue(stop.requested.wait(5))
            self.assertEqual(stop.signum, signal.SIGTERM)
        self.assertIs(signal.getsignal(signal.SIGTERM), before)

    def test_interrupted_message_names_step_and_rerun(self):
        stopped = preemption.TrainingInterrupted(signal.SIGINT, 37, "/run/checkpoints/ckpt-37")
        self.assertEqual(stopped.exit_code, 130)
        self.assertIn("stopped by SIGINT at step 37", str(stopped))
        self.assertIn("Rerun the same command to continue from step 37", str(stopped))

    def test_second_ctrl_c_exits_at_once_even_inside_a_long_call(self):
        # The main thread sits in one long C call (time.sleep), as in a TensorFlow op.
        script = textwrap.dedent("""
            import sys, time
            from kgan.training.preemption import StopSignals
            with StopSignals() as stop:
                print("ready", flush=True)
                time.sleep(120)
            """)
        process = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=cli_env(),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            self.assertEqual(process.stdout.readline().strip(), "ready")
            process.send_signal(signal.SIGINT)
            time.sleep(1.0)
            self.assertIsNone(process.poll(), "the first Ctrl-C must not exit")
            start = time.time()
            process.send_signal(signal.SIGINT)
            process.wait(timeout=10)
        finally:
            if process.poll() is None:
                process.kill()
        self.assertLess(time.time() - start, 5)
        self.assertEqual(process.returncode, 130)
        stderr = process.stderr.read()
        self.assertIn("SIGINT received: stopping after this step", stderr)
        self.assertIn("second SIGINT: exiting now", stderr)


class TrainSignalTest(tf.test.TestCase):

    @pytest.mark.slow
    def test_sigterm_saves_the_reached_step_and_the_rerun_continues(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        log_path = os.path.join(os.path.dirname(out), "first.log")
        with open(log_path, "w") as log:
            process = subprocess.Popen([sys.executable, "-m", "kgan.train", *LONG_RUN,
                                        f"--output_dir={out}"], cwd=ROOT, env=cli_env(),
                                       stdout=log, stderr=log)
        try:
            def training():
                with open(log_path) as handle:
                    return " from step 0 to " in handle.read()

            wait_for(training, 240, "training to start")

            # A second trainer on the same folder is refused with one line naming the first.
            second = run_cli("train", *LONG_RUN, f"--output_dir={out}")
            self.assertEqual(second.returncode, 2, second.stderr[-2000:])
            lines = second.stderr.strip().splitlines()
            self.assertLen(lines, 1, second.stderr)
            self.assertIn(f"is in use by pid {process.pid}", lines[0])
            self.assertIn("choose another --output_dir", lines[0])

            time.sleep(2.0)  # some steps, far from any --save_freq checkpoint
            process.send_signal(signal.SIGTERM)
            start = time.time()
            process.wait(timeout=60)
            stop_seconds = time.time() - start
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
        with open(log_path) as handle:
            first_log = handle.read()
        self.assertEqual(process.returncode, 128 + signal.SIGTERM, first_log[-3000:])
        self.assertLess(stop_seconds, 30)
        match = re.search(r"stopped by SIGTERM at step (\d+); checkpoint \S+ckpt-(\d+)\. "
                          r"Rerun the same command to continue from step \d+", first_log)
        self.assertIsNotNone(match, first_log[-3000:])
        reached = int(match.group(1))
        self.assertEqual(int(match.group(2)), reached)
        self.assertGreater(reached, 0)
        self.assertEqual(checkpoint_steps(out), [reached],
                         "saved at the reached step (no --save_freq step was reached)")
        self.assertFalse(os.path.exists(os.path.join(out, ".kgan.lock")))
        # TensorBoard was flushed up to the reached step.
        self.assertEqual(max(logged_steps(out)), reached)

        resumed = run_cli("train", *LONG_RUN, f"--output_dir={out}",
                          f"--max_steps={reached + 3}")
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-3000:])
        self.assertIn(f"from step {reached} to {reached + 3}", resumed.stderr)
        steps = logged_steps(out)
        self.assertEqual(steps, list(range(1, reached + 4)), "TensorBoard steps continue")

        # The latest checkpoint is cut short (a full disk, a copy cut short): the rerun falls
        # back to the previous one with one warning naming the bad one, and continues.
        latest = checkpoint_steps(out)[-1]
        self.assertEqual(latest, reached + 3)
        for path in glob.glob(os.path.join(out, "checkpoints", f"ckpt-{latest}.data-*")):
            with open(path, "r+b") as handle:
                handle.truncate(10)
        fallback = run_cli("train", *LONG_RUN, f"--output_dir={out}",
                           f"--max_steps={reached + 5}")
        self.assertEqual(fallback.returncode, 0, fallback.stderr[-3000:])
        warnings = [line for line in fallback.stderr.splitlines() if "does not restore" in line]
        self.assertLen(warnings, 1, fallback.stderr[-3000:])
        self.assertIn(f"ckpt-{latest}", warnings[0])
        self.assertIn(f"resuming from the older ckpt-{reached}", warnings[0])
        self.assertIn(f"from step {reached} to {reached + 5}", fallback.stderr)
        self.assertEqual(checkpoint_steps(out)[-1], reached + 5)

    @pytest.mark.slow
    def test_no_checkpoint_restoring_stops_with_one_line(self):
        # A copy of the shared smoke run (checkpoints at steps 5 and 10), every one damaged.
        out = copy_smoke_run(os.path.join(tempfile.mkdtemp(), "run"))
        self.assertEqual(checkpoint_steps(out), [5, 10])
        for path in glob.glob(os.path.join(out, "checkpoints", "ckpt-*.data-*")):
            with open(path, "r+b") as handle:
                handle.truncate(10)
        again = run_cli("train", "--flagfile=configs/smoke.cfg", f"--output_dir={out}",
                        "--max_steps=12", "--verbose=0")
        self.assertEqual(again.returncode, 2, again.stderr[-3000:])
        self.assertIn("rather than start from scratch", again.stderr.strip().splitlines()[-1])
        self.assertNotIn("Traceback", again.stderr)
        self.assertEqual(checkpoint_steps(out), [5, 10],
                         "nothing trained over the run, nothing removed")


if __name__ == "__main__":
    tf.test.main()
