"""pix2pix and the NoGAN restoration trainers: switcher rule, learning, phases resuming."""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from kgan.data import paired_dataset
from kgan.losses import PixelContentLoss
from kgan.models import build_discriminator, build_generator, critic, unet_generator
from kgan.trainers.base import adam
from kgan.trainers.critic import CriticPretrainer
from kgan.trainers.nogan import NoGANTrainer, next_generator_mode
from kgan.trainers.pix2pix import Pix2Pix

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


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


class CriticPretrainTest(tf.test.TestCase):

    def test_critic_learns_to_separate_real_from_generated(self):
        tf.keras.utils.set_random_seed(0)
        generator = build_generator("unet_128", ngf=4, norm="none", use_dropout=False)
        trainer = CriticPretrainer(generator, critic(nf=8))
        trainer.compile(adam(1e-3, 0.9, 0.99))
        clean = tf.random.uniform((4, 128, 128, 3), -1, 1)
        data = (clean, clean)
        logs = [trainer.train_step(data) for _ in range(30)]
        self.assertLess(float(logs[-1]["critic"]), float(logs[0]["critic"]))
        self.assertGreater(float(logs[-1]["accuracy"]), 0.9)


class Pix2PixTest(tf.test.TestCase):

    def test_logs_reference_terms_and_learns_a_paired_task(self):
        tf.keras.utils.set_random_seed(0)
        dataset, _ = paired_dataset(preprocess="resize_and_crop", load_size=36, crop_size=32,
                                    batch_size=4, seed=0, size_multiple=32)
        generator = unet_generator(num_downs=5, ngf=8, norm="batch", use_dropout=False)
        discriminator = build_discriminator("basic", in_channels=6, ndf=8, norm="batch")
        trainer = Pix2Pix(generator, discriminator, lambda_l1=100.0)
        trainer.compile(g_optimizer=adam(2e-3, 0.5), d_optimizer=adam(2e-4, 0.5))
        inputs, targets = next(iter(dataset))
        start = float(tf.reduce_mean(tf.abs(generator(inputs, training=False) - targets)))
        history = trainer.fit(dataset, steps_per_epoch=100, epochs=1, verbose=0).history
        self.assertEqual(set(history), {"G_GAN", "G_L1", "D_real", "D_fake", "lr"})
        end = float(tf.reduce_mean(tf.abs(generator(inputs, training=False) - targets)))
        self.assertLess(end, 0.5 * start, f"L1 {start:.3f} -> {end:.3f}")


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
