"""What an export folder holds and how it is found and read (kgan.exporting writes them).

An export folder (``kgan.export --output_dir`` / ``kgan.convert --output_dir``) looks like::

    EXPORT/
      1/                    SavedModel, version 1 (TF Serving's model_base_path is EXPORT)
      *.tflite              fixed-size TFLite variants
      model.onnx            with --onnx
      manifest.json         input contract, signatures, measured errors, source, versions

and a CycleGAN export holds one such folder per direction (``EXPORT/AtoB/``, ``EXPORT/BtoA/``).
This module is the one reader of that layout: ``read_manifest``, ``resolve_saved_model``,
``find_exports`` (the directions behind a path), ``keras_source`` (the ``.keras`` generator
an export was made from) and ``pipeline`` (whose pre/post-processing a colouriser runs with). Called by kgan.serving.loading, kgan.serving.translators, the demo
page and kgan.exporting (file names).
"""

import json
import os

from kgan.core.errors import ModelNotFoundError

MANIFEST = "manifest.json"
SAVED_MODEL_VERSION = "1"
DIRECTIONS = ("AtoB", "BtoA", "generator")
DEOLDIFY_PIPELINE = "deoldify"  # manifest["pipeline"] of an exported DeOldify colouriser


def read_manifest(path):
    """The ``manifest.json`` of an export.

    Args:
        path: an export folder, a SavedModel version folder inside one (``EXPORT/1``) or a
            ``.tflite`` file in one.

    Returns:
        The manifest as a dict; ``{}`` when there is none.
    """
    folder = os.path.dirname(path) if os.path.isfile(path) else path
    for candidate in (folder, os.path.dirname(os.path.normpath(folder))):
        manifest = os.path.join(candidate, MANIFEST)
        if os.path.isfile(manifest):
            with open(manifest, encoding="utf-8") as handle:
                return json.load(handle)
    return {}


def is_saved_model(path):
    return os.path.isfile(os.path.join(path, "saved_model.pb"))


def resolve_saved_model(path):
    """Returns the SavedModel directory for ``path``: itself when it holds ``saved_model.pb``,
    else its highest numeric version sub-directory (TF Serving layout).

    Raises:
        ModelNotFoundError: with a hint when ``path`` is not an export.
    """
    if is_saved_model(path):
        return path
    if not os.path.isdir(path):
        raise ModelNotFoundError(f"--model {path} does not exist; pass an export directory "
                                 "(python -m kgan.export --output_dir), a .tflite or a .keras "
                                 "file.")
    versions = sorted(int(name) for name in os.listdir(path)
                      if name.isdigit() and is_saved_model(os.path.join(path, name)))
    if versions:
        return os.path.join(path, str(versions[-1]))
    exports = sorted(name for name in os.listdir(path)
                     if is_saved_model(os.path.join(path, name, SAVED_MODEL_VERSION)))
    if exports:
        raise ModelNotFoundError(f"{path} holds several exports ({', '.join(exports)}); pass "
                                 f"one of them, e.g. --model={os.path.join(path, exports[0])}.")
    raise ModelNotFoundError(f"{path} is not a SavedModel export (no saved_model.pb); export "
                             "with python -m kgan.export or pass a .tflite or .keras file.")


def find_exports(path):
    """The exports behind a path: ``{direction: export path}``.

    A ``.tflite`` file or a SavedModel export is one generator; a folder holding ``AtoB/``
    and/or ``BtoA/`` exports (what kgan.export writes for CycleGAN) gives each of them.

    Raises:
        ModelNotFoundError: the path is missing or holds no export.
    """
    if path.endswith(".tflite"):
        if not os.path.isfile(path):
            raise ModelNotFoundError(f"--model={path}: no such .tflite file.")
        return {"generator": path}
    if not os.path.isdir(path):
        raise ModelNotFoundError(f"--model={path} does not exist; pass an export folder "
                                 "(python -m kgan.export --output_dir=...) or a .tflite file.")
    directions = {d: os.path.join(path, d) for d in DIRECTIONS
                  if os.path.isfile(os.path.join(path, d, MANIFEST))}
    if directions:
        return directions
    if (os.path.isfile(os.path.join(path, MANIFEST)) or is_saved_model(path)
            or any(name.isdigit() for name in os.listdir(path))):
        return {"generator": path}
    raise ModelNotFoundError(f"--model={path} holds no kgan export (manifest.json, a "
                             "SavedModel, or AtoB/ and BtoA/ exports).")


def keras_source(export_path):
    """The ``.keras`` generator an export was made from (its manifest's ``source.checkpoint``),
    or None when the manifest does not name one that exists."""
    source = read_manifest(resolve_saved_model(export_path)).get("source") or {}
    path = source.get("checkpoint")
    if path and path.endswith(".keras") and os.path.isfile(path):
        return path
    return None


def pipeline(path):
    """``"deoldify"`` when the export behind ``path`` (a folder, a SavedModel in one or a
    ``.tflite`` file in one) is a DeOldify colouriser (its manifest's ``pipeline``), else
    ``"kgan"``: which pre/post-processing kgan.colorization runs it with."""
    return read_manifest(path).get("pipeline") or "kgan"
