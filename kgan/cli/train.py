"""``python -m kgan.train --flagfile=configs/X.cfg``: trains CycleGAN, pix2pix or the NoGAN
restoration pipeline, with TensorBoard logs, checkpoints and automatic resume.

Rerunning the same command on the same ``--output_dir`` resumes from the latest checkpoint:
same step count, same learning-rate schedule position. Flags given on the command line override
the flagfile; the effective flags are written to ``OUTPUT_DIR/flags.cfg``. SIGTERM or Ctrl-C
saves a checkpoint at the step reached and exits with 128 + the signal number (a second Ctrl-C
exits at once); a second run on the same ``--output_dir`` refuses to start.
"""

import dataclasses
import os
import shutil
import sys

from kgan.cli.common import run_cli
from kgan.cli.flags import ALIASES, FLAG_GROUPS, define_flags
from kgan.core.atomic import write_text
from kgan.recipes import FIELD_NAMES, TrainConfig, setup, train, with_model_defaults
from kgan.serving import runs
from kgan.training import distribute
from kgan.training.preemption import TrainingInterrupted
from kgan.training.run_lock import RunLock

FLAGS_MODULE = "kgan.cli.flags"


def config_from_flags(flag_values):
    """The ``TrainConfig`` of parsed flags, with per-model defaults for the flags not given.

    Args:
        flag_values: parsed absl FlagValues holding kgan.cli.flags' definitions.
    """
    values = {name: flag_values[name].value for name in FIELD_NAMES}
    values["weights_gen"] = tuple(float(w) for w in values["weights_gen"])
    values["degradations"] = tuple(values["degradations"])
    explicit = {name for name in FIELD_NAMES if flag_values[name].present}
    for alias, name in ALIASES:
        if flag_values[alias].present:
            explicit.add(name)
    return with_model_defaults(TrainConfig(**values), explicit)


def flagfile_lines(config):
    """``--name=value`` lines (sorted) that reproduce ``config`` with ``--flagfile``."""
    lines = []
    for name in FIELD_NAMES:
        value = getattr(config, name)
        if value is None:
            continue
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        elif isinstance(value, (list, tuple)):
            lines.append(f"--{name}=" + ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                                                 for v in value))
        else:
            lines.append(f"--{name}={value}")
    return sorted(lines)


def write_flagfile(path, config):
    """Writes the flagfile of ``config`` atomically."""
    write_text(path, "\n".join(flagfile_lines(config)) + "\n", "the flagfile")


def predates_residual_option(run_dir):
    """True when ``run_dir/flags.cfg`` was written by kgan before cycle_gan and pix2pix honoured
    ``--residual`` (it then wrote ``--residual`` for every model and had no ``--lambda_gan``)."""
    flags_cfg = runs.read_flags(run_dir)
    return "residual" in flags_cfg and flags_cfg["residual"] is None \
        and "lambda_gan" not in flags_cfg


def for_this_output(config, stream=None):
    """``config`` with Keras' progress bar (``--verbose=1``) turned into one line per epoch
    (``2``) when the output is not a terminal: a redrawn bar written to a log or a pipe is
    hundreds of kilobytes of control characters. flags.cfg keeps what the user asked for."""
    stream = stream or sys.stdout
    if config.verbose == 1 and not getattr(stream, "isatty", lambda: False)():
        return dataclasses.replace(config, verbose=2)
    return config


def run(flag_values):
    config = config_from_flags(flag_values)
    if config.model in ("cycle_gan", "pix2pix") and predates_residual_option(config.output_dir):
        # Those runs trained the reference generator; resuming must not add a global skip.
        config = dataclasses.replace(config, residual=False)
        print(f"kgan: {config.output_dir} was started before --residual applied to "
              f"{config.model}: resuming it without the residual skip, as it was trained.")
    strategy = setup(config)
    flagfile = os.path.join(config.output_dir, "flags.cfg")
    created_dir = not os.path.exists(config.output_dir)
    created_flagfile = not os.path.exists(flagfile)
    lock = RunLock(config.output_dir)
    if distribute.is_chief(strategy):  # multi-worker runs share the folder: the chief locks
        lock.acquire()
    try:
        if distribute.is_chief(strategy):
            write_flagfile(flagfile, config)
        train(for_this_output(config), strategy)
    except TrainingInterrupted as stopped:
        lock.release()
        print(f"kgan.train: {stopped}", file=sys.stderr)
        sys.exit(stopped.exit_code)
    except Exception:
        lock.release()
        # A run that failed before doing anything leaves no folder that looks like a run.
        if created_flagfile and set(os.listdir(config.output_dir)) <= {"flags.cfg"}:
            if os.path.exists(flagfile):
                os.remove(flagfile)
            if created_dir:
                shutil.rmtree(config.output_dir, ignore_errors=True)
        raise
    finally:
        lock.release()


def main(argv=None):
    run_cli("kgan.train", run, define_flags, doc=__doc__, groups=FLAG_GROUPS, argv=argv)
