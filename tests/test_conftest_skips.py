"""tests/conftest.py's skip policy, run on a throw-away test file in a pytest subprocess: every
skip is printed with its reason (``-rs`` from pytest.ini), and with ``KGAN_FAIL_ON_SKIP=1`` (as
.ci/run sets it) a skip whose reason is not in ``ALLOWED_SKIP_REASONS`` fails the session while
an allowed one does not."""

import os
import subprocess
import sys
import tempfile

import tensorflow as tf
from helpers import ROOT

_TESTS = '''
import unittest


class Example(unittest.TestCase):
    def test_passes(self):
        pass

    def test_skips(self):
        self.skipTest("chromium went missing")
'''


class SkipPolicyTest(tf.test.TestCase):

    def _run(self, allowed=(), **env):
        with tempfile.TemporaryDirectory() as tmp:
            conftest = os.path.join(ROOT, "tests", "conftest.py")
            with open(os.path.join(tmp, "conftest.py"), "w") as f:
                f.write(f"exec(compile(open({conftest!r}).read(), {conftest!r}, 'exec'))\n"
                        f"ALLOWED_SKIP_REASONS = {tuple(allowed)!r}\n")
            with open(os.path.join(tmp, "test_example.py"), "w") as f:
                f.write(_TESTS)
            environment = {k: v for k, v in os.environ.items() if k != "KGAN_FAIL_ON_SKIP"}
            return subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-c",
                 os.path.join(ROOT, "pytest.ini"), "--rootdir", tmp, tmp],
                capture_output=True, text=True, timeout=120, env={**environment, **env})

    def test_skips_are_printed_and_an_unexpected_one_fails_ci(self):
        local = self._run()
        self.assertEqual(local.returncode, 0, local.stdout[-2000:])
        self.assertIn("SKIPPED [1]", local.stdout)
        self.assertIn("chromium went missing", local.stdout)

        ci = self._run(KGAN_FAIL_ON_SKIP="1")
        self.assertEqual(ci.returncode, 1, ci.stdout[-2000:])
        self.assertIn("unexpected skips", ci.stdout)
        self.assertIn("test_example.py::Example::test_skips: chromium went missing", ci.stdout)

        allowed = self._run(allowed=["chromium went"], KGAN_FAIL_ON_SKIP="1")
        self.assertEqual(allowed.returncode, 0, allowed.stdout[-2000:])
        self.assertNotIn("unexpected skips", allowed.stdout)
