"""What every kgan command does before its own work: import TensorFlow without its C++
start-up chatter (kgan.core.tf_import; ``import kgan`` has done it already), and keep other
libraries' INFO log lines out of kgan's log. TensorFlow's and Keras' Python INFO lines (SavedModel signature renames listing
dozens of input names, sharding callback durations) are dropped; their warnings stay.
``KGAN_DEBUG=1`` or a user's ``TF_CPP_MIN_LOG_LEVEL=0`` shows everything.

Called by kgan/cli/__init__.py, so every ``python -m kgan.X`` shim (which imports kgan.cli.X
first) starts quietly.
"""

import logging
import os

from kgan.core.tf_import import import_tensorflow_quietly, verbose

_done = []


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
    import_tensorflow_quietly()
    if not verbose():
        import warnings

        # Generators saved by kgan before 0.1.1 wrap their input in a list; calling them with
        # a tensor is right and Keras warns on every call.
        warnings.filterwarnings("ignore", message="The structure of `inputs` doesn't match")
        from absl import logging as absl_logging

        absl_logging.get_absl_handler().addFilter(_KganInfoOnly())
        # TensorFlow's Python INFO lines (checkpoint "Sharding callback duration", SavedModel
        # signature renames) go to its own logger.
        logging.getLogger("tensorflow").setLevel(logging.WARNING)
