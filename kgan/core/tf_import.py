"""Importing TensorFlow without its C++ start-up chatter. TensorFlow 2.21's start-up lines
("oneDNN custom operations are on", "Could not find cuda drivers") are written before absl
logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not hide them: TensorFlow is imported here
with stderr captured and only its warnings and errors are replayed. ``KGAN_DEBUG=1`` or a user's
``TF_CPP_MIN_LOG_LEVEL=0`` shows everything.

Called by ``kgan/__init__.py`` (so ``import kgan`` and every ``python -m kgan.X`` start
quietly) and kgan.cli.startup; ``native_lines_dropped`` by the TFLite converter and runner
(kgan.exporting.tflite, kgan.serving.translators) for their known C++ notices. Imports TensorFlow only inside the function, and does nothing
where TensorFlow is not installed.
"""

import contextlib
import os
import sys
import tempfile

_INFO_PREFIXES = ("I0000 ", "WARNING: All log messages before absl::InitializeLog()")


def verbose():
    """Whether the user asked for everything (``KGAN_DEBUG=1`` or ``TF_CPP_MIN_LOG_LEVEL=0``)."""
    return bool(os.environ.get("KGAN_DEBUG")) or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


def import_tensorflow_quietly():
    """Imports TensorFlow and Keras with stderr captured; replays non-INFO lines. Sets
    ``TF_CPP_MIN_LOG_LEVEL=1`` first unless the user set it (TensorFlow's later C++ INFO lines,
    SavedModel loader and TFLite converter chatter, are hidden; its warnings still show)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    if "tensorflow" in sys.modules or verbose():
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr: import as is
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow

            # Device discovery prints its own line (cuInit) on a machine without a GPU driver.
            tensorflow.config.list_physical_devices()
        except ImportError:
            pass
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        no_driver = not os.path.exists("/proc/driver/nvidia")
        for line in captured.read().decode(errors="replace").splitlines():
            if not line.strip() or line.startswith(_INFO_PREFIXES):
                continue
            if no_driver and "failed call to cuInit" in line:
                continue  # no NVIDIA driver on this machine: TensorFlow runs on the CPU
            print(line, file=sys.stderr)


@contextlib.contextmanager
def native_lines_dropped(*substrings):
    """Runs the block with the process's stderr (fd 2, where TensorFlow's and LiteRT's C++
    code write) captured, then replays every line but those containing one of ``substrings``:
    known notices such as the TFLite converter's "Ignored output_format". Shows everything
    under ``KGAN_DEBUG=1`` or a user's ``TF_CPP_MIN_LOG_LEVEL=0``.
    """
    if verbose():
        yield
        return
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real stderr
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            for line in captured.read().decode(errors="replace").splitlines():
                if line.strip() and not any(s in line for s in substrings):
                    print(line, file=sys.stderr)
