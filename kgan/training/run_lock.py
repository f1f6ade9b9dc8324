"""One training run per ``--output_dir``: a lock file ``OUTPUT_DIR/.kgan.lock`` naming the
process (pid, host, start time, command) is created atomically (written under a temporary name,
then hard-linked into place, which fails when the lock exists); a second run refuses with one
line naming the first. A lock left by a process that died (kill -9, a crashed machine's reboot)
is taken over with a warning. Multi-worker runs share the folder by design: only the chief
takes the lock.

Called by kgan.cli.train.
"""

import json
import os
import socket
import sys
import time

from absl import logging

from kgan.core.atomic import process_exists
from kgan.core.errors import KganError

LOCK_NAME = ".kgan.lock"


class RunLockedError(KganError, RuntimeError):
    """Another live process trains into the same ``--output_dir``."""


def _start_time(pid):
    """The kernel's start time of ``pid`` (Linux ``/proc``), to tell a reused pid apart."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


def _alive(owner):
    """Whether the process described by a lock's contents still runs (on this host)."""
    pid = owner.get("pid")
    if not isinstance(pid, int) or pid <= 0:
        return False
    if not process_exists(pid):
        return False
    started = owner.get("started_ticks")
    return started is None or _start_time(pid) in (None, started)


def _describe(owner):
    when = time.strftime("%Y-%m-%d %H:%M", time.localtime(owner.get("time", 0)))
    return f"pid {owner.get('pid')} on {owner.get('host')} (since {when}: {owner.get('command')})"


class RunLock:
    """The lock of one run folder; use as ``with RunLock(output_dir): ...``.

    Args:
        run_dir: the run folder (created if needed).
    """

    def __init__(self, run_dir):
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, LOCK_NAME)
        self.held = False

    def _contents(self):
        return {"pid": os.getpid(), "host": socket.gethostname(), "time": time.time(),
                "started_ticks": _start_time(os.getpid()),
                "command": " ".join(sys.argv)[:300]}

    def _read(self):
        try:
            with open(self.path) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return None
        except (OSError, ValueError):
            return {}  # unreadable: treated as stale

    def acquire(self):
        """Takes the lock.

        Raises:
            RunLockedError: a live process (or one on another host) holds it.
        """
        os.makedirs(self.run_dir, exist_ok=True)
        temporary = f"{self.path}.{os.getpid()}.tmp"
        with open(temporary, "w") as handle:
            json.dump(self._contents(), handle)
        try:
            for _ in range(5):
                try:
                    os.link(temporary, self.path)  # atomic: fails when the lock exists
                    self.held = True
                    return self
                except FileExistsError:
                    pass
                owner = self._read()
                if owner is None:
                    continue  # released meanwhile
                if owner.get("host", socket.gethostname()) != socket.gethostname():
                    raise RunLockedError(
                        f"{self.run_dir} is in use by {_describe(owner)}. Two runs on one "
                        "--output_dir would overwrite each other's checkpoints: choose another "
                        f"--output_dir, or delete {self.path} if that process is gone.")
                if _alive(owner):
                    raise RunLockedError(
                        f"{self.run_dir} is in use by {_describe(owner)}. Two runs on one "
                        "--output_dir would overwrite each other's checkpoints: wait for it, "
                        "stop it, or choose another --output_dir.")
                # Stale: move it aside atomically (only one taker wins), then retry the link.
                stale = f"{self.path}.stale-{os.getpid()}"
                try:
                    os.replace(self.path, stale)
                except FileNotFoundError:
                    continue
                try:
                    with open(stale) as handle:
                        moved = json.load(handle)
                except (OSError, ValueError):
                    moved = {}
                if owner and moved.get("pid") != owner.get("pid"):
                    # Another process took the stale lock first and this moved its fresh one.
                    try:
                        os.link(stale, self.path)
                    except FileExistsError:
                        pass
                    os.remove(stale)
                    continue
                logging.warning("Took over the stale lock %s of %s, which is no longer "
                                "running.", self.path, _describe(owner) if owner else "a "
                                "process")
                os.remove(stale)
            raise RunLockedError(f"Could not take the lock {self.path}; another run keeps "
                                 "taking it. Choose another --output_dir.")
        finally:
            os.remove(temporary)

    def release(self):
        """Removes the lock if this process holds it."""
        if self.held:
            owner = self._read()
            if owner and owner.get("pid") == os.getpid():
                os.remove(self.path)
            self.held = False

    def __enter__(self):
        return self.acquire()

    def __exit__(self, *exc):
        self.release()
        return False
