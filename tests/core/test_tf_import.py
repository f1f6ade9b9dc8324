"""Tests for kgan.core.tf_import: known native notices dropped, everything else replayed."""

import subprocess
import sys

import tensorflow as tf
from helpers import ROOT, cli_env

SCRIPT = """
import os
from kgan.core.tf_import import native_lines_dropped
with native_lines_dropped("Ignored output_format"):
    os.write(2, b"W0000 Ignored output_format.\\nE0000 a real error\\n")
"""


class NativeLinesDroppedTest(tf.test.TestCase):

    def _stderr(self, **env):
        result = subprocess.run([sys.executable, "-c", SCRIPT], cwd=ROOT, env=cli_env(**env),
                                capture_output=True, text=True, timeout=120)
        self.assertEqual(result.returncode, 0, result.stderr)
        return result.stderr

    def test_known_notices_go_and_other_lines_stay(self):
        stderr = self._stderr()
        self.assertNotIn("Ignored output_format", stderr)
        self.assertIn("E0000 a real error", stderr)

    def test_kgan_debug_shows_everything(self):
        self.assertIn("Ignored output_format", self._stderr(KGAN_DEBUG="1"))
