"""Exports a generator to an export folder: SavedModel (kgan.exporting.saved_model, for TF
Serving), TFLite files (kgan.exporting.tflite) and ONNX (kgan.exporting.onnx), each verified
numerically (kgan.exporting.verify) before the export is declared done.

An export directory looks like::

    EXPORT_DIR/
      1/                    SavedModel, version 1 (TF Serving's model_base_path is EXPORT_DIR)
      float32.tflite        fixed-size (tflite_size x tflite_size) TFLite variants
      float16.tflite
      dynamic.tflite
      int8.tflite           only when "int8" is asked
      manifest.json         input contract, signatures, file sizes, measured errors, versions

An export is written into a hidden folder beside ``EXPORT_DIR``, verified there, and only then
renamed into place (an existing export is replaced only after that, with ``overwrite``), so a
failed or killed export never leaves a folder that kgan.translate or TF Serving would load, and
never destroys the previous good export.

Called by kgan.cli.export (``python -m kgan.export``), kgan.recipes (``--export_dir``) and
kgan.cli.convert.
"""

import os
import re
import shutil
import socket
import sys
import tempfile
import time

import keras
import tensorflow as tf
from absl import logging

import kgan
from kgan.colorization.colorizer import render_factor_for_eval_size
from kgan.core.atomic import follow_umask, process_exists, write_json
from kgan.core.errors import UsageError
from kgan.exporting.colorize_signature import verify_colorize_signature
from kgan.exporting.saved_model import export_saved_model
from kgan.exporting.tflite import (
    DEFAULT_TFLITE,
    convert_tflite,
    input_contract,
    litert_version,
    parse_variants,
)
from kgan.exporting.verify import (
    ERROR_BOUNDS,
    check_images,
    sample_images,
    verify_saved_model,
    verify_tflite,
)
from kgan.models import size_multiple
from kgan.models.deoldify import is_deoldify_model
from kgan.serving import runs
from kgan.serving.exports import DEOLDIFY_PIPELINE, MANIFEST, SAVED_MODEL_VERSION
from kgan.serving.precision import computes_in_float32, with_precision
from kgan.serving.tiling import whole_image_pixel_limit

__all__ = ["export_generator", "export_run"]

# Variants whose file is kept, labelled unverified (manifest and one log line), when it misses
# its bound: full-integer int8 with instance or batch norm can stay a few dB above a constant
# image (kgan.exporting.verify.ERROR_BOUNDS). Every other file off its bound fails the export.
SOFT_VARIANTS = ("int8",)


def _directory_size(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def export_generator(model, export_dir, tflite=DEFAULT_TFLITE, tflite_size=256,
                     representative_images=None, verify_images=None, bounds=None,
                     overwrite=False, verify=True, source=None, onnx=False, render_factor=None):
    """Exports one generator: SavedModel (three signatures), TFLite variants, manifest.json
    (and ``model.onnx`` with ``onnx=True``).

    Args:
        model: a kgan generator (``keras.Model``, float32 [-1, 1] in and out); one built
            under ``mixed_bfloat16``/``mixed_float16`` is exported computing in float32.
        export_dir: the directory to write (see the module docstring for its layout).
        tflite: TFLite variants, a sequence or comma-separated string out of ``float32``,
            ``float16``, ``dynamic`` and ``int8``; empty for none.
        tflite_size: the square TFLite input size; a multiple of the network's size multiple.
        representative_images: uint8 (H, W, 3) images calibrating ``int8`` (default
            ``sample_images("train")``; pass images of your domain for a better int8 model).
        verify_images: uint8 (H, W, 3) images the verification runs on (default
            ``sample_images("test")``: two held-out real photos at odd sizes).
        bounds: overrides of ``ERROR_BOUNDS`` entries, e.g.
            ``{"int8": {"min_psnr_db": 25, "min_margin_db": 6}}``.
        overwrite: replace an existing non-empty ``export_dir``.
        verify: verify every file (turn off only when verifying separately).
        source: optional dict recorded in the manifest (where the model came from).
        onnx: also write ``model.onnx`` (``kgan.exporting.onnx``, needs the ``onnx`` extra),
            verified like the TFLite files; its entry goes to ``manifest["onnx"]``.
        render_factor: a colourisation model's recommended render factor (the one it was
            scored at in training; DeOldify's 35 photos, 21 video), recorded as
            ``manifest["render_factor"]`` for ``kgan.colorize``, ``kgan.evaluate`` and the demo
            when the user gives none. A DeOldify colouriser (``is_deoldify_model``) also gets
            ``manifest["pipeline"] = "deoldify"``: kgan.colorize runs it with DeOldify's pre-
            and post-processing (kgan.colorization.deoldify_pipeline).

    Returns:
        The manifest dict (also written to ``export_dir/manifest.json``).

    Raises:
        ExportVerificationError: when a file does not reproduce the model.

    Example:

    >>> from kgan.models import build_generator
    >>> manifest = export_generator(build_generator("resnet_6blocks", ngf=8), "export",
    ...                             tflite=["float32"], tflite_size=64)
    >>> sorted(manifest["signatures"])
    ['serving_default', 'translate_bytes', 'translate_uint8']
    >>> sorted(os.listdir("export"))
    ['1', 'float32.tflite', 'manifest.json']
    """
    variants = parse_variants(tflite)
    if not computes_in_float32(model):
        # Trained under mixed_bfloat16/float16: the export is a float32 graph of the same
        # weights (exact to verify, what TFLite and Serving expect); bf16 inference stays a
        # choice at translate time (--precision=bfloat16 rebuilds it from the .keras source).
        model = with_precision(model, "float32")
    multiple = size_multiple(model)
    if variants and (tflite_size < multiple or tflite_size % multiple):
        fit = max(multiple, tflite_size // multiple * multiple)
        raise UsageError(f"tflite_size={tflite_size} is not a multiple of {multiple}, which "
                         f"{model.name} needs; use e.g. {fit}.")
    bounds = {**ERROR_BOUNDS, **(bounds or {})}
    if onnx:
        from kgan.exporting import onnx as onnx_export
        onnx_export.require()  # fail before the long export when the extra is missing
    # Absolute: the SavedModel check runs in a fresh process with another working directory.
    final_dir = os.path.abspath(export_dir)
    if os.path.isdir(final_dir) and os.listdir(final_dir) and not overwrite:
        raise FileExistsError(f"{export_dir} exists and is not empty; pass overwrite=True "
                              "(--overwrite) or choose another output directory.")
    verify_images = check_images(verify_images if verify_images is not None
                                  else sample_images(), "verify_images")
    if "int8" in variants:
        if representative_images is None:
            representative_images = sample_images("train")
        representative_images = check_images(representative_images, "representative_images")

    start = time.time()
    parent = os.path.dirname(final_dir)
    os.makedirs(parent, exist_ok=True)
    _remove_abandoned_partials(final_dir)
    export_dir = tempfile.mkdtemp(
        prefix=f".{os.path.basename(final_dir)}.partial-{socket.gethostname()}.{os.getpid()}-",
        dir=parent)
    follow_umask(export_dir)  # mkdtemp makes it 0700; the export is renamed, not copied
    try:
        manifest = _write_export(model, export_dir, variants, tflite_size, representative_images,
                                 verify_images, bounds, verify, source, multiple, start, onnx,
                                 render_factor)
    except BaseException:
        shutil.rmtree(export_dir, ignore_errors=True)
        raise
    _swap_into_place(export_dir, final_dir)
    return manifest


def _remove_abandoned_partials(final_dir):
    """Deletes the hidden half-written exports of ``final_dir`` left by a process of this host
    that no longer runs (a ``kill -9`` mid-export); a live export's folder is left alone."""
    name, parent = os.path.basename(final_dir), os.path.dirname(final_dir)
    pattern = re.compile(re.escape(f".{name}.partial-{socket.gethostname()}.") + r"(\d+)-\w+$")
    for entry in os.listdir(parent) if os.path.isdir(parent) else []:
        match = pattern.match(entry)
        if match and not process_exists(int(match.group(1))):
            shutil.rmtree(os.path.join(parent, entry), ignore_errors=True)


def _swap_into_place(new_dir, final_dir):
    """Renames the finished export ``new_dir`` to ``final_dir``; a previous export there is moved
    aside first and deleted only once the new one is in place."""
    old_dir = None
    if os.path.exists(final_dir):
        old_dir = tempfile.mkdtemp(prefix=f".{os.path.basename(final_dir)}.old-",
                                   dir=os.path.dirname(final_dir))
        os.rmdir(old_dir)
        os.replace(final_dir, old_dir)
    os.replace(new_dir, final_dir)
    if old_dir:
        shutil.rmtree(old_dir, ignore_errors=True)


def _write_export(model, export_dir, variants, tflite_size, representative_images,
                  verify_images, bounds, verify, source, multiple, start, onnx=False,
                  render_factor=None):
    """Writes and verifies every file of one export into ``export_dir``; returns the manifest."""
    saved_model_dir = os.path.join(export_dir, SAVED_MODEL_VERSION)
    signatures = export_saved_model(model, saved_model_dir)
    saved_model = {"path": SAVED_MODEL_VERSION, "size_bytes": _directory_size(saved_model_dir),
                   "bound": bounds["saved_model"]}
    if verify:
        saved_model["verification"] = verify_saved_model(saved_model_dir, model, verify_images,
                                                         bounds["saved_model"])
        if "colorize_uint8" in signatures:
            saved_model["verification"].update(
                verify_colorize_signature(saved_model_dir, model, verify_images, strict=False))
            if not saved_model["verification"]["colorize_uint8_verified"]:
                logging.warning("The colorize_uint8 signature is exported UNVERIFIED: %s",
                                saved_model["verification"]["colorize_uint8_unverified"])
    tflite_files = {}
    for variant in variants:
        path = os.path.join(export_dir, f"{variant}.tflite")
        size_bytes = convert_tflite(model, path, variant, tflite_size, representative_images)
        entry = {"path": f"{variant}.tflite", "size_bytes": size_bytes,
                 "input": input_contract(path), "bound": bounds[variant]}
        if verify:
            check = verify_tflite(path, model, verify_images, bounds[variant],
                                  strict=variant not in SOFT_VARIANTS)
            entry["verified"] = check.pop("verified")
            if not entry["verified"]:
                entry["unverified"] = check.pop("unverified")
                logging.warning("%s.tflite is exported UNVERIFIED: %s", variant,
                                entry["unverified"])
            entry["verification"] = check
        tflite_files[variant] = entry
    onnx_entry = None
    if onnx:
        from kgan.exporting import onnx as onnx_export
        onnx_entry = onnx_export.export_and_verify(
            saved_model_dir, export_dir, model, verify_images if verify else None,
            bounds["onnx"])

    deoldify = is_deoldify_model(model)
    unverified = [f"{v}.tflite" for v, e in tflite_files.items() if not e.get("verified", True)]
    if not saved_model.get("verification", {}).get("colorize_uint8_verified", True):
        unverified.insert(0, "colorize_uint8")
    manifest = {
        "model": {"name": model.name, "parameters": int(model.count_params()),
                  "size_multiple": multiple},
        # kgan.translate tiles images with more pixels than this (self-attention memory).
        "whole_image_pixel_limit": whole_image_pixel_limit(model),
        "input_contract": {
            "dtype": "float32", "range": [-1.0, 1.0], "layout": "NHWC", "channels": 3,
            "size_multiple": multiple,
            "note": f"serving_default needs H, W multiples of {multiple}; translate_uint8 and "
                    "translate_bytes take any size (reflect-padded inside the graph)."},
        "signatures": signatures,
        **({"pipeline": DEOLDIFY_PIPELINE} if deoldify else {}),
        **({"render_factor": int(render_factor)}
           if render_factor and ("colorize_uint8" in signatures or deoldify) else {}),
        "saved_model": saved_model,
        "tflite_size": tflite_size if variants else None,
        "tflite": tflite_files,
        **({"onnx": onnx_entry} if onnx else {}),
        # False when verification was off or a file is labelled unverified (listed here).
        "verified": bool(verify) and not unverified,
        "unverified": unverified,
        "verify_image_sizes": [list(image.shape[:2]) for image in verify_images],
        "source": source or {},
        "versions": {"kgan": kgan.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__, "ai_edge_litert": litert_version(),
                     "python": sys.version.split()[0]},
        "export_seconds": round(time.time() - start, 1),
    }
    write_json(os.path.join(export_dir, MANIFEST), manifest)
    return manifest


def export_run(checkpoint_dir, output_dir, **options):
    """Exports every generator of a training run to ``output_dir/<name>/``.

    CycleGAN runs give ``output_dir/AtoB/`` and ``output_dir/BtoA/``; pix2pix and restoration
    runs give ``output_dir/generator/``. The run's ``flags.cfg`` is copied to
    ``output_dir/flags.cfg`` when present.

    Args:
        checkpoint_dir: the training run directory (its ``--output_dir``).
        output_dir: where the exports go.
        **options: ``export_generator`` keyword arguments.

    Returns:
        ``{name: manifest}``.
    """
    generators = runs.find_generators(checkpoint_dir)
    os.makedirs(output_dir, exist_ok=True)
    flags_path = os.path.join(checkpoint_dir, "flags.cfg")
    if os.path.isfile(flags_path):
        shutil.copyfile(flags_path, os.path.join(output_dir, "flags.cfg"))
    manifests = {}
    eval_size = runs.read_flags(checkpoint_dir).get("eval_size")
    if eval_size and "render_factor" not in options:
        options["render_factor"] = render_factor_for_eval_size(eval_size)
    for name, path in generators.items():
        source = {"checkpoint": os.path.abspath(path),
                  "flags": os.path.abspath(flags_path) if os.path.isfile(flags_path) else None}
        manifests[name] = export_generator(runs.load_generator(path), os.path.join(output_dir, name),
                                           source=source, **options)
    return manifests
