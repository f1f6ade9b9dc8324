"""Every ``python -m kgan.X`` entry point lives here (``kgan/X.py`` is a thin shim that calls
``kgan.cli.X.main``). This package is the only place absl.flags and absl.app are imported
(with ``kgan/flags.py``, the shared training flag definitions): CLIs turn flags into plain
arguments for the library."""

import os as _os
import sys as _sys
import tempfile as _tempfile

# TensorFlow 2.21's C++ start-up lines ("oneDNN custom operations are on", "Could not find cuda
# drivers") are written before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not
# hide them. Every CLI imports TensorFlow here with stderr captured and replays only its
# warnings and errors; KGAN_DEBUG=1 or a user's TF_CPP_MIN_LOG_LEVEL=0 shows everything.
_INFO_PREFIXES = ("I0000 ", "WARNING: All log messages before absl::InitializeLog()")


def _import_tensorflow_quietly():
    if _os.environ.get("KGAN_DEBUG") or _os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        import tensorflow  # noqa: F401
        return
    try:
        _sys.stderr.flush()
        saved = _os.dup(2)
    except (OSError, ValueError):  # no real stderr (e.g. embedded): import as is
        import tensorflow  # noqa: F401
        return
    with _tempfile.TemporaryFile(mode="w+b") as captured:
        _os.dup2(captured.fileno(), 2)
        try:
            import keras  # noqa: F401
            import tensorflow  # noqa: F401
        finally:
            _os.dup2(saved, 2)
            _os.close(saved)
        captured.seek(0)
        for line in captured.read().decode(errors="replace").splitlines():
            if line.strip() and not line.startswith(_INFO_PREFIXES):
                print(line, file=_sys.stderr)


_import_tensorflow_quietly()
