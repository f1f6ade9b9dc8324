"""kgan's error base class: every error a user can cause (a bad flag, a missing or unreadable
file, missing ImageNet weights, an export that fails verification, a diverged run) derives from
``KganError``, so the CLI runner (``kgan.cli.common``) turns it into one line on stderr and exit
code 2. Each concrete error also keeps its built-in base (ValueError, FileNotFoundError,
RuntimeError), so callers that catch those keep working.

Called by every module that raises a user-facing error; imports nothing from kgan.
"""


class KganError(Exception):
    """Base class of the errors a user can cause and fix; the message names the fix."""


class UsageError(KganError, ValueError):
    """Inconsistent or invalid options (flags or keyword arguments)."""


class ModelFileError(KganError, ValueError):
    """A model file or folder that cannot be used (missing, wrong kind, unsafe to load)."""


class ModelNotFoundError(KganError, FileNotFoundError):
    """A model file, export or run folder that does not exist (or holds no model)."""


class NothingProducedError(KganError, RuntimeError):
    """A command that produced no output at all (every input skipped or failed)."""
