"""Stopping a training run cleanly when the machine asks it to: SIGTERM (cloud preemption, a
scheduler ending the job) or SIGINT (Ctrl-C) ends the current step, saves a checkpoint at the
step reached, flushes TensorBoard and raises ``TrainingInterrupted``; a second signal exits at
once. Under MultiWorkerMirroredStrategy TensorFlow's own
``tf.distribute.experimental.PreemptionCheckpointHandler`` does the checkpoint (every worker
agrees on the step), and Ctrl-C is handed to it as a SIGTERM.

Called by kgan.training.loop (``StopSignals``, ``StopOnSignal``, ``multi_worker_handler``)
and kgan.training.distribute.CustomLoop; kgan.cli.train turns ``TrainingInterrupted`` into one line
and exit code 128 + the signal number.
"""

import os
import signal
import sys
import threading

import keras
import tensorflow as tf
from absl import logging

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a checkpoint; rerunning continues from it.

    Attributes:
        signum: the signal number.
        step: the step reached (and checkpointed).
        checkpoint: the checkpoint prefix saved (or None).
    """

    def __init__(self, signum, step, checkpoint=None):
        self.signum, self.step, self.checkpoint = signum, step, checkpoint
        where = f"; checkpoint {checkpoint}" if checkpoint else ""
        super().__init__(f"stopped by {signal_name(signum)} at step {step}{where}. Rerun the "
                         f"same command to continue from step {step}.")

    @property
    def exit_code(self):
        return 128 + self.signum


def signal_name(signum):
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


class StopSignals:
    """While active (a ``with`` block), turns the first SIGTERM/SIGINT into a stop request and a
    second one into an immediate exit.

    Python runs signal handlers only between bytecodes of the main thread, which may be inside a
    long TensorFlow call; the signals are therefore also written to a pipe
    (``signal.set_wakeup_fd``) that a watcher thread reads at once. Outside the main thread it
    does nothing (signals cannot be caught there).

    Args:
        signals: the signals that request a stop.
        forward=None: a function called with the signal number on the first signal (e.g. to
            hand Ctrl-C to TensorFlow's preemption handler).
    """

    def __init__(self, signals=SIGNALS, forward=None):
        self.signals = tuple(signals)
        self.forward = forward
        self.requested = threading.Event()
        self.signum = None
        self._count = 0
        self._active = False

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        self._read_fd, self._write_fd = os.pipe()
        os.set_blocking(self._write_fd, False)
        self._old_wakeup = signal.set_wakeup_fd(self._write_fd, warn_on_full_buffer=False)
        self._old_handlers = {s: signal.signal(s, self._handler) for s in self.signals}
        self._thread = threading.Thread(target=self._watch, name="kgan-stop-signals",
                                        daemon=True)
        self._thread.start()
        self._active = True
        return self

    def __exit__(self, *exc):
        if not self._active:
            return False
        for signum, old in self._old_handlers.items():
            signal.signal(signum, old)
        signal.set_wakeup_fd(self._old_wakeup)
        os.close(self._write_fd)  # the watcher reads end-of-file and returns
        self._thread.join(timeout=5)
        os.close(self._read_fd)
        self._active = False
        return False

    def _handler(self, signum, frame):
        """The Python-level handler: the watcher thread has already seen the signal."""

    def _watch(self):
        while True:
            try:
                data = os.read(self._read_fd, 64)
            except OSError:
                return
            if not data:
                return
            for signum in data:
                if signum in self.signals:
                    self._received(signum)

    def _received(self, signum):
        self._count += 1
        if self._count > 1:
            sys.stderr.write(f"kgan: second {signal_name(signum)}: exiting now, without "
                             "saving (the last saved checkpoint is kept).\n")
            sys.stderr.flush()
            os._exit(128 + signum)
        self.signum = signum
        logging.warning("%s received: stopping after this step and saving a checkpoint (send "
                        "it again to exit at once).", signal_name(signum))
        self.requested.set()
        if self.forward:
            self.forward(signum)


class StopOnSignal(keras.callbacks.Callback):
    """Ends ``fit`` (or kgan's loop) after the step during which a stop was requested; the
    checkpoint saver's ``on_train_end`` then saves at that step."""

    def __init__(self, stop_signals):
        super().__init__()
        self.stop_signals = stop_signals

    def on_train_batch_end(self, batch, logs=None):
        if self.stop_signals.requested.is_set():
            self.model.stop_training = True


def multi_worker_handler(strategy, manager, step_fn):
    """TensorFlow's preemption handler for MultiWorkerMirroredStrategy, saving through
    ``manager`` and raising ``TrainingInterrupted`` instead of exiting the process.

    Args:
        strategy: the MultiWorkerMirroredStrategy.
        manager: the run's ``tf.train.CheckpointManager`` (its latest checkpoint is restored
            again by the handler, a no-op after kgan's own restore).
        step_fn: returns the current step (for the checkpoint number and the message).

    Returns:
        A ``tf.distribute.experimental.PreemptionCheckpointHandler``; call its
        ``save_checkpoint_if_preempted(checkpoint_number=step)`` after every step.
    """
    def exit_fn():
        step = step_fn()
        raise TrainingInterrupted(signal.SIGTERM, step,
                                  os.path.join(manager.directory, f"ckpt-{step}"))

    config = tf.distribute.experimental.TerminationConfig(exit_fn=exit_fn)
    return tf.distribute.experimental.PreemptionCheckpointHandler(
        strategy.cluster_resolver, manager, termination_config=config)


def forward_as_sigterm(signum):
    """Hands a Ctrl-C to TensorFlow's preemption handler, which listens for SIGTERM."""
    os.kill(os.getpid(), signal.SIGTERM)
