"""The command lines as a user meets them (kgan.cli.common): kgan's own grouped --help with
exit code 0, one-line errors with exit code 2, no TensorFlow start-up noise, no run folder
left by a run that failed at once, and runs started by older layouts of the code resuming:
before the first restructuring (tests/fixtures/pre_restructure) and before the packages per
row (tests/fixtures/before_packages, with outputs of its generators computed by that code)."""

import os
import re
import shutil
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, run_cli

FIXTURES = os.path.join(ROOT, "tests", "fixtures", "pre_restructure")
BEFORE_PACKAGES = os.path.join(ROOT, "tests", "fixtures", "before_packages")


class HelpAndErrorsTest(tf.test.TestCase):

    def test_train_help_lists_grouped_kgan_flags_and_exits_0(self):
        result = run_cli("train", "--help", timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        out = result.stdout
        for group in ("model:", "losses:", "training:", "data:", "output and logging:",
                      "scale:"):
            self.assertIn(group, out)
        self.assertLess(out.index("model:"), out.index("data:"))
        self.assertIn("--crop_size=<int>  (default: '256')", out)
        self.assertNotIn("test_srcdir", out)  # no absl.testing / TPU internals
        self.assertEqual(result.stderr.strip(), "")  # no TensorFlow start-up chatter

    def test_translate_errors_are_one_line_with_exit_code_2(self):
        typo = run_cli("translate", "--input=x", "--output=y", "--tiel=3", timeout=120)
        self.assertEqual(typo.returncode, 2)
        self.assertIn("Did you mean: tile", typo.stderr)
        missing = run_cli("translate", "--model=/no/such/export", "--input=x", "--output=y",
                          timeout=120)
        self.assertEqual(missing.returncode, 2)
        self.assertEqual(len(missing.stderr.strip().splitlines()), 1, missing.stderr)
        self.assertIn("kgan.translate: error: --model /no/such/export does not exist",
                      missing.stderr)
        self.assertNotIn("Traceback", missing.stderr)

    def test_a_run_that_fails_at_once_leaves_no_run_folder(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        result = run_cli("train", "--flagfile=configs/smoke.cfg", f"--output_dir={out}",
                         f"--dataroot={tempfile.mkdtemp()}", timeout=180)
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("kgan.train: error:", result.stderr)
        self.assertFalse(os.path.exists(out), os.listdir(out) if os.path.exists(out) else "")


    def test_crops_that_do_not_fit_the_generator_name_the_flags(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        result = run_cli("train", "--model=pix2pix", "--crop_size=64", "--load_size=64",
                         "--ngf=4", "--ndf=4", "--max_steps=1", f"--output_dir={out}",
                         timeout=180)
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        self.assertIn("--crop_size=64 does not fit --generator=unet_256", result.stderr)
        self.assertNotIn("Exception encountered", result.stderr)
        self.assertNotIn("\x1b[", result.stderr)


class NothingProducedTest(tf.test.TestCase):
    """A command that produced nothing exits non-zero with one line (scripts must notice)."""

    def setUp(self):
        super().setUp()
        self.inputs = os.path.join(self.get_temp_dir(), "inputs")
        os.makedirs(self.inputs, exist_ok=True)
        with open(os.path.join(self.inputs, "x.jpg"), "w") as handle:
            handle.write("not a picture\n")  # the folder's only file: text named .jpg

    def assert_one_error_line(self, result, *expected):
        self.assertEqual(result.returncode, 2, result.stderr[-2000:])
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        self.assertLen(errors, 1, result.stderr[-2000:])
        for text in expected:
            self.assertIn(text, errors[0])
        self.assertNotIn("Traceback", result.stderr)

    def test_translate_colorize_and_crappify(self):
        from kgan.models import build_generator
        from kgan.models.colorize import colorization_generator

        translator = os.path.join(self.get_temp_dir(), "g.keras")
        build_generator("resnet_6blocks", ngf=4).save(translator)
        colorizer = os.path.join(self.get_temp_dir(), "c.keras")
        colorization_generator(num_downs=5, ngf=4, norm="none").save(colorizer)
        out = os.path.join(self.get_temp_dir(), "out")
        self.assert_one_error_line(
            run_cli("translate", f"--model={translator}", f"--input={self.inputs}",
                    f"--output={out}/t", timeout=180),
            "kgan.translate: error:", "nothing translated", "x.jpg")
        self.assert_one_error_line(
            run_cli("colorize", f"--model={colorizer}", f"--input={self.inputs}",
                    f"--output={out}/c", "--noprogress", timeout=180),
            "kgan.colorize: error:", "nothing colourised", "x.jpg")
        self.assert_one_error_line(
            run_cli("crappify", f"--input_dir={self.inputs}", f"--output_dir={out}/d",
                    timeout=180),
            "kgan.crappify: error:", "x.jpg")
        for folder in ("c", "d"):  # no empty output folder left either
            self.assertFalse(os.path.exists(os.path.join(out, folder)), folder)
        # translate's index.html lists the skipped files and why; no image was written.
        self.assertEqual(os.listdir(os.path.join(out, "t")), ["index.html"])


class OldRunsResume:
    """Checkpoints written by an older layout of the code (``FIXTURE_ROOT``) restore into
    today's trainers and training continues from their step."""

    FIXTURE_ROOT = None

    def resume(self, name, *flags):
        """Copies the fixture run ``name`` and reruns its flags with ``flags``; returns
        (run folder, CompletedProcess)."""
        run = os.path.join(tempfile.mkdtemp(), name)
        shutil.copytree(os.path.join(self.FIXTURE_ROOT, name), run)
        result = run_cli("train", f"--flagfile={run}/flags.cfg", f"--output_dir={run}", *flags,
                         timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        return run, result

    @pytest.mark.slow
    def test_cyclegan_run_resumes_at_its_step(self):
        run, result = self.resume("cyclegan", "--max_steps=3")
        self.assertRegex(result.stderr, r"Resumed from .*ckpt-2")
        self.assertIn("from step 2 to 3", result.stderr)
        self.assertTrue(os.path.isfile(os.path.join(run, "checkpoints", "ckpt-3.index")))
        self.assertTrue(os.path.isfile(os.path.join(run, "report.html")))
        return run, result

    def test_restore_phase_resumes_at_its_step(self):
        run, result = self.resume("restore", "--pretrain_g_steps=3")
        self.assertRegex(result.stderr, r"Resumed from .*pretrain_g/checkpoints/ckpt-2")
        self.assertTrue(re.search(r"from step 2 to 3", result.stderr), result.stderr[-2000:])
        self.assertTrue(os.path.isfile(os.path.join(run, "generators", "generator.keras")))


class PreRestructureRunsResumeTest(OldRunsResume, tf.test.TestCase):
    """Runs written before the first restructuring (train.py/train_restore.py)."""

    FIXTURE_ROOT = FIXTURES

    @pytest.mark.slow
    def test_cyclegan_run_resumes_at_its_step(self):
        run, result = super().test_cyclegan_run_resumes_at_its_step()
        # Its flags.cfg said --residual (then ignored by cycle_gan): it resumes without it.
        self.assertIn("started before --residual applied to cycle_gan", result.stdout)
        with open(os.path.join(run, "flags.cfg")) as handle:
            self.assertIn("--noresidual", handle.read().split())


class BeforePackagesRunsTest(OldRunsResume, tf.test.TestCase):
    """Runs and ``.keras`` generators written before the packages per row (commit b31a659:
    modules at the top of kgan/)."""

    FIXTURE_ROOT = BEFORE_PACKAGES

    def test_its_keras_generators_load_and_give_the_same_outputs(self):
        from kgan.serving.runs import load_generator

        with np.load(os.path.join(BEFORE_PACKAGES, "outputs.npz")) as saved:
            for name, path in (("cyclegan_AtoB", "cyclegan/generators/AtoB.keras"),
                               ("restore_generator", "restore/generators/generator.keras")):
                model = load_generator(os.path.join(BEFORE_PACKAGES, path))
                # Saved on an AVX-512 CPU; oneDNN's float32 kernels on one with AMX differ
                # by up to 1.3e-6.
                self.assertAllClose(model(saved["input"], training=False), saved[name],
                                    atol=1e-5, msg=name)
            # The check can fail: the other generator's outputs are far from these.
            self.assertGreater(np.abs(saved["cyclegan_AtoB"] - saved["restore_generator"]).max(),
                               1e-2)


class ProgressOutputTest(tf.test.TestCase):
    """Keras' redrawn progress bar is for terminals; logs and pipes get a line per epoch."""

    def test_a_pipe_gets_one_line_per_epoch_and_a_terminal_the_bar(self):
        import io

        from kgan.cli.train import for_this_output
        from kgan.recipes import make_config

        class Terminal(io.StringIO):
            def isatty(self):
                return True

        config = make_config(model="cycle_gan", verbose=1)
        self.assertEqual(for_this_output(config, io.StringIO()).verbose, 2)
        self.assertEqual(for_this_output(config, Terminal()).verbose, 1)
        silent = make_config(model="cycle_gan", verbose=0)
        self.assertEqual(for_this_output(silent, io.StringIO()).verbose, 0)

    def test_a_piped_training_run_prints_lines_for_people(self):
        out = os.path.join(tempfile.mkdtemp(), "run")
        result = run_cli("train", "--flagfile=configs/smoke.cfg", "--verbose=1", "--save_freq=1",
                         "--max_steps=6", f"--output_dir={out}", timeout=300)
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        both = result.stdout + result.stderr
        self.assertNotIn("\x1b[", both)  # no redrawn progress bar in a pipe
        self.assertNotIn("\u2501", both)
        self.assertIn("5/5 - ", result.stdout)  # one line per epoch
        # Six checkpoints were written; only the final one is announced.
        self.assertEqual(both.count("Saved checkpoint"), 1, both[-3000:])
        self.assertNotIn("Sharding callback", both)
        self.assertLess(len(both.splitlines()), 60, both[-3000:])
