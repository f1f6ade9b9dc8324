"""What every kgan command does before its own work: import TensorFlow without its C++
start-up chatter, and keep other libraries' INFO log lines out of kgan's log.

TensorFlow 2.21's C++ start-up lines ("oneDNN custom operations are on", "Could not find cuda
drivers") are written before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not
hide them: TensorFlow is imported here with stderr captured and only its warnings and errors
are replayed. TensorFlow's and Keras' Python INFO lines (SavedModel signature renames listing
dozens of input names, sharding callback durations) are dropped; their warnings stay.
``KGAN_DEBUG=1`` or a user's ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything.

Called by kgan/cli/__init__.py, so every ``python -m kgan.X`` shim (which imports kgan.cli.X
first) starts quietly.
"""

import logging
import os
import sys
import tempfile

_INFO_PREFIXES = ("I0000 ", "WARNING: All log messages before absl::InitializeLog()")
_done = []


def _verbose():
    return bool(os.environ.get("KGAN_DEBUG")) or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0"


def import_tensorflow_quietly():
    """Imports TensorFlow and Keras with stderr captured; replays non-INFO lines."""
    if "tensorflow" in sys.modules or _verbose():
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


class _KganInfoOnly(logging.Filter):
    """Passes warnings and errors from everyone, INFO and below only from kgan's modules."""

    def filter(self, record):
        return (record.levelno >= logging.WARNING
                or f"{os.sep}kgan{os.sep}" in (record.pathname or ""))


def quiet_startup():
    """Runs once per process: the quiet TensorFlow import and the log filter."""
    if _done:
        return
    _done.append(True)
    # Hide TensorFlow's C++ INFO lines (SavedModel loader and TFLite converter chatter); its
    # warnings and errors still show. A value the user set wins.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import_tensorflow_quietly()
    if not _verbose():
        import warnings

        # Generators saved by kgan before 0.1.1 wrap their input in a list; calling them with
        # a tensor is right and Keras warns on every call.
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        from absl import logging as absl_logging

        absl_logging.get_absl_handler().addFilter(_KganInfoOnly())
