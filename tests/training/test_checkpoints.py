"""kgan.training.checkpoints: fallback past a corrupt latest checkpoint, refusing to start over a
run
whose checkpoints all fail, and a full disk while saving (previous checkpoint intact)."""

import errno
import glob
import os
import tempfile
from unittest import mock

import tensorflow as tf
from absl import logging

from kgan.core.atomic import DiskFullError
from kgan.training import checkpoints


def _saved_run(steps=(1, 2, 3)):
    """A folder with one checkpoint per step; the variable holds the step at each save."""
    directory = os.path.join(tempfile.mkdtemp(), "checkpoints")
    variable = tf.Variable(0.0)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), directory,
                                         max_to_keep=None)
    for step in steps:
        variable.assign(float(step))
        checkpoints.save(manager, step)
    return directory


def _truncate(prefix):
    for path in glob.glob(prefix + ".data-*"):
        with open(path, "r+b") as handle:
            handle.truncate(2)


class RestoreNewestTest(tf.test.TestCase):

    def test_truncated_latest_falls_back_with_one_warning_and_saving_continues(self):
        directory = _saved_run()
        _truncate(os.path.join(directory, "ckpt-3"))
        variable = tf.Variable(-1.0)
        checkpoint = tf.train.Checkpoint(v=variable)
        with mock.patch.object(logging, "warning") as warning:
            restored = checkpoints.restore_newest(checkpoint, directory)
        self.assertEqual(os.path.basename(restored), "ckpt-2")
        self.assertEqual(float(variable.numpy()), 2.0)
        self.assertEqual(warning.call_count, 1)
        line = warning.call_args[0][0] % warning.call_args[0][1:]
        self.assertIn("ckpt-3 does not restore", line)
        self.assertIn("resuming from the older ckpt-2", line)
        # The bad one is set aside, and a manager continues from the good one.
        self.assertEmpty(glob.glob(os.path.join(directory, "ckpt-3.index")))
        self.assertNotEmpty(glob.glob(os.path.join(directory, "ckpt-3.index.corrupt")))
        manager = tf.train.CheckpointManager(checkpoint, directory, max_to_keep=None)
        self.assertEqual(os.path.basename(manager.latest_checkpoint), "ckpt-2")
        checkpoints.save(manager, 3)
        again = tf.Variable(0.0)
        self.assertEqual(os.path.basename(checkpoints.restore_newest(
            tf.train.Checkpoint(v=again), directory)), "ckpt-3")
        self.assertEqual(float(again.numpy()), 2.0)  # the value saved after the fallback

    def test_damaged_checkpoint_index_file_still_finds_the_newest(self):
        directory = _saved_run()
        with open(os.path.join(directory, "checkpoint"), "w") as handle:
            handle.write("garbage {{{")
        variable = tf.Variable(0.0)
        restored = checkpoints.restore_newest(tf.train.Checkpoint(v=variable), directory)
        self.assertEqual(os.path.basename(restored), "ckpt-3")
        self.assertEqual(float(variable.numpy()), 3.0)

    def test_missing_index_of_latest_falls_back(self):
        directory = _saved_run()
        os.remove(os.path.join(directory, "ckpt-3.data-00000-of-00001"))
        variable = tf.Variable(0.0)
        restored = checkpoints.restore_newest(tf.train.Checkpoint(v=variable), directory)
        self.assertEqual(os.path.basename(restored), "ckpt-2")

    def test_none_restores_stops_instead_of_starting_over(self):
        directory = _saved_run((1, 2))
        for step in (1, 2):
            _truncate(os.path.join(directory, f"ckpt-{step}"))
        with self.assertRaisesRegex(checkpoints.CheckpointRestoreError,
                                    "None of the 2 checkpoint.*rather than start from scratch"):
            checkpoints.restore_newest(tf.train.Checkpoint(v=tf.Variable(0.0)), directory)

    def test_no_folder_or_empty_folder_is_a_fresh_run(self):
        checkpoint = tf.train.Checkpoint(v=tf.Variable(0.0))
        self.assertIsNone(checkpoints.restore_newest(checkpoint, "/no/such/folder"))
        self.assertIsNone(checkpoints.restore_newest(checkpoint, tempfile.mkdtemp()))

    def test_checkpoint_of_another_model_is_not_taken(self):
        directory = _saved_run((1,))
        other = tf.train.Checkpoint(w=tf.Variable([1.0, 2.0]))
        with self.assertRaises(checkpoints.CheckpointRestoreError):
            checkpoints.restore_newest(other, directory)


class SaveDiskFullTest(tf.test.TestCase):

    def test_enospc_keeps_the_previous_checkpoint_and_removes_the_partial_one(self):
        directory = _saved_run((1, 2))
        variable = tf.Variable(7.0)
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=variable), directory,
                                             max_to_keep=None)
        real_write = tf.train.Checkpoint._write  # what CheckpointManager.save calls

        def write_then_fail(checkpoint, file_prefix, options=None, **kwargs):
            # The data and .index files are written, then the disk fills up before the manager
            # records the new checkpoint in its ``checkpoint`` file (its write callbacks).
            real_write(checkpoint, file_prefix)
            raise OSError(errno.ENOSPC, "No space left on device")

        with mock.patch.object(tf.train.Checkpoint, "_write", write_then_fail):
            with self.assertRaisesRegex(DiskFullError, "No space left on the disk while "
                                        "writing the checkpoint at step 3.*ckpt-2 is intact"):
                checkpoints.save(manager, 3)
        self.assertEmpty(glob.glob(os.path.join(directory, "ckpt-3*")))
        self.assertEqual(os.path.basename(tf.train.latest_checkpoint(directory)), "ckpt-2")
        restored = tf.Variable(0.0)
        checkpoints.restore_newest(tf.train.Checkpoint(v=restored), directory)
        self.assertEqual(float(restored.numpy()), 2.0)

    def test_other_errors_are_not_disguised(self):
        directory = _saved_run((1,))
        manager = tf.train.CheckpointManager(tf.train.Checkpoint(v=tf.Variable(0.0)),
                                             directory, max_to_keep=None)
        with mock.patch.object(tf.train.Checkpoint, "_write",
                               side_effect=PermissionError(errno.EACCES, "denied")):
            with self.assertRaises(PermissionError):
                checkpoints.save(manager, 2)


if __name__ == "__main__":
    tf.test.main()
