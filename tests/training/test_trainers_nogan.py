"""kgan.training.trainers.nogan and the restoration phases: switcher rule, compiled switching,
phases
running and resuming from the previous one."""

import os
import subprocess
import sys
import tempfile

import pytest
import tensorflow as tf
from helpers import ROOT

from kgan.models import critic, unet_generator
from kgan.training.losses import PixelContentLoss
from kgan.training.trainers.base import adam
from kgan.training.trainers.nogan import NoGANTrainer, next_generator_mode


class SwitcherTest(tf.test.TestCase):

    def test_mode_transitions_on_scripted_losses(self):
        """Critic until its loss < 0.65, then one generator step, then back to the critic."""
        mode, modes = False, []
        for critic_loss in [0.9, 0.8, 0.7, 0.6, 0.6, 0.66, 0.5, 0.5]:
            mode = bool(next_generator_mode(tf.constant(mode), tf.constant(critic_loss), 0.65))
            modes.append(mode)
        self.assertEqual(modes, [False, False, False, True, False, False, True, False])

    def test_compiled_step_switches_without_retracing(self):
        tf.keras.utils.set_random_seed(0)
        generator = unet_generator(num_downs=5, ngf=4, norm="none", use_dropout=False,
                                   upsample="pixel_shuffle", last_cross=True, residual=True)
        trainer = NoGANTrainer(generator, critic(nf=4), PixelContentLoss(), critic_thresh=10.0)
        trainer.compile(g_optimizer=adam(1e-4, 0.0, 0.99), d_optimizer=adam(5e-4, 0.0, 0.99))
        step = tf.function(trainer.train_step)
        data = (tf.random.uniform((2, 64, 64, 3), -1, 1), tf.random.uniform((2, 64, 64, 3), -1, 1))
        trained_critic = [float(step(data)["critic_step"]) for _ in range(4)]
        # Threshold 10: every critic step passes, so critic and generator alternate.
        self.assertEqual(trained_critic, [1.0, 0.0, 1.0, 0.0])
        self.assertEqual(int(trainer.g_optimizer.iterations), 2)
        self.assertEqual(int(trainer.d_optimizer.iterations), 2)
        self.assertEqual(step.experimental_get_tracing_count(), 1)


@pytest.mark.slow
class NoGANPhasesTest(tf.test.TestCase):

    def test_each_phase_runs_and_resumes_from_the_previous(self):
        out = os.path.join(tempfile.mkdtemp(), "restore")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}
        common = ["--model=restore", "--unet_downs=5", "--ngf=4", "--critic_nf=4",
                  "--crop_size=64", "--batch_size=2", "--pretrain_g_steps=4",
                  "--pretrain_d_steps=3", "--gan_steps=4", "--save_freq=2", "--verbose=0",
                  "--eval_size=64", "--seed=0", f"--output_dir={out}"]

        def run(*extra):
            return subprocess.run([sys.executable, "-m", "kgan.train", *common, *extra],
                                  cwd=ROOT, env=env, capture_output=True, text=True,
                                  timeout=300)

        early = run("--phase=gan", "--noevaluate")
        self.assertNotEqual(early.returncode, 0)
        self.assertIn("run --phase=pretrain_g first", early.stderr)
        for phase in ("pretrain_g", "pretrain_d", "gan"):
            result = run(f"--phase={phase}")
            self.assertEqual(result.returncode, 0, result.stderr[-3000:])
            self.assertTrue(os.path.exists(os.path.join(out, phase, "generator.weights.h5")))
        self.assertIn("Loaded critic", result.stderr)
        self.assertIn("held-out PSNR", result.stdout)
        self.assertIn("degraded_input", result.stdout)
        # Running a finished phase again resumes from its checkpoint and has nothing to do.
        again = run("--phase=pretrain_d")
        self.assertIn("already trained to step 3", again.stderr)
