"""What a training run folder holds and how it is read and written.

A run folder (``kgan.train --output_dir``) looks like::

    RUN/
      flags.cfg                 the effective flags (``--flagfile=RUN/flags.cfg`` reruns it)
      checkpoints/              tf.train.CheckpointManager files (cycle_gan, pix2pix)
      logs/                     TensorBoard event files
      generators/<name>.keras   the trained generators: AtoB/BtoA (CycleGAN) or generator
      samples.png               an image grid of the last sample batch
      <phase>/                  restoration phases: checkpoints/, logs/, generator.weights.h5,
                                critic.weights.h5 (pretrain_g, pretrain_d, gan)
      evaluation.json           restoration/colourisation: the held-out metrics

Called by the recipes (saving), kgan.serving.translators and kgan.exporting.export (finding and
loading generators) and the CLIs. Depends on Keras only.
"""

import glob
import os

import keras
from absl import logging

import kgan.models.layers  # noqa: F401  (registers the custom layers for load_model)
from kgan.core.atomic import atomic_path
from kgan.core.errors import ModelFileError, ModelNotFoundError

GENERATORS_DIR = "generators"
FLAGFILE = "flags.cfg"


def read_flags(folder):
    """The flags a run's ``flags.cfg`` holds (kgan.train writes it; kgan.export copies it into
    exports): the one reader of that file.

    Args:
        folder: a run folder, an export folder, or the flagfile itself.

    Returns:
        ``{name: text}`` in file order: ``--name=value`` gives ``"value"``; a bare ``--name``
        gives None (a boolean set; ``--noname`` comes as ``noname``). Comment lines are
        skipped. ``{}`` when there is no flagfile.
    """
    path = folder if os.path.isfile(folder) else os.path.join(folder, FLAGFILE)
    values = {}
    if not os.path.isfile(path):
        return values
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if not line.startswith("--"):
                continue
            name, sep, text = line[2:].partition("=")
            values[name] = text if sep else None
    return values


def find_generators(run_dir):
    """Returns ``{name: path}`` of the generators a training run saved
    (``RUN/generators/<name>.keras``).

    Raises:
        ModelFileError: when ``run_dir`` is missing or holds no generators.
    """
    if not os.path.isdir(run_dir):
        raise ModelNotFoundError(f"--checkpoint_dir {run_dir} does not exist; pass the "
                             "--output_dir of a training run.")
    paths = sorted(glob.glob(os.path.join(run_dir, GENERATORS_DIR, "*.keras")))
    if not paths:
        raise ModelNotFoundError(
            f"No generators found in {run_dir}: expected "
            f"{os.path.join(run_dir, GENERATORS_DIR, '<name>.keras')} (AtoB.keras and "
            "BtoA.keras for CycleGAN, generator.keras otherwise). If the run was interrupted, "
            "rerun its training command (it resumes from the latest checkpoint and saves the "
            "generators at the end), or point --checkpoint_dir at the run's --output_dir.")
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths}


def generator_path(run_dir, direction=None):
    """The ``.keras`` file of one generator of a run.

    Args:
        run_dir: the run folder.
        direction: ``AtoB``, ``BtoA`` or ``generator``; default the only one, else ``AtoB``.

    Returns:
        The file path.
    """
    generators = find_generators(run_dir)
    if direction is None:
        direction = next(iter(generators)) if len(generators) == 1 else "AtoB"
    if direction not in generators:
        raise ModelFileError(f"--direction={direction} has no generator in {run_dir}; "
                             f"use one of {', '.join(generators)}.")
    return generators[direction]


def load_generator(path):
    """Loads a ``.keras`` generator with ``safe_mode=True`` (no Lambda layers, no pickled code,
    only registered classes), so a ``.keras`` file from someone else runs no code of theirs.

    Raises:
        ModelFileError: one line naming the file and the reason.
    """
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"{path}: no such file; pass a .keras generator saved by kgan "
                                 "(RUN/generators/<name>.keras).")
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - one clear message instead of a deep trace
        raise ModelFileError(f"Could not load the generator {path}: "
                             f"{_load_failure_reason(error)}") from error


def _load_failure_reason(error):
    """Why a ``.keras`` file did not load, in words that say what kgan refuses and why."""
    text = " ".join(str(error).split()) or type(error).__name__
    if "Lambda" in text and "safe_mode" in text:
        return ("it contains a Lambda layer (Python code), and kgan loads model files with "
                "safe_mode=True so that a file never runs code. Rebuild it from kgan's layers; "
                "if you wrote it yourself, re-save it without the Lambda.")
    if "could not be deserialized" in text or "Could not locate" in text or "Unknown" in text:
        return ("it names a layer or class kgan does not provide (safe_mode=True loads only "
                "registered classes): " + text.split(". ")[0] + ".")
    return text.split(". ")[0].rstrip(".") + "."


def save_generators(generators, run_dir):
    """Saves each generator as ``run_dir/generators/<name>.keras`` (written to a temporary name
    and renamed, so a kill never leaves a truncated model file; a full disk removes the
    temporary file and raises ``kgan.core.atomic.DiskFullError``, the previous file intact).

    Returns:
        ``{name: path}``.
    """
    folder = os.path.join(run_dir, GENERATORS_DIR)
    paths = {}
    for name, model in generators.items():
        paths[name] = os.path.join(folder, name + ".keras")
        with atomic_path(paths[name], f"the generator {name}") as partial:
            model.save(partial)
    logging.info("Saved generators: %s", ", ".join(paths.values()))
    return paths


def weights_path(phase_dir, name):
    """``phase_dir/<name>.weights.h5``: the weights a restoration phase hands to the next."""
    return os.path.join(phase_dir, name + ".weights.h5")


def save_phase_weights(model, phase_dir, name):
    """Saves ``model``'s weights as ``phase_dir/<name>.weights.h5`` atomically."""
    path = weights_path(phase_dir, name)
    with atomic_path(path, f"the {name} weights") as partial:
        model.save_weights(partial)
    return path


def load_phase_weights(model, phase_dir, name, previous_phase):
    """Loads the weights a previous phase saved, with a clear error when they are missing."""
    path = weights_path(phase_dir, name)
    if not os.path.exists(path):
        raise ModelNotFoundError(
            f"{path} not found: run --phase={previous_phase} first (or --phase=nogan, which "
            "runs every phase in order) with the same --output_dir.")
    model.load_weights(path)
    logging.info("Loaded %s from %s", name, path)
