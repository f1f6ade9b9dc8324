"""Scaling out, proven equivalent: every trainer's step under MirroredStrategy (2 logical CPUs,
both drivers) matches one device; the NoGAN switcher and loss scaling work across replicas;
2 MultiWorkerMirroredStrategy workers on 127.0.0.1 agree and resume, and a SIGTERM to one
worker checkpoints both at one agreed step through TensorFlow's PreemptionCheckpointHandler.

Multi-device checks run in fresh processes (logical devices must be set before TensorFlow
starts) and report JSON; see tests/distribute_check.py.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, checkpoint_steps

from kgan.training import distribute

ENV = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
ENV.pop("TF_CONFIG", None)
TIMEOUT = 240


def run_check(spec):
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "distribute_check.py"), json.dumps(spec)],
        cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=TIMEOUT)
    if result.returncode != 0:
        raise AssertionError(result.stderr[-4000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def start_workers(output_dir, max_steps, *extra, stderrs=(subprocess.PIPE,) * 2):
    """Starts 2 multi-worker ``kgan.train`` processes on 127.0.0.1; returns the Popens."""
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    processes = []
    for index, stderr in enumerate(stderrs):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker",
                                                             "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "kgan.train", "--flagfile=configs/smoke.cfg",
             "--distribution=multi_worker", "--batch_size=2", f"--max_steps={max_steps}",
             f"--output_dir={output_dir}", "--verbose=0", *extra],
            cwd=ROOT, env={**ENV, "TF_CONFIG": tf_config}, stdout=subprocess.DEVNULL,
            stderr=stderr, text=True))
    return processes


def run_workers(output_dir, max_steps, *extra):
    """Runs 2 multi-worker CLI processes to ``max_steps``; kills both on failure/timeout."""
    processes = []
    try:
        processes = start_workers(output_dir, max_steps, *extra)
        logs = [p.communicate(timeout=TIMEOUT)[1] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(processes, logs):
        if p.returncode != 0:
            raise AssertionError(log[-4000:])
    return logs[0]


def checkpoint_variables(folder):
    reader = tf.train.load_checkpoint(folder)
    return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()
            if "OBJECT_GRAPH" not in name}


class StrategyTest(tf.test.TestCase):

    def test_strategy_names_and_errors(self):
        self.assertIs(distribute.get_strategy("default"), tf.distribute.get_strategy())
        with self.assertRaisesRegex(ValueError, "use one of default, mirrored"):
            distribute.get_strategy("horovod")
        previous = os.environ.pop("TF_CONFIG", None)
        try:
            with self.assertRaisesRegex(ValueError, "TF_CONFIG"):
                distribute.get_strategy("multi_worker")
        finally:
            if previous is not None:
                os.environ["TF_CONFIG"] = previous
        self.assertTrue(distribute.is_chief())

    def test_synchronized_cond_runs_one_branch_without_a_strategy(self):
        taken = tf.Variable(0)

        @tf.function
        def step(pred):
            distribute.synchronized_cond(pred, lambda x: taken.assign(x), lambda x: None,
                                         args=(tf.constant(7),))

        step(tf.constant(False))
        self.assertEqual(int(taken.numpy()), 0)
        step(tf.constant(True))
        self.assertEqual(int(taken.numpy()), 7)


class MirroredEquivalenceTest(tf.test.TestCase):

    @pytest.mark.slow
    def test_every_trainer_matches_one_device_under_both_drivers(self):
        trainers = ["cyclegan", "pix2pix", "pretrain", "critic", "nogan"]
        result = run_check({"trainers": trainers, "runs": ["mirrored/loop", "mirrored/fit"]})
        for name in trainers:
            reference = result[name]["reference"]
            # The step really trained something (SGD: updates are proportional to gradients).
            self.assertGreater(reference["max_update"], 1e-3, name)
            for run in ("mirrored/loop", "mirrored/fit"):
                report = result[name][run]
                self.assertLess(report["relative_error"], 1e-5, f"{name} {run}")
                for key, value in reference["logs"].items():
                    self.assertAllClose(report["logs"][key], value, rtol=1e-5,
                                        msg=f"{name} {run} {key}")
        # NoGAN: two steps, the switcher (inside the compiled step) ran the critic, then the
        # generator, on both replicas; each optimizer moved once.
        for run in ("reference", "mirrored/loop", "mirrored/fit"):
            nogan = result["nogan"][run]
            self.assertEqual((nogan["d_iterations"], nogan["g_iterations"]), (1, 1), run)
            self.assertFalse(nogan["generator_mode"], run)

    def test_overflow_on_one_replica_skips_the_step_everywhere(self):
        report = run_check({"overflow": True})["overflow"]
        self.assertTrue(report["unchanged"])
        self.assertEqual(report["iterations"], 0)
        self.assertEqual(report["scale_after"], report["scale_before"] / 2)

    def test_critic_phase_inference_copy_serves_both_replicas(self):
        report = run_check({"critic_copy": True})["critic_copy"]
        self.assertTrue(report["copy"])
        self.assertGreaterEqual(report["copy_calls"], 2)  # traced by CustomLoop and by fit
        self.assertTrue(report["distributed"])
        self.assertLess(report["difference"], 0.02)
        self.assertGreater(report["moved"], 0)
        self.assertTrue(report["finite"])
        self.assertTrue(np.isfinite(report["critic_loss"]))


@pytest.mark.slow
class MultiWorkerTest(tf.test.TestCase):

    def test_two_workers_agree_and_the_chief_resumes(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        run_workers(out, max_steps=2)
        chief = checkpoint_variables(os.path.join(out, "checkpoints"))
        other = checkpoint_variables(os.path.join(out, "checkpoints", ".workers", "worker_1"))
        self.assertEqual(set(chief), set(other))
        for name, value in chief.items():
            if "/pool_" in name:
                continue  # each replica keeps its own image pool
            self.assertAllEqual(value, other[name], msg=name)
        self.assertEqual(int(chief["trainer/g_optimizer/_iterations/.ATTRIBUTES/"
                                   "VARIABLE_VALUE"]), 2)
        # The pools hold different images: the workers trained on different shards.
        pool = "trainer/pool_a/images/.ATTRIBUTES/VARIABLE_VALUE"
        self.assertFalse(np.array_equal(chief[pool], other[pool]))
        self.assertTrue(os.path.exists(os.path.join(out, "generators", "AtoB.keras")))

        log = run_workers(out, max_steps=3)
        self.assertRegex(log, r"from step 2 to 3")
        steps = checkpoint_steps(os.path.join(out, "checkpoints"))
        self.assertEqual(steps[-1], 3)

    def test_sigterm_to_one_worker_checkpoints_both_at_one_step(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        logs = [tempfile.TemporaryFile("w+") for _ in range(2)]
        processes = []
        try:
            processes = start_workers(out, 100000, "--epochs=100000", "--save_freq=10",
                                      stderrs=logs)
            deadline = time.time() + TIMEOUT
            first = os.path.join(out, "checkpoints", "ckpt-10.index")
            while time.time() < deadline and not os.path.exists(first):
                time.sleep(0.2)
            self.assertTrue(os.path.exists(first), "no checkpoint before the signal")
            processes[1].send_signal(signal.SIGTERM)  # preempt the non-chief worker
            for p in processes:
                p.wait(timeout=120)
        finally:
            for p in processes:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for log in logs:
            log.seek(0)
        texts = [log.read() for log in logs]
        self.assertEqual([p.returncode for p in processes], [128 + signal.SIGTERM] * 2,
                         texts[0][-2000:] + texts[1][-2000:])
        self.assertIn("stopped by SIGTERM at step", texts[0])
        steps = checkpoint_steps(os.path.join(out, "checkpoints"))
        reached = steps[-1]
        self.assertGreater(reached, 10)
        other = tf.train.load_checkpoint(os.path.join(out, "checkpoints", ".workers",
                                                      "worker_1"))
        name = "trainer/g_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE"
        self.assertEqual(int(other.get_tensor(name)), reached, "both at the agreed step")
        log = run_workers(out, reached + 1, "--epochs=100000")
        self.assertIn(f"from step {reached} to {reached + 1}", log)
