"""The one way every kgan command line runs: ``run_cli`` parses the flags, prints kgan's own
grouped ``--help`` (exit 0), turns user errors into one line on stderr with exit code 2, and
keeps ``KGAN_DEBUG=1`` for full tracebacks. A full disk, wherever it happens (checkpoint,
generators, export, output images), also ends in one line.

Called by each ``kgan.cli.X.main``. Example::

    def define_flags():
        flags.DEFINE_string("input", None, "Image or folder.")

    def run(flag_values):
        ...  # plain library calls

    def main(argv=None):
        run_cli("kgan.translate", run, define_flags, argv=argv)
"""

import os
import re
import sys

from absl import app, flags

from kgan.core.atomic import disk_full_message, is_disk_full
from kgan.core.errors import KganError, NothingProducedError, UsageError

FLAGS = flags.FLAGS

# Errors a user can cause; they end the command with one line, not a stack trace. ValueError
# and FileNotFoundError stay here because Keras and TensorFlow raise them for bad user input
# (a wrong file, an impossible shape) before kgan can name it.
USER_ERRORS = (KganError, ValueError, FileNotFoundError, FileExistsError, app.UsageError)
HELP_FLAGS = ("--help", "-h", "--helpshort", "-help", "-?", "--helpfull")
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C


_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_KERAS_WRAPPER = re.compile(r"Exception encountered when calling [^\n]*")


def one_line(message):
    """A user-facing error message without terminal colour codes, Keras' "Exception
    encountered when calling X.call()" wrapper and its argument dump."""
    text = _KERAS_WRAPPER.sub("", _ANSI.sub("", str(message))).strip()
    text = text.split("\n\nArguments received by")[0].strip()
    return " ".join(line.strip() for line in text.splitlines() if line.strip()) or repr(message)


def fail(prog, message):
    """Prints ``prog: error: message`` (on one line) on stderr and exits with code 2."""
    print(f"{prog}: error: {one_line(message)}", file=sys.stderr)
    sys.exit(EXIT_USAGE)


def nothing_produced(verb, skipped, input_path, output_dir=None, existed=True):
    """The error of a command that produced nothing (exit 2, not 0: scripts must notice).

    Args:
        verb: what the command does to an image, e.g. ``translated``.
        skipped: ``[(path, reason)]`` of the inputs it skipped.
        input_path: the ``--input`` given.
        output_dir, existed: the output folder, removed when the command created it and it is
            still empty.

    Returns:
        A ``NothingProducedError`` naming the first skipped file and why.
    """
    if output_dir and not existed and os.path.isdir(output_dir) and not os.listdir(output_dir):
        os.rmdir(output_dir)
    if not skipped:
        return NothingProducedError(f"nothing {verb}: {input_path} holds no images.")
    path, reason = skipped[0]
    name = os.path.basename(path)
    reason = reason.split(path + ": ", 1)[-1]  # its message starts with the path
    more = f" and {len(skipped) - 1} more" if len(skipped) > 1 else ""
    return NothingProducedError(
        f"nothing {verb}: all {len(skipped)} file(s) in {input_path} were skipped ({name}: "
        f"{' '.join(reason.split())}{more}); pass image files kgan can read.")


def _flag_line(flag):
    default = flag.default_as_str if flag.default is not None else "None"
    kind = flag.flag_type()
    text = f"  --{flag.name}"
    if kind != "bool":
        text += f"=<{kind}>"
    return f"{text}  (default: {default})\n      {flag.help}"


def format_help(prog, doc, groups):
    """kgan's ``--help`` page: the command's summary, then its flags by group.

    Args:
        prog: the command, e.g. ``kgan.train``.
        doc: the command's module docstring (its first paragraph is printed).
        groups: ``[(group title, [flag names])]``.

    Returns:
        The help text.
    """
    summary = (doc or "").strip().split("\n\n")[0]
    lines = [f"usage: python -m {prog} [--flagfile=FILE] [--flag=value ...]", "", summary, ""]
    for title, names in groups:
        if not names:
            continue
        lines.append(f"{title}:")
        lines.extend(_flag_line(FLAGS[name]) for name in names)
        lines.append("")
    lines.append("Flags given on the command line override --flagfile. KGAN_DEBUG=1 shows "
                 "tracebacks.")
    return "\n".join(lines)


def module_flag_names(module_name):
    """Names of the flags a module defined, sorted (aliases left out)."""
    return sorted(f.name for f in FLAGS.get_flags_for_module(module_name)
                  if not f.help.startswith("Alias for"))


def run_cli(prog, run, define_flags, doc=None, groups=None, argv=None):
    """Runs one command line.

    Args:
        prog: the command's name for messages, e.g. ``kgan.export``.
        run: called with the parsed FlagValues once flags are parsed; its return is ignored.
        define_flags: defines the command's flags (called once).
        doc: help summary (the CLI module's docstring).
        groups: ``[(title, [flag names])]`` for ``--help``; default: every flag the calling
            CLI module defined, in one group.
        argv: the command line (default ``sys.argv``).
    """
    argv = list(sys.argv if argv is None else argv)
    define_flags()
    if groups is None:
        module = f"kgan.cli.{prog.split('.')[-1]}"
        groups = [("flags", module_flag_names(module))]
    if any(arg in HELP_FLAGS for arg in argv[1:]):
        print(format_help(prog, doc, groups))
        sys.exit(0)
    def parse(args):
        # Parsed once, here: absl's own parser would exit 1 with a "FATAL Flags parsing error".
        try:
            return FLAGS(args)
        except flags.Error as error:
            fail(prog, f"{error} (python -m {prog} --help lists the flags)")

    def main(args):
        if len(args) > 1:
            fail(prog, f"unexpected arguments: {' '.join(args[1:])} (flags are --name=value)")
        try:
            run(FLAGS)
        except KeyboardInterrupt:
            if os.environ.get("KGAN_DEBUG"):
                raise
            # Outputs already written are complete (each is written atomically).
            print(f"{prog}: interrupted (Ctrl-C); outputs written so far are complete.",
                  file=sys.stderr)
            sys.exit(EXIT_INTERRUPTED)
        except USER_ERRORS as error:
            if os.environ.get("KGAN_DEBUG"):
                raise
            fail(prog, error)
        except Exception as error:  # noqa: BLE001 - only a full disk is turned into one line
            if os.environ.get("KGAN_DEBUG") or not is_disk_full(error):
                raise
            fail(prog, disk_full_message("its output", getattr(error, "filename", None)
                                         or "the output folder", error))

    app.run(main, argv=argv, flags_parser=parse)


def model_or_run(model, checkpoint_dir):
    """The path a command's ``--model`` / ``--checkpoint_dir`` pair names, for
    ``kgan.serving.loading.load_model``.

    Raises:
        UsageError: both or neither were given.
    """
    if bool(model) == bool(checkpoint_dir):
        raise UsageError("Pass exactly one of --model (an export, .tflite or .keras file) and "
                         "--checkpoint_dir (a training run).")
    return model or checkpoint_dir
