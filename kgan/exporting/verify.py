"""Numerical verification of exports: every SavedModel signature and TFLite file is run and
compared with the Keras model it came from before an export is declared done; the SavedModel
is reloaded in a fresh Python process that imports only TensorFlow. A mismatch raises
``ExportVerificationError``.

The expected outputs here are computed with numpy padding and a numpy uint8 formula on purpose,
independent of kgan.serving.translators's graph code and kgan.core.pixels, so a bug there is caught
rather than reproduced.

Called by kgan.exporting.export (and its tests); verification images are kgan's built-in sample
photos.
"""

import os
import subprocess
import sys
import tempfile

import numpy as np
import tensorflow as tf

from kgan.core.errors import KganError
from kgan.data.samples import sample_photos
from kgan.models import size_multiple
from kgan.serving.translators import TFLiteRunner

SIGNATURES = ("serving_default", "translate_uint8", "translate_bytes")



# Verification bounds. Every exported output is compared with the Keras model's output on the
# same held-out photos, in [-1, 1] units, by four figures (kgan.exporting.verify.fidelity):
# max and mean absolute error, PSNR (peak-to-peak 2) and the margin in dB by which the file
# beats a constant predictor: the image of the Keras outputs' mean colour, measured on the same
# images (10 log10(constant predictor's MSE / the file's MSE)). A model with other weights, or
# one that outputs zeros, sits at or below 0 dB of margin whatever its output scale (a wrong
# model's independent output adds its own variance), so the margin floor is what makes every
# bound fail for a wrong or a constant model; the PSNR floor and the absolute errors guard the
# scale. A missing "max"/"mean" is not checked (int8's absolute errors say nothing: a constant
# model passed the old 2.0 / 0.5).
#
# Measured (margin dB / PSNR dB; correct file vs the model | vs another seed's model | a
# zeros model's file vs the model), 2 chelsea photos, tiny random-weight generators:
#   resnet 1 block ngf 4, 32 px:   float32 125.6 / 147.3 | -4.5 / 17.6 | -1.4 / 20.3
#                                  float16  61.0 /  82.7; dynamic 33.4 / 55.1; int8 7.8 / 29.5
#   resnet 6 blocks ngf 8, 64 px:  float32 117.3 / 136.1 | -4.1 / 15.0 | -0.3 / 18.5
#                                  float16  56.8 /  75.7; dynamic 23.4 / 42.3; int8 3.9 / 22.8
#   unet 5 downs ngf 8, 64 px (outputs std 0.002): float32 137.5 / 196.9 | -0.6 / 49.9 |
#                                  -0.09 / 59.3; float16 70.0; dynamic 69.9; int8 2.3 / 61.7
# (the wrong and the zeros rows are the same for every variant within 0.2 dB). int8 with
# instance or batch norm stays a few dB above a constant image: below its floor the export
# keeps the file but labels it unverified (export.SOFT_VARIANTS) instead of failing.
# Earlier, resnet_9blocks ngf 64 at 256: SavedModel 0; float32 max 1.8e-5, mean 1.6e-6;
# float16 7.8e-3 / 6.4e-4; dynamic 0.40 / 0.041; int8 1.88 / 0.32.
ERROR_BOUNDS = {
    "saved_model": {"max": 1e-4, "mean": 1e-5, "min_psnr_db": 80.0, "min_margin_db": 60.0},
    "float32": {"max": 1e-4, "mean": 1e-5, "min_psnr_db": 80.0, "min_margin_db": 60.0},
    "float16": {"max": 3e-2, "mean": 3e-3, "min_psnr_db": 50.0, "min_margin_db": 30.0},
    "dynamic": {"max": 0.75, "mean": 0.08, "min_psnr_db": 25.0, "min_margin_db": 10.0},
    "int8": {"min_psnr_db": 20.0, "min_margin_db": 3.0},
    "onnx": {"max": 1e-4, "mean": 1e-5, "min_psnr_db": 80.0, "min_margin_db": 60.0},
}
# PSNR is reported up to this (an exact match has no finite PSNR; JSON has no infinity).
MAX_PSNR_DB = 200.0


UINT8_TOLERANCE = 1  # uint8 signatures may differ from the Keras reference by one level


class ExportVerificationError(KganError, RuntimeError):
    """An exported file does not reproduce the Keras model within its error bound."""


def sample_images(split="test", max_side=256):
    """Real photos for verification and calibration: kgan's built-in sample photos
    (``kgan.data.samples``, bundled with scikit-image), downscaled so the longest side is
    ``max_side``. Their sizes are not multiples of the networks' size multiples.

    Args:
        split: ``"test"`` (2 held-out photos, used to verify) or ``"train"`` (6 photos, used to
            calibrate int8), so calibration and verification never share an image.
        max_side: the longest side after downscaling.

    Returns:
        A list of uint8 (H, W, 3) arrays.
    """

    images = []
    for photo in sample_photos(split):
        height, width = photo.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        resized = tf.image.resize(photo[np.newaxis].astype(np.float32), size, antialias=True)
        images.append(np.clip(np.round(resized[0].numpy()), 0, 255).astype(np.uint8))
    return images


def resize_square(image, size):
    """uint8 (H, W, 3) -> float32 (1, size, size, 3) in [-1, 1] (bilinear, antialiased)."""
    x = tf.image.resize(tf.cast(image, tf.float32)[tf.newaxis], (size, size), antialias=True)
    return (tf.clip_by_value(x, 0.0, 255.0) / 127.5 - 1.0).numpy().astype(np.float32)


def check_images(images, what):
    images = [np.asarray(image) for image in images]
    for image in images:
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"{what} must be uint8 (H, W, 3) arrays, got {image.dtype} "
                             f"{image.shape}.")
    if not images:
        raise ValueError(f"{what} is empty; pass at least one uint8 (H, W, 3) image.")
    return images


def reference_uint8(model, image, multiple=None):
    """The Keras model's uint8 output for one uint8 image of any size, computed with numpy
    padding (independent of the graph code the signatures use)."""
    multiple = int(multiple or size_multiple(model))
    height, width = image.shape[:2]
    pad_h, pad_w = (-height) % multiple, (-width) % multiple
    top, left = pad_h // 2, pad_w // 2
    padded = np.pad(image, ((top, pad_h - top), (left, pad_w - left), (0, 0)), mode="reflect")
    x = padded[np.newaxis].astype(np.float32) / 127.5 - 1.0
    y = np.asarray(model(x, training=False))[0, top:top + height, left:left + width]
    return np.clip(np.round((y + 1.0) * 127.5), 0, 255).astype(np.uint8)


def _psnr(mse):
    return float(min(MAX_PSNR_DB, 10.0 * np.log10(4.0 / max(mse, 1e-30))))


def fidelity(expected, actual):
    """How closely ``actual`` reproduces ``expected`` (float arrays in [-1, 1], channels last).

    Returns:
        ``{"max_abs_error", "mean_abs_error", "psnr_db", "constant_psnr_db", "margin_db"}``:
        PSNR with a peak-to-peak of 2; ``constant_psnr_db`` is the PSNR of the constant
        predictor (every pixel the mean colour of ``expected``) against ``expected``;
        ``margin_db`` = ``psnr_db - constant_psnr_db``, which a wrong or constant model does
        not get above 0 (a model whose outputs are constant gets 0 at best).
    """
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    diff = np.abs(expected - actual)
    channels = expected.reshape(-1, expected.shape[-1])
    constant_mse = float(np.mean((channels - channels.mean(axis=0)) ** 2))
    psnr, constant_psnr = _psnr(float(np.mean(diff ** 2))), _psnr(constant_mse)
    return {"max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean()),
            "psnr_db": round(psnr, 3), "constant_psnr_db": round(constant_psnr, 3),
            "margin_db": round(psnr - constant_psnr, 3)}


def bound_failures(errors, bound):
    """The parts of ``bound`` (keys ``max``, ``mean``, ``min_psnr_db``, ``min_margin_db``, each
    optional) that ``errors`` (from ``fidelity``) breaks, as short phrases; empty when none."""
    failures = []
    if "max" in bound and not errors["max_abs_error"] <= bound["max"]:
        failures.append(f"max abs error {errors['max_abs_error']:.3g} > {bound['max']:g}")
    if "mean" in bound and not errors["mean_abs_error"] <= bound["mean"]:
        failures.append(f"mean abs error {errors['mean_abs_error']:.3g} > {bound['mean']:g}")
    if "min_psnr_db" in bound and not errors["psnr_db"] >= bound["min_psnr_db"]:
        failures.append(f"PSNR {errors['psnr_db']:.1f} dB < {bound['min_psnr_db']:g} dB")
    if "min_margin_db" in bound and not errors["margin_db"] >= bound["min_margin_db"]:
        failures.append(f"{errors['margin_db']:+.1f} dB over a constant image of the model's "
                        f"mean colour < {bound['min_margin_db']:g} dB")
    return failures


def check_fidelity(what, errors, bound, error_type=None):
    """Raises ``error_type`` (default ``ExportVerificationError``) with a one-line message when
    ``errors`` (from ``fidelity``) break ``bound``."""
    failures = bound_failures(errors, bound)
    if failures:
        constant = (" (the Keras model's output is constant on the verify images, so no file "
                    "can be told from a constant one)" if errors["constant_psnr_db"] >= MAX_PSNR_DB
                    else "")
        raise (error_type or ExportVerificationError)(
            f"{what} does not match the Keras model: {'; '.join(failures)}{constant}. The "
            "export is wrong; do not ship it.")


# What a fresh interpreter runs around a check's own lines: it imports only TensorFlow (never
# kgan, so the SavedModel must stand alone), loads the SavedModel and the inputs, and saves
# the ``outputs`` dict the check's lines fill.
_FRESH_PROCESS_HEAD = r"""
import sys
import numpy as np
import tensorflow as tf
saved_model_dir, inputs_path, outputs_path = sys.argv[1:4]
data = np.load(inputs_path, allow_pickle=False)
signatures = tf.saved_model.load(saved_model_dir).signatures
outputs = {}
"""
_FRESH_PROCESS_TAIL = r"""
assert not any(name == "kgan" or name.startswith("kgan.") for name in sys.modules)
np.savez(outputs_path, **outputs)
"""


def run_in_fresh_tensorflow(saved_model_dir, inputs, lines, what):
    """The one fresh-process reload of the export checks: runs ``lines`` in a new Python
    process that imports only TensorFlow, with ``signatures`` (the reloaded SavedModel's),
    ``data`` (``inputs``) and an ``outputs`` dict to fill, and returns ``outputs``.

    Args:
        saved_model_dir: the SavedModel directory.
        inputs: ``{name: numpy array}``.
        lines: Python source run between the loading and the saving.
        what: names the check in the error message.

    Raises:
        ExportVerificationError: the process failed (its stderr's tail is in the message).
    """
    with tempfile.TemporaryDirectory() as tmp:
        inputs_path = os.path.join(tmp, "inputs.npz")
        outputs_path = os.path.join(tmp, "outputs.npz")
        np.savez(inputs_path, **inputs)
        result = subprocess.run(
            [sys.executable, "-c", _FRESH_PROCESS_HEAD + lines + _FRESH_PROCESS_TAIL,
             os.path.abspath(saved_model_dir), inputs_path, outputs_path],
            capture_output=True, text=True, cwd=tmp,
            env=dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2"))
        if result.returncode != 0:
            raise ExportVerificationError(
                f"Reloading {saved_model_dir} for {what} in a fresh TensorFlow process "
                f"failed:\n{result.stderr[-3000:]}")
        with np.load(outputs_path, allow_pickle=False) as loaded:
            return {key: loaded[key] for key in loaded.files}


# Reruns all three signatures on the inputs verify_saved_model prepared.
_SIGNATURE_CHECK = r"""
for i in range(int(data["count"])):
    outputs[f"float_{i}"] = signatures["serving_default"](
        images=tf.constant(data[f"float_{i}"]))["images"].numpy()
    outputs[f"uint8_{i}"] = signatures["translate_uint8"](
        images=tf.constant(data[f"uint8_{i}"]))["images"].numpy()
encoded = [data[f"png_{i}"].tobytes() for i in range(int(data["count"]))]
pngs = signatures["translate_bytes"](image_bytes=tf.constant(encoded))["png_bytes"].numpy()
for i, png in enumerate(pngs):
    outputs[f"bytes_{i}"] = tf.io.decode_png(png, channels=3).numpy()
outputs["signatures"] = np.array(sorted(signatures.keys()))
"""


def verify_saved_model(saved_model_dir, model, images, bound=None):
    """Reloads a SavedModel in a fresh process that imports only TensorFlow and compares all
    three signatures with ``model`` on ``images``.

    ``serving_default`` gets each image reflect-padded to the size multiple (float32);
    ``translate_uint8`` and ``translate_bytes`` get the images at their own (odd) sizes and
    must match the Keras model within one uint8 level.

    Args:
        saved_model_dir: the SavedModel directory.
        model: the Keras generator it was exported from.
        images: uint8 (H, W, 3) arrays.
        bound: an ``ERROR_BOUNDS`` entry for the float signature (default
            ``ERROR_BOUNDS["saved_model"]``).

    Returns:
        A dict of measured errors.

    Raises:
        ExportVerificationError: when a signature is missing or an output is off.
    """
    bound = bound or ERROR_BOUNDS["saved_model"]
    images = check_images(images, "verify_images")
    multiple = size_multiple(model)
    inputs, expected_float, expected_uint8 = {"count": len(images)}, [], []
    for i, image in enumerate(images):
        height, width = image.shape[:2]
        pad_h, pad_w = (-height) % multiple, (-width) % multiple
        padded = np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode="reflect")
        x = padded[np.newaxis].astype(np.float32) / 127.5 - 1.0
        inputs[f"float_{i}"] = x
        inputs[f"uint8_{i}"] = image[np.newaxis]
        inputs[f"png_{i}"] = np.frombuffer(tf.io.encode_png(image).numpy(), np.uint8)
        expected_float.append(np.asarray(model(x, training=False)))
        expected_uint8.append(reference_uint8(model, image, multiple))

    outputs = run_in_fresh_tensorflow(saved_model_dir, inputs, _SIGNATURE_CHECK,
                                      "its signatures")

    missing = set(SIGNATURES) - set(outputs["signatures"].tolist())
    if missing:
        raise ExportVerificationError(f"SavedModel lacks the signatures {sorted(missing)}.")
    float_errors = fidelity(np.concatenate([e.reshape(-1, 3) for e in expected_float]),
                            np.concatenate([outputs[f"float_{i}"].reshape(-1, 3)
                                            for i in range(len(images))]))
    check_fidelity("SavedModel serving_default", float_errors, bound)
    levels = {}
    for key in ("uint8", "bytes"):
        worst = 0
        for i, expected in enumerate(expected_uint8):
            actual = outputs[f"{key}_{i}"]
            actual = actual[0] if key == "uint8" else actual
            if actual.shape != expected.shape:
                raise ExportVerificationError(
                    f"SavedModel translate_{key} returned shape {actual.shape} for an image of "
                    f"shape {expected.shape}.")
            worst = max(worst, int(np.abs(actual.astype(int) - expected.astype(int)).max()))
        if worst > UINT8_TOLERANCE:
            raise ExportVerificationError(
                f"SavedModel translate_{key} differs from the Keras model by {worst} uint8 "
                f"levels (bound {UINT8_TOLERANCE}).")
        levels[f"translate_{key}_max_uint8_error"] = worst
    return {**float_errors, **levels,
            "image_sizes": [list(image.shape[:2]) for image in images]}


def verify_tflite(tflite_path, model, images, bound, strict=True):
    """Runs a ``.tflite`` file with ``ai_edge_litert`` on ``images`` resized to its input size
    and compares it with ``model``.

    Args:
        tflite_path: the ``.tflite`` file.
        model: the Keras generator it was converted from.
        images: uint8 (H, W, 3) arrays.
        bound: an ``ERROR_BOUNDS`` entry (absolute errors in [-1, 1] units, PSNR and margin
            over a constant image floors in dB).
        strict: when False, a file off its bound is reported (``"verified": False`` and the
            reason under ``"unverified"``) instead of raised; a file that does not load or
            gives non-finite values still raises.

    Returns:
        A dict of measured errors (``fidelity``) and ``"verified"``.

    Raises:
        ExportVerificationError: when the file cannot run or (``strict``) an output is off.
    """
    images = check_images(images, "verify_images")
    try:
        runner = TFLiteRunner(tflite_path)
    except (ValueError, RuntimeError) as error:
        raise ExportVerificationError(f"{tflite_path} does not load: {error}") from error
    x = np.concatenate([resize_square(image, runner.size) for image in images])
    expected = np.asarray(model(x, training=False))
    actual = runner(x)
    if not np.all(np.isfinite(actual)):
        raise ExportVerificationError(f"{tflite_path} produced non-finite values.")
    errors = fidelity(expected, actual)
    try:
        check_fidelity(os.path.basename(tflite_path), errors, bound)
    except ExportVerificationError as error:
        if strict:
            raise
        return {**errors, "verified": False, "unverified": str(error)}
    return {**errors, "verified": True}
