"""Every ``python -m kgan.X`` entry point lives here (``kgan/X.py`` is a thin shim that calls
``kgan.cli.X.main``). This package is the only place absl.flags and absl.app are imported
(with ``kgan/cli/flags.py``, the shared training flag definitions): CLIs turn flags into plain
arguments for the library."""

from kgan.cli.startup import quiet_startup

quiet_startup()
