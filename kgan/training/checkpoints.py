"""Training checkpoints that survive real disks: restoring the newest checkpoint that actually
restores (a truncated or corrupt latest one, or a damaged ``checkpoint`` index, falls back to
an older one with one warning line), refusing to start from scratch over a run that had
progress, and saving with one clear error when the disk is full (the previous checkpoint
intact, the half-written one removed).

Called by kgan.training.loop (restore) and kgan.training.callbacks.CheckpointSaver (save).
"""

import glob
import os
import re

import tensorflow as tf
from absl import logging

from kgan.core.atomic import DiskFullError, disk_full_message, is_disk_full
from kgan.core.errors import KganError

_NUMBERED = re.compile(r"-(\d+)$")
CORRUPT_SUFFIX = ".corrupt"


class CheckpointRestoreError(KganError, RuntimeError):
    """Checkpoints exist but none of them restores; training does not start over them."""


def _number(prefix):
    match = _NUMBERED.search(prefix)
    return int(match.group(1)) if match else -1


def checkpoint_candidates(directory):
    """Every checkpoint prefix in ``directory``, newest first: those the ``checkpoint`` index
    lists and any ``*.index`` file on disk (the index itself may be damaged or missing).

    Returns:
        A list of checkpoint prefixes (paths without ``.index``).
    """
    prefixes = set()
    try:
        state = tf.train.get_checkpoint_state(directory)
    except Exception:  # noqa: BLE001 - a damaged index is handled by the glob below
        state = None
    if state is not None:
        for path in state.all_model_checkpoint_paths or [state.model_checkpoint_path]:
            path = path if os.path.isabs(path) else os.path.join(directory, path)
            if os.path.exists(path + ".index"):
                prefixes.add(os.path.normpath(path))
    for index in glob.glob(os.path.join(glob.escape(directory), "*.index")):
        prefixes.add(os.path.normpath(index[:-len(".index")]))
    return sorted(prefixes, key=lambda p: (_number(p), os.path.getmtime(p + ".index")),
                  reverse=True)


def _reason(error):
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _quarantine(prefix):
    """Renames a checkpoint's files to ``*.corrupt`` so that nothing tries it again."""
    for path in glob.glob(glob.escape(prefix) + ".*"):
        if not path.endswith(CORRUPT_SUFFIX):
            try:
                os.replace(path, path + CORRUPT_SUFFIX)
            except OSError as error:
                logging.warning("Could not rename %s aside: %s", path, error)


def restore_newest(checkpoint, directory):
    """Restores the newest checkpoint of ``directory`` that restores into ``checkpoint``.

    A checkpoint that fails (truncated data, bad index, missing shard) is renamed to
    ``*.corrupt`` and named in one warning line; the ``checkpoint`` index is rewritten to the
    one that restored, so ``tf.train.CheckpointManager`` continues from it.

    Args:
        checkpoint: a ``tf.train.Checkpoint``.
        directory: the checkpoint folder (it may not exist yet).

    Returns:
        The restored prefix, or None when the folder holds no checkpoint.

    Raises:
        CheckpointRestoreError: checkpoints exist and none restores.
    """
    candidates = checkpoint_candidates(directory) if os.path.isdir(directory) else []
    bad = []
    for prefix in candidates:
        try:
            checkpoint.restore(prefix).assert_existing_objects_matched()
        except Exception as error:  # noqa: BLE001 - IndexError, OpError, AssertionError, ...
            bad.append((prefix, _reason(error)))
            continue
        if bad:
            logging.warning(
                "Checkpoint %s does not restore (%s); resuming from the older %s instead%s.",
                bad[0][0], bad[0][1], os.path.basename(prefix),
                f" (also unreadable: {', '.join(os.path.basename(p) for p, _ in bad[1:])})"
                if len(bad) > 1 else "")
            for bad_prefix, _ in bad:
                _quarantine(bad_prefix)
            kept = [p for p in reversed(candidates) if p not in dict(bad)]
            tf.compat.v1.train.update_checkpoint_state(
                directory, prefix, all_model_checkpoint_paths=kept[:kept.index(prefix) + 1])
        return prefix
    if bad:
        raise CheckpointRestoreError(
            f"None of the {len(bad)} checkpoint(s) in {directory} restores (newest "
            f"{os.path.basename(bad[0][0])}: {bad[0][1]}). Training stopped rather than start "
            "from scratch over a run that had progress: restore the folder from a backup, or "
            "move it away to start afresh.")
    return None


def save(manager, step):
    """``manager.save(checkpoint_number=step)`` with one clear error when the disk is full.

    TensorFlow writes the data and ``.index`` files first and the ``checkpoint`` index last (an
    atomic rename), so on failure the previous checkpoint is still the latest; the files of the
    failed save are removed so that they never look like a checkpoint.

    Returns:
        The saved prefix.

    Raises:
        DiskFullError: the disk filled up while saving.
    """
    previous = manager.latest_checkpoint
    try:
        return manager.save(checkpoint_number=step)
    except Exception as error:
        if not is_disk_full(error):
            raise
        prefix = os.path.join(manager.directory, f"ckpt-{step}")
        if manager.latest_checkpoint != prefix:
            for path in glob.glob(glob.escape(prefix) + ".*") + glob.glob(
                    glob.escape(prefix) + "_temp*"):
                try:
                    if os.path.isdir(path):
                        tf.io.gfile.rmtree(path)
                    else:
                        os.remove(path)
                except (OSError, tf.errors.OpError):
                    pass
        kept = f"The previous checkpoint {os.path.basename(previous)}" if previous else None
        raise DiskFullError(disk_full_message(f"the checkpoint at step {step}",
                                              manager.directory, error, kept)) from error
