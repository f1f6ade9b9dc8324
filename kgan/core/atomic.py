"""Writing files so that a kill or a full disk never leaves something half-written that later
looks complete: ``atomic_path`` hands out a hidden temporary name next to the target and renames
it into place only when the write finished, removing it when the write failed; ``is_disk_full``
and ``DiskFullError`` turn "no space left on device" (from Python, h5py or TensorFlow's C++
writers) into one clear error.

``process_exists`` tells whether the writer of a lock or a half-written export still runs.

Called by kgan.serving.runs (generators, phase weights), kgan.data.images (PNGs),
kgan.training.checkpoints (training checkpoints), kgan.serving.inference (``index.html``),
kgan.cli.train (``flags.cfg``) and kgan.cli.common (one line for any disk-full error);
``process_exists`` by kgan.training.run_lock and kgan.exporting.export. Imports nothing from kgan
but its errors.
"""

import contextlib
import errno
import json
import os

from kgan.core.errors import KganError

_DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
_DISK_FULL_TEXT = ("no space left on device", "disk quota exceeded", "file too large")


class DiskFullError(KganError, OSError):
    """The disk (or quota) filled up while kgan was writing; what was there before is intact."""


def is_disk_full(error):
    """Whether ``error`` (any exception, e.g. ``OSError`` or a ``tf.errors.OpError``) says the
    disk or the quota is full."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _DISK_FULL_ERRNOS:
            return True
        if any(text in str(error).lower() for text in _DISK_FULL_TEXT):
            return True
        error = error.__cause__ or error.__context__
    return False


def disk_full_message(what, path, error, kept=None):
    """One line for a disk-full failure.

    Args:
        what: what was being written, e.g. ``the checkpoint at step 7``.
        path: where.
        error: the original exception.
        kept: what is still intact (e.g. the previous checkpoint), or None.
    """
    reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    text = f"No space left on the disk while writing {what} to {path} ({reason})."
    if kept:
        text += f" {kept} is intact."
    return text + " Free some space (or choose another folder) and rerun the same command."


def process_exists(pid):
    """Whether a process ``pid`` exists on this host (one run by another user counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def current_umask():
    """The process's umask (read by setting it and setting it back)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def follow_umask(path):
    """Gives a folder made by ``tempfile.mkdtemp`` (always 0700) the mode the user's umask
    gives any new folder (0755 under umask 022), so that outputs built in a hidden temporary
    folder and renamed into place stay readable by others as any tool's output would."""
    os.chmod(path, 0o777 & ~current_umask())


def partial_name(path):
    """The hidden temporary name used while ``path`` is written (``.NAME.partial``, keeping
    the extension last so that writers that look at it, like Keras, still work)."""
    folder, name = os.path.split(path)
    stem, ext = os.path.splitext(name)
    if name.endswith(".weights.h5"):
        stem, ext = name[:-len(".weights.h5")], ".weights.h5"
    return os.path.join(folder, f".{stem}.partial{ext}")


@contextlib.contextmanager
def atomic_path(path, what=None):
    """Yields a temporary path to write; renames it to ``path`` when the block succeeds and
    removes it when the block fails (a full disk raises ``DiskFullError``).

    Args:
        path: the final file.
        what: words for a disk-full message (default: the file name).

    Raises:
        DiskFullError: the write ran out of space; ``path`` keeps its previous content.
    """
    folder = os.path.dirname(path) or "."
    os.makedirs(folder, exist_ok=True)
    partial = partial_name(path)
    try:
        yield partial
        os.replace(partial, path)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.remove(partial)
        if isinstance(error, Exception) and is_disk_full(error):
            kept = f"The previous {os.path.basename(path)}" if os.path.exists(path) else None
            raise DiskFullError(disk_full_message(what or os.path.basename(path), folder, error,
                                                  kept)) from error
        raise


def write_text(path, text, what=None):
    """Writes ``text`` (UTF-8) to ``path`` atomically, creating the folder; ``what`` names the
    file in a disk-full message."""
    with atomic_path(path, what) as partial:
        with open(partial, "w", encoding="utf-8", errors="surrogateescape") as handle:
            handle.write(text)


def write_json(path, value, what=None):
    """Writes ``value`` as indented JSON to ``path`` atomically (``write_text``)."""
    write_text(path, json.dumps(value, indent=2) + "\n", what)
