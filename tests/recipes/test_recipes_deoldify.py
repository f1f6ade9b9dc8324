"""Training with DeOldify's networks (issue 23): ``kgan.train --model=colorize
--generator=deoldify_*`` builds DeOldify's generator (spectral norm in the decoder, as DeOldify
trains it) and DeOldify's critic instead of kgan's colourisation UNet and fastai-style critic;
``--init_from`` seeds them from DeOldify's ``*_gen.pth`` / ``*_crit.pth`` files or their
converted ``generator.keras`` (plain convs into spectral-normed ones). Seeded networks compute
the outputs REAL PyTorch computed for the fixture files within 1e-4. One short NoGAN run at
64 px with the fixtures (tests/fixtures/deoldify/)."""

import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, run_cli

from kgan.interop import deoldify_weights as dw
from kgan.interop import init_from
from kgan.models import is_deoldify_model, raw_network
from kgan.models.deoldify_critic import deoldify_critic
from kgan.models.encoders import TORCH_MEAN, TORCH_STD
from kgan.recipes import colorize
from kgan.recipes.config import TrainConfig

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "deoldify")
TOLERANCE = 1e-4


def _generator_error(model):
    raw = raw_network(model)
    worst = 0.0
    with np.load(os.path.join(FIXTURES, "outputs.npz")) as data:
        for i in range(2):
            x, expected = data[f"artistic/input_{i}"], data[f"artistic/output_{i}"]
            normalised = ((x + 1) / 2 - np.float32(TORCH_MEAN)) / np.float32(TORCH_STD)
            worst = max(worst, float(np.abs(np.asarray(raw(normalised, training=False))
                                            - expected).max()))
    return worst


def _critic_error(model):
    worst = 0.0
    with np.load(os.path.join(FIXTURES, "critic_outputs.npz")) as data:
        for i in range(2):
            x, expected = data[f"critic/input_{i}"], data[f"critic/output_{i}"]
            actual = np.asarray(model(x, training=False)).reshape(len(x), -1)
            worst = max(worst, float(np.abs(actual - expected).max()))
    return worst


def _deoldify_folder(folder):
    os.makedirs(folder, exist_ok=True)
    shutil.copy(os.path.join(FIXTURES, "artistic.pth"),
                os.path.join(folder, "ColorizeArtistic_gen.pth"))
    shutil.copy(os.path.join(FIXTURES, "critic.pth"),
                os.path.join(folder, "ColorizeArtistic_crit.pth"))
    return folder


class DeOldifyTrainingTest(tf.test.TestCase):

    def _config(self):
        return TrainConfig(model="colorize", generator="deoldify_artistic", ngf=4, critic_nf=8)

    def test_the_recipe_builds_deoldifys_networks_with_spectral_norm(self):
        config = self._config()
        generator = colorize.colorization_model(config)
        self.assertTrue(is_deoldify_model(generator))
        self.assertTrue(any(isinstance(layer, keras.layers.SpectralNormalization)
                            for layer in generator.layers))
        spec = colorize.make_spec(config)
        self.assertEqual(spec.critic(config).name, "deoldify_critic")
        self.assertIsNone(colorize.make_spec(TrainConfig(model="colorize")).critic)

    def test_init_from_seeds_generator_and_critic_from_deoldify_files(self):
        folder = _deoldify_folder(os.path.join(self.get_temp_dir(), "deoldify"))
        config = self._config()
        networks = {"G": colorize.colorization_model(config),
                    "D": colorize.colorization_critic(config)}
        self.assertGreater(_generator_error(networks["G"]), TOLERANCE)  # fresh: far off
        found = init_from.init_from_folder(folder, networks, model="pix2pix")
        self.assertEqual(sorted(os.path.basename(p) for p in found.values()),
                         ["ColorizeArtistic_crit.pth", "ColorizeArtistic_gen.pth"])
        self.assertLess(_generator_error(networks["G"]), TOLERANCE)
        self.assertLess(_critic_error(networks["D"]), TOLERANCE)

    def test_init_from_a_converted_export_folder(self):
        folder = os.path.join(self.get_temp_dir(), "converted")
        os.makedirs(folder)
        dw.load_deoldify_generator(os.path.join(FIXTURES, "artistic.pth"),
                                   "deoldify_artistic").save(
            os.path.join(folder, "generator.keras"))
        dw.load_deoldify_critic(os.path.join(FIXTURES, "critic.pth"), spectral_norm=False).save(
            os.path.join(folder, "discriminator.keras"))
        networks = {"G": colorize.colorization_model(self._config()),
                    "D": deoldify_critic(nf=8)}
        init_from.init_from_folder(folder, networks, model="pix2pix")
        self.assertLess(_generator_error(networks["G"]), TOLERANCE)
        self.assertLess(_critic_error(networks["D"]), TOLERANCE)
        with self.assertRaisesRegex(Exception, "does not fit"):
            init_from.init_from_folder(folder, {"D": deoldify_critic(nf=4)}, model="pix2pix",
                                       strict=False)

    @pytest.mark.slow
    def test_a_short_nogan_run_from_deoldifys_files(self):
        folder = _deoldify_folder(os.path.join(self.get_temp_dir(), "init"))
        run_dir = os.path.join(self.get_temp_dir(), "run")
        result = run_cli(
            "train", "--flagfile=" + os.path.join(ROOT, "configs", "colorize_quickstart.cfg"),
            "--generator=deoldify_artistic", "--ngf=4", "--critic_nf=8",
            "--pretrain_g_steps=2", "--pretrain_d_steps=2", "--gan_steps=2", "--save_freq=2",
            "--crop_size=64", "--load_size=64", "--batch_size=2", "--steps_per_epoch=2",
            "--eval_size=64", f"--init_from={folder}", f"--output_dir={run_dir}",
            f"--export_dir={os.path.join(self.get_temp_dir(), 'export')}", timeout=900)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        self.assertIn("G <- ", result.stdout)
        self.assertIn("D <- ", result.stdout)
        self.assertIn("colorize phase gan", result.stdout)
        generator = keras.saving.load_model(
            os.path.join(run_dir, "generators", "generator.keras"), safe_mode=True)
        self.assertTrue(is_deoldify_model(generator))
