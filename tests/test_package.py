"""What ``import kgan`` does (kgan/__init__.py): it registers kgan's Keras layers, so the
docs/pretrained.md's ``keras.saving.load_model(..., safe_mode=True)`` snippet works after a plain
``import kgan``; it imports TensorFlow without its C++ start-up chatter; and where TensorFlow is
not installed it still imports, so the PyTorch peer benchmarks can use kgan.core.measure."""

import os
import subprocess
import sys

import tensorflow as tf
from helpers import ROOT, cli_env

GENERATOR = os.path.join(ROOT, "tests", "fixtures", "before_packages", "restore", "generators",
                         "generator.keras")


def _python(code, quiet_env=True):
    env = cli_env()
    if not quiet_env:  # as a user's shell: no TF_CPP_MIN_LOG_LEVEL of ours
        env.pop("TF_CPP_MIN_LOG_LEVEL")
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)


class ImportKganTest(tf.test.TestCase):

    def test_import_kgan_registers_the_layers_for_keras_load_model(self):
        snippet = ("import kgan\nimport keras\n"
                   f"model = keras.saving.load_model({GENERATOR!r}, safe_mode=True)\n"
                   "print(type(model).__name__, len(model.layers))")
        result = _python(snippet, quiet_env=False)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
        self.assertStartsWith(result.stdout, "Functional ")
        self.assertNotIn("oneDNN custom operations", result.stderr)  # started quietly
        # Without kgan the same file does not load: the check can fail.
        bare = _python("import keras\n"
                       f"keras.saving.load_model({GENERATOR!r}, safe_mode=True)")
        self.assertNotEqual(bare.returncode, 0)
        self.assertIn("kgan>", bare.stderr)

    def test_measure_imports_without_tensorflow(self):
        blocked = ("import sys\nsys.modules['tensorflow'] = None\nsys.modules['keras'] = None\n"
                   "from kgan.core import measure\n"
                   "assert 'tensorflow' not in [k for k, v in sys.modules.items() if v]\n"
                   "print(measure.cyclegan_step_flops.__name__)")
        result = _python(blocked)
        self.assertEqual(result.returncode, 0, result.stderr[-2000:])
