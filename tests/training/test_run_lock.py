"""kgan.training.run_lock: one trainer per --output_dir; a live owner refuses, a dead one's lock is
taken over with a warning, another host's lock is never taken."""

import json
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
from unittest import mock

import tensorflow as tf
from absl import logging
from helpers import ROOT, cli_env

from kgan.training import run_lock


def _write_lock(folder, **owner):
    with open(os.path.join(folder, run_lock.LOCK_NAME), "w") as handle:
        json.dump({"host": socket.gethostname(), "time": 0, "command": "kgan.train", **owner},
                  handle)


def _dead_pid():
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


class RunLockTest(tf.test.TestCase):

    def test_acquire_release_and_reacquire(self):
        folder = os.path.join(tempfile.mkdtemp(), "run")
        with run_lock.RunLock(folder) as lock:
            with open(lock.path) as handle:
                owner = json.load(handle)
            self.assertEqual(owner["pid"], os.getpid())
            self.assertEqual(owner["host"], socket.gethostname())
        self.assertFalse(os.path.exists(lock.path))
        with run_lock.RunLock(folder):
            pass
        self.assertEqual(os.listdir(folder), [])  # no temporary files left

    def test_a_live_process_holding_the_lock_refuses_with_its_pid(self):
        folder = tempfile.mkdtemp()
        holder = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(f"""
                import sys, time
                from kgan.training.run_lock import RunLock
                with RunLock({folder!r}):
                    print("held", flush=True)
                    sys.stdin.read()
                """)], cwd=ROOT, env=cli_env(), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        try:
            self.assertEqual(holder.stdout.readline().strip(), "held")
            with self.assertRaisesRegex(run_lock.RunLockedError,
                                        f"is in use by pid {holder.pid} on "
                                        f"{socket.gethostname()}.*choose another --output_dir"):
                run_lock.RunLock(folder).acquire()
        finally:
            holder.communicate("", timeout=30)
        with run_lock.RunLock(folder):  # released when the holder ended
            pass

    def test_stale_lock_of_a_dead_process_is_taken_over_with_a_warning(self):
        folder = tempfile.mkdtemp()
        dead = _dead_pid()
        _write_lock(folder, pid=dead)
        with mock.patch.object(logging, "warning") as warning:
            with run_lock.RunLock(folder) as lock:
                with open(lock.path) as handle:
                    self.assertEqual(json.load(handle)["pid"], os.getpid())
        self.assertEqual(warning.call_count, 1)
        line = warning.call_args[0][0] % warning.call_args[0][1:]
        self.assertIn("Took over the stale lock", line)
        self.assertIn(f"pid {dead}", line)

    def test_unreadable_lock_is_stale(self):
        folder = tempfile.mkdtemp()
        with open(os.path.join(folder, run_lock.LOCK_NAME), "w") as handle:
            handle.write("{half a json")
        with run_lock.RunLock(folder) as lock:
            with open(lock.path) as handle:  # taken over: rewritten as ours
                self.assertEqual(json.load(handle)["pid"], os.getpid())

    def test_a_reused_pid_is_not_mistaken_for_the_owner(self):
        folder = tempfile.mkdtemp()
        # Our own pid, but a start time that is not ours: the owner died and the pid was reused.
        _write_lock(folder, pid=os.getpid(), started_ticks="1")
        with run_lock.RunLock(folder) as lock:
            with open(lock.path) as handle:  # taken over: rewritten with our start time
                owner = json.load(handle)
            self.assertEqual(owner["pid"], os.getpid())
            self.assertNotEqual(owner["started_ticks"], "1")
            self.assertEqual(owner["command"], " ".join(sys.argv)[:300])

    def test_another_hosts_lock_is_never_taken(self):
        folder = tempfile.mkdtemp()
        _write_lock(folder, pid=_dead_pid(), host="other-machine")
        with self.assertRaisesRegex(run_lock.RunLockedError,
                                    "in use by pid .* on other-machine.*delete .*kgan.lock"):
            run_lock.RunLock(folder).acquire()


if __name__ == "__main__":
    tf.test.main()
