"""A translator that runs in a child process and is restarted when its memory grows: long
translate jobs over images of many sizes keep a bounded footprint.

Why a process: TensorFlow's oneDNN build caches its convolution primitives per input shape, in
a per-thread cache of 1,024 entries that no setting shrinks (``ONEDNN_PRIMITIVE_CACHE_CAPACITY``,
``TF_ONEDNN_USE_SYSTEM_ALLOCATOR`` and malloc tuning were measured and change nothing), and
each entry keeps memory in proportion to the image: a resnet_9blocks generator grew ~15 MiB per
new 256² shape and ~54 MiB per new 512² shape, so a folder of web photos of assorted sizes
would take the machine's memory. Only ending the process gives that memory back, so the
translator lives in a child that is replaced (the model reloaded, a few seconds) once its
resident memory has grown ``max_growth_mib`` over what it held after its first call.

A child killed mid-call (the kernel's OOM killer) is replaced too, and the call raises
``MemoryError``, which kgan.serving.inference answers by retrying the image in tiles.

``kgan.serving.loading.load_model(path, max_memory_growth_mib=N)`` builds one (the translate
and demo commands pass their ``--max_memory_growth_mib``); it behaves as the translator it
wraps: ``translator(images)`` maps uint8 (N, H, W, 3) to uint8, ``translator.close()`` ends
the child.
"""

import multiprocessing
import signal

import numpy as np

from kgan.core import errors
from kgan.core.measure import current_rss_gib

# The attributes kgan.serving.inference and the CLIs read from a translator.
ATTRIBUTES = ("fixed_size", "pixel_limit", "multiple", "precision")


class WorkerDiedError(errors.KganError, RuntimeError):
    """The worker process died while loading the model."""


def _rss_mib():
    """This process's resident memory in MiB (0.0 off Linux: the worker is then never
    replaced for growth)."""
    return (current_rss_gib() or 0.0) * 1024


def _error_reply(error):
    """A picklable ``("error", kind, message)`` for an exception raised in the child."""
    import tensorflow as tf

    if isinstance(error, (MemoryError, tf.errors.ResourceExhaustedError)):
        kind = "memory"
    elif isinstance(error, tf.errors.OpError):
        kind = "op"
    elif isinstance(error, errors.KganError):
        kind = type(error).__name__
    elif isinstance(error, ValueError):
        kind = "value"
    else:
        kind = "other"
    return ("error", kind, str(error) or repr(error))


def _send(connection, reply):
    """Sends ``reply`` to the parent; False when it has gone (killed, Ctrl-C)."""
    try:
        connection.send(reply)
        return True
    except OSError:  # BrokenPipeError, ConnectionResetError
        return False


def _serve(connection, factory, args):
    """The child: builds the translator, then answers batches until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        translator = factory(*args)
        reply = ("ready", {name: getattr(translator, name, None) for name in ATTRIBUTES})
    except Exception as error:  # noqa: BLE001 - every failure goes back as one line
        translator, reply = None, _error_reply(error)
    if not _send(connection, reply) or translator is None:
        return
    while True:
        try:
            images = connection.recv()
        except (EOFError, OSError):
            return
        if images is None:
            return
        try:
            if isinstance(images, tuple):  # ("float", images): translate_float
                outputs = translator.translate_float(images[1])
            else:
                outputs = translator(images)
            reply = ("ok", np.asarray(outputs), _rss_mib())
        except Exception as error:  # noqa: BLE001
            reply = _error_reply(error)
        if not _send(connection, reply):
            return


def _raise(kind, message):
    """Re-raises in the parent an error the child reported."""
    import tensorflow as tf

    if kind == "memory":
        raise MemoryError(message)
    if kind == "op":
        raise tf.errors.InternalError(None, None, message)
    error_class = getattr(errors, kind, None)
    if isinstance(error_class, type) and issubclass(error_class, errors.KganError):
        raise error_class(message)
    if kind == "value":
        raise ValueError(message)
    raise RuntimeError(message)


class WorkerTranslator:
    """uint8 (N, H, W, 3) -> uint8 through ``factory(*args)`` built in a child process, which
    is replaced when its memory has grown ``max_growth_mib``.

    Args:
        factory: a picklable callable returning a translator (kgan.serving.loading passes its
            in-process loader).
        args: its arguments (picklable).
        max_growth_mib: growth of the child's resident memory, over what it held after its
            first call, that makes the next call start a fresh child.
        log: called with one line when a child is replaced.

    Attributes:
        restarts: how many times a child was replaced.
        fixed_size, pixel_limit, multiple, precision: the child translator's.
    """

    def __init__(self, factory, args=(), max_growth_mib=2048, log=None):
        self.factory, self.args = factory, tuple(args)
        self.max_growth_mib = max_growth_mib
        self.log = log or (lambda message: None)
        self.restarts = 0
        self.process = self.connection = None
        self._start()

    def _start(self):
        context = multiprocessing.get_context("spawn")  # no fork of a live TensorFlow
        self.connection, child_end = context.Pipe()
        self.process = context.Process(target=_serve, args=(child_end, self.factory, self.args),
                                       daemon=True)
        self.process.start()
        child_end.close()
        try:
            reply = self.connection.recv()
        except EOFError:
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._stop()
            raise WorkerDiedError("The translate worker process exited while loading the model "
                                  f"(exit code {code}; out of memory?); rerun with "
                                  "--max_memory_growth_mib=0 to load it in this process.") \
                from None
        if reply[0] == "error":
            self._stop()
            _raise(*reply[1:])
        for name, value in reply[1].items():
            setattr(self, name, value)
        self.baseline_mib = None

    def _stop(self):
        if self.connection is not None:
            try:
                self.connection.send(None)
            except (OSError, ValueError):
                pass
            self.connection.close()
        if self.process is not None:
            self.process.join(timeout=10)
            if self.process.is_alive():
                self.process.kill()
                self.process.join()
        self.process = self.connection = None

    def _restart(self, reason):
        self.log(f"Restarting the translate worker: {reason}.")
        self._stop()
        self.restarts += 1
        self._start()

    def __call__(self, images):
        return self._request(np.ascontiguousarray(images, np.uint8), False)

    def translate_float(self, images):
        """The child translator's ``translate_float``: float32 output in [-1, 1]."""
        return self._request(np.ascontiguousarray(images, np.uint8), True)

    def _request(self, images, as_float):
        if self.process is None or not self.process.is_alive():
            self._restart("it had exited")
        try:
            self.connection.send(("float", images) if as_float else images)
            reply = self.connection.recv()
        except (EOFError, OSError):
            self.process.join(timeout=5)
            code = self.process.exitcode
            self._restart(f"it died translating a {images.shape[1]}x{images.shape[2]} batch "
                          f"(exit code {code}; out of memory?)")
            raise MemoryError(f"The translate worker died on a {images.shape[1]}x"
                              f"{images.shape[2]} batch (exit code {code}).") from None
        if reply[0] == "error":
            _raise(*reply[1:])
        _, outputs, child_mib = reply
        if self.baseline_mib is None:
            self.baseline_mib = child_mib
        elif child_mib - self.baseline_mib > self.max_growth_mib:
            self._restart(f"its memory grew {child_mib - self.baseline_mib:.0f} MiB "
                          f"(more than {self.max_growth_mib} MiB) over "
                          f"{self.baseline_mib:.0f} MiB")
        return outputs

    def close(self):
        """Ends the child process."""
        self._stop()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self._stop()
        except Exception:  # noqa: BLE001 - interpreter shutdown
            pass
