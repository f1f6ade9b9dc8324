"""Resume checked by state, not step counts: a tiny CycleGAN (configs/smoke.cfg, seeded,
TF_DETERMINISTIC_OPS=1) trained 10 steps in one go against one stopped at step 5
(``--max_steps=5``) and rerun to 10; every checkpointed variable (generator and discriminator
weights, both optimizers' slots and iterations, the image pools, the step) is compared within
``TOLERANCE``.

Two uninterrupted runs give bit-identical checkpoints, a checkpoint whose optimizer is
replaced by a fresh one (slots zeroed) breaks the comparison, and so did resuming before the
data stream was positioned at the step reached (steps 6-10 saw steps 1-5's images and crops:
max difference 10.7 in a G optimizer slot, 0.79 in an image pool). The recipes now hand
``train_loop`` a ``dataset_at(step)`` (kgan.recipes.common) that continues the stream where an
uninterrupted run would be; tests/data/test_data_positions.py checks each builder's ``start``.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
import pytest
import tensorflow as tf
from helpers import ROOT, SMOKE_ENV, cli_env, smoke_run

TOLERANCE = 1e-6  # absolute, every variable; uninterrupted runs measured 0.0
# configs/smoke.cfg trains 10 steps with a checkpoint every 5: the shared smoke run
# (helpers.smoke_run, also TF_DETERMINISTIC_OPS=1) is the uninterrupted reference.
ARGS = ["--flagfile=configs/smoke.cfg", "--save_freq=5"]


def _train(output_dir, *extra):
    result = subprocess.run([sys.executable, "-m", "kgan.train", *ARGS,
                             f"--output_dir={output_dir}", *extra], cwd=ROOT,
                            env=cli_env(**SMOKE_ENV), capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _state(checkpoint_prefix):
    reader = tf.train.load_checkpoint(checkpoint_prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key != "_CHECKPOINTABLE_OBJECT_GRAPH"}


def state_differences(a, b):
    """``{key: max abs difference}`` of two checkpoint states, inf for a missing key."""
    out = {}
    for key in set(a) | set(b):
        if key not in a or key not in b or np.shape(a[key]) != np.shape(b[key]):
            out[key] = float("inf")
        elif np.size(a[key]):
            out[key] = float(np.max(np.abs(np.asarray(a[key], np.float64)
                                           - np.asarray(b[key], np.float64))))
        else:
            out[key] = 0.0
    return out


def _assert_same_state(test, a, b):
    differences = state_differences(a, b)
    worst = max(differences, key=differences.get)
    test.assertLessEqual(differences[worst], TOLERANCE,
                         f"{worst} differs by {differences[worst]:.3g}")


def _fresh_optimizer(state):
    """The state with each optimizer's slots and iteration count reset (a fresh optimizer)."""
    return {key: (np.zeros_like(value) if "_optimizer/_variables/" in key
                  or "_optimizer/_iterations" in key else value)
            for key, value in state.items()}


@pytest.mark.slow
class ResumeStateTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.full = smoke_run()[0]
        cls.full_state = _state(os.path.join(cls.full, "checkpoints", "ckpt-10"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def test_uninterrupted_runs_match_and_a_fresh_optimizer_is_caught(self):
        again = os.path.join(self.tmp, "again")
        _train(again, "--max_steps=10")
        state = _state(os.path.join(again, "checkpoints", "ckpt-10"))
        self.assertIn("trainer/g_optimizer/_variables/1/.ATTRIBUTES/VARIABLE_VALUE", state)
        _assert_same_state(self, self.full_state, state)
        with self.assertRaisesRegex(AssertionError, "_optimizer/"):
            _assert_same_state(self, self.full_state, _fresh_optimizer(state))

    def test_resume_matches_an_uninterrupted_run(self):
        resumed = os.path.join(self.tmp, "resumed")
        _train(resumed, "--max_steps=5")
        result = _train(resumed, "--max_steps=10")
        self.assertIn("from step 5 to 10", result.stderr)
        _assert_same_state(self, self.full_state,
                           _state(os.path.join(resumed, "checkpoints", "ckpt-10")))
