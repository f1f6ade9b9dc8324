"""THE model loader: ``load_model(path)`` turns anything kgan writes into a translator.

``path`` may be a SavedModel export folder (``kgan.export`` / ``kgan.convert`` output), a
SavedModel version folder, a CycleGAN export folder holding ``AtoB/`` and ``BtoA/``, a
``.keras`` generator, a ``.tflite`` file or a training run folder (``RUN/generators/*.keras``).
A translator is a callable ``uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)`` (kgan.serving.translators)
with ``fixed_size``, ``pixel_limit``, ``multiple`` and ``precision`` attributes; a Keras-backed
one also has ``model``.

Used by the translate, colorize, evaluate and demo commands and by the worker process
(kgan.serving.worker), which calls it in the child. ``.keras`` files are read by
``kgan.serving.runs.load_generator`` (safe_mode=True), the one ``.keras`` reader.
"""

import os

from kgan.core.errors import ModelFileError, ModelNotFoundError, UsageError
from kgan.serving import exports, runs
from kgan.serving.precision import check_precision
from kgan.serving.translators import (
    KerasTranslator,
    SavedModelTranslator,
    TFLiteTranslator,
)
from kgan.serving.worker import WorkerTranslator


def _is_run_folder(path):
    return os.path.isdir(os.path.join(path, runs.GENERATORS_DIR))


def _export_of(path, direction):
    """The single export behind ``path`` for ``direction`` (None: ``path`` must hold one)."""
    if direction is None:
        return exports.resolve_saved_model(path)
    found = exports.find_exports(path)
    if direction not in found:
        raise ModelFileError(f"--direction={direction} has no export in {path}; use one of "
                             f"{', '.join(found)}.")
    return found[direction]


def _keras_translator(path, precision):
    return KerasTranslator(runs.load_generator(path), precision)


def _load_in_process(path, direction, precision):
    if path.endswith(".keras"):
        return _keras_translator(path, precision)  # load_generator names a missing file
    if path.endswith(".tflite"):
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"--model {path} does not exist.")
        if precision != "float32":
            raise UsageError(f"--precision={precision} does not apply to a .tflite file (its "
                             "precision is fixed at conversion: float32, float16 or int8 "
                             "variants); pass the export directory or the .keras generator.")
        return TFLiteTranslator(path)
    if _is_run_folder(path):
        return _keras_translator(runs.generator_path(path, direction), precision)
    export = _export_of(path, direction)
    if export.endswith(".tflite"):
        return _load_in_process(export, None, precision)
    if precision == "bfloat16":
        source = exports.keras_source(export)
        if source is None:
            raise UsageError(f"--precision=bfloat16: the SavedModel {export} holds a float32 "
                             "graph and its manifest names no .keras generator to rebuild in "
                             "bfloat16; pass the .keras file (--model=RUN/generators/NAME.keras) "
                             "or --checkpoint_dir=RUN instead.")
        return _keras_translator(source, "bfloat16")
    return SavedModelTranslator(export)


def load_model(path, direction=None, precision="float32", max_memory_growth_mib=0, log=None):
    """Loads a generator as a translator.

    Args:
        path: an export folder, SavedModel folder, CycleGAN export folder, ``.keras`` file,
            ``.tflite`` file or training run folder.
        direction: which generator of a CycleGAN run or export: ``AtoB``, ``BtoA`` or
            ``generator``; default the only one (a run with both: ``AtoB``).
        precision: ``float32`` or ``bfloat16`` compute. bfloat16 from a SavedModel export runs
            the ``.keras`` generator it was exported from; a ``.tflite`` file has its own fixed
            precision, so only float32 applies to it.
        max_memory_growth_mib: above 0, the translator runs in a worker process replaced once
            its memory has grown this much (kgan.serving.worker); ``.tflite`` files always run
            here (one fixed shape).
        log: called with one line when a worker is replaced.

    Returns:
        A translator: ``uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)``.

    Raises:
        ModelNotFoundError: ``path`` does not exist or holds no model.
        ModelFileError: the file is not a model kgan can load (the message says why).

    Example:

    >>> import numpy as np
    >>> from kgan.models import build_generator
    >>> from kgan.serving import runs
    >>> _ = runs.save_generators({"generator": build_generator("resnet_6blocks", ngf=8)}, "run")
    >>> translator = load_model("run")  # or "run/generators/generator.keras", an export, ...
    >>> translator(np.zeros((1, 60, 90, 3), np.uint8)).shape
    (1, 60, 90, 3)
    """
    if not path:
        raise UsageError("Pass a model: an export folder, a .keras or .tflite file, or a run "
                         "folder.")
    precision = check_precision(precision)
    if not os.path.exists(path) and not path.endswith((".keras", ".tflite")):
        raise ModelNotFoundError(f"--model {path} does not exist; pass an export directory "
                                 "(python -m kgan.export --output_dir), a .tflite or a .keras "
                                 "file, or a training run folder.")
    if max_memory_growth_mib and max_memory_growth_mib > 0 and not path.endswith(".tflite"):
        return WorkerTranslator(_load_in_process, (path, direction, precision),
                                max_memory_growth_mib, log=log)
    return _load_in_process(path, direction, precision)
