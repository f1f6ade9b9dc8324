"""Exports generators to a SavedModel (for TF Serving) and TFLite files, each verified numerically.

An export directory looks like::

    EXPORT_DIR/
      1/                    SavedModel, version 1 (TF Serving's model_base_path is EXPORT_DIR)
      float32.tflite        fixed-size (tflite_size x tflite_size) TFLite variants
      float16.tflite
      dynamic.tflite
      int8.tflite           only when "int8" is asked
      manifest.json         input contract, signatures, file sizes, measured errors, versions

The SavedModel is written by ``keras.export.ExportArchive`` and the TFLite files are converted
from SavedModels written the same way: DESIGN.md records that TFLite from a tf.function of a
Keras 3 model gave wrong numbers here. Every file is reloaded and compared with the Keras model
before the export is declared done; the SavedModel is checked in a fresh Python process that
imports only TensorFlow. A mismatch raises ``ExportVerificationError``.

CLI::

    python -m kgan.export --checkpoint_dir=RUN --output_dir=saved_models/NAME \
        [--tflite=float32,float16,dynamic] [--tflite_size=256]
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import keras

import kgan
import kgan.layers  # noqa: F401  (registers the custom layers for load_model)
from kgan.models import size_multiple

SAVED_MODEL_VERSION = "1"
SIGNATURES = ("serving_default", "translate_uint8", "translate_bytes")
TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
DEFAULT_TFLITE = ("float32", "float16", "dynamic")

# Verification bounds in [-1, 1] units (max and mean absolute error over all verify pixels).
# Measured on resnet_9blocks (ngf 64, random normal(0, 0.02) weights) at 256x256, int8
# calibrated on the train sample photos, verified on the test ones (and on 3 other photos):
# SavedModel 0; float32 TFLite max 1.8e-5, mean 1.6e-6 on astronaut/coffee/chelsea (4.0e-4
# before InstanceNormalization summed its mean in two stages: TFLite's MEAN kernel adds the
# 65,536 pixels of one long reduction sequentially in float32); float16 7.8e-3 / 6.4e-4;
# dynamic 0.40 / 0.041; int8 1.88 / 0.32 (full-integer instance norm is lossy: the int8 bound
# only catches a broken file, it does not promise quality). Bounds leave headroom above these.
ERROR_BOUNDS = {
    "saved_model": {"max": 1e-4, "mean": 1e-5},
    "float32": {"max": 1e-4, "mean": 1e-5},
    "float16": {"max": 3e-2, "mean": 3e-3},
    "dynamic": {"max": 0.75, "mean": 0.08},
    "int8": {"max": 2.0, "mean": 0.5},
}
UINT8_TOLERANCE = 1  # uint8 signatures may differ from the Keras reference by one level


class ExportVerificationError(RuntimeError):
    """An exported file does not reproduce the Keras model within its error bound."""


# ----------------------------------------------------------------------------- graph pieces


def to_float_images(images):
    """uint8 images -> float32 in [-1, 1]."""
    return tf.cast(images, tf.float32) / 127.5 - 1.0


def to_uint8_images(images):
    """float images in [-1, 1] -> uint8, rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)


def _reflect_indices(size, before, after):
    """Indices into [0, size) that reflect-pad a side by ``before``/``after`` (any amounts, also
    more than ``size - 1``: the reflection repeats, as ``numpy.pad(mode="reflect")``)."""
    positions = tf.range(-before, size + after)
    period = tf.maximum(2 * (size - 1), 1)
    folded = tf.math.floormod(positions, period)
    return tf.where(folded >= size, period - folded, folded) * tf.cast(size > 1, tf.int32)


def reflect_pad_to_multiple(images, multiple):
    """Reflect-pads NHWC ``images`` so that height and width are multiples of ``multiple``.

    Padding is split between both sides so that the network sees the image centred.

    Args:
        images: (N, H, W, C) tensor of any size.
        multiple: the network's size multiple.

    Returns:
        ``(padded, top, left)``; crop ``padded[:, top:top + H, left:left + W]`` after the network.
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    top, left = pad_h // 2, pad_w // 2
    images = tf.gather(images, _reflect_indices(height, top, pad_h - top), axis=1)
    images = tf.gather(images, _reflect_indices(width, left, pad_w - left), axis=2)
    return images, top, left


def make_translate_uint8(model, multiple=None):
    """Returns ``fn(uint8 (N, H, W, 3)) -> uint8 (N, H, W, 3)`` for images of any size: reflect
    pad to the network multiple, run ``model``, crop back, round.

    Args:
        model: a kgan generator (float32 [-1, 1] in and out).
        multiple: the size multiple; default ``kgan.models.size_multiple(model)``.

    Returns:
        A Python function of one uint8 tensor (trace it with ``tf.function``).
    """
    multiple = int(multiple or size_multiple(model))

    def translate_uint8(images):
        shape = tf.shape(images)
        padded, top, left = reflect_pad_to_multiple(to_float_images(images), multiple)
        outputs = model(padded, training=False)
        outputs = outputs[:, top:top + shape[1], left:left + shape[2], :]
        return to_uint8_images(outputs)

    return translate_uint8


def _build_archive(model, multiple):
    """An ``ExportArchive`` holding ``model`` with the three serving signatures."""
    translate_uint8 = make_translate_uint8(model, multiple)

    def serving_default(images):
        return {"images": model(images, training=False)}

    def translate_uint8_endpoint(images):
        return {"images": translate_uint8(images)}

    def translate_bytes(image_bytes):
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            return tf.io.encode_png(translate_uint8(image[tf.newaxis])[0])

        png = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"png_bytes": png}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", serving_default,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="images")])
    archive.add_endpoint(
        "translate_uint8", translate_uint8_endpoint,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    archive.add_endpoint(
        "translate_bytes", translate_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    return archive


def export_saved_model(model, saved_model_dir):
    """Writes ``model`` as a SavedModel with the ``serving_default``, ``translate_uint8`` and
    ``translate_bytes`` signatures.

    Args:
        model: a kgan generator.
        saved_model_dir: the directory to write (must not exist or be empty).

    Returns:
        The signature descriptions recorded in the manifest.
    """
    multiple = size_multiple(model)
    _build_archive(model, multiple).write_out(saved_model_dir, verbose=False)
    return {
        "serving_default": {
            "inputs": {"images": "float32 (N, H, W, 3) in [-1, 1]; H, W multiples of "
                                 f"{multiple}"},
            "outputs": {"images": "float32 (N, H, W, 3) in [-1, 1]"}},
        "translate_uint8": {
            "inputs": {"images": "uint8 (N, H, W, 3), any H, W"},
            "outputs": {"images": "uint8 (N, H, W, 3), same size"}},
        "translate_bytes": {
            "inputs": {"image_bytes": "string (N,): encoded JPEG/PNG/GIF/BMP, any sizes"},
            "outputs": {"png_bytes": "string (N,): encoded PNG, same sizes"}},
    }


# ----------------------------------------------------------------------------- TFLite


def _representative_batches(images, size):
    """Yields float32 (1, size, size, 3) batches for int8 calibration (each image and its
    mirror, resized to ``size``)."""
    for image in images:
        x = resize_square(image, size)
        yield [x]
        yield [x[:, :, ::-1, :].copy()]


def resize_square(image, size):
    """uint8 (H, W, 3) -> float32 (1, size, size, 3) in [-1, 1] (bilinear, antialiased)."""
    x = tf.image.resize(tf.cast(image, tf.float32)[tf.newaxis], (size, size), antialias=True)
    return (tf.clip_by_value(x, 0.0, 255.0) / 127.5 - 1.0).numpy().astype(np.float32)


def convert_tflite(model, tflite_path, variant, size, representative_images=None):
    """Converts ``model`` at a fixed (1, size, size, 3) input to a TFLite file.

    The route is ExportArchive SavedModel -> ``TFLiteConverter.from_saved_model`` with builtin
    ops only (reflect padding becomes MIRROR_PAD).

    Args:
        model: a kgan generator.
        tflite_path: the ``.tflite`` file to write.
        variant: ``float32``, ``float16`` (float16 weights), ``dynamic`` (int8 weights,
            dynamic-range activations) or ``int8`` (full integer, uint8 input and output).
        size: the square input size; a multiple of the network's size multiple.
        representative_images: uint8 (H, W, 3) images for ``int8`` calibration.

    Returns:
        The file size in bytes.
    """
    if variant not in TFLITE_VARIANTS:
        raise ValueError(f"Unknown TFLite variant {variant!r}; use one of "
                         f"{', '.join(TFLITE_VARIANTS)}.")
    if variant == "int8" and (representative_images is None or len(representative_images) == 0):
        raise ValueError("The int8 TFLite variant needs representative_images for calibration.")
    with tempfile.TemporaryDirectory() as tmp:
        archive = keras.export.ExportArchive()
        archive.track(model)
        archive.add_endpoint(
            "serving_default", lambda images: {"images": model(images, training=False)},
            input_signature=[tf.TensorSpec((1, size, size, 3), tf.float32, name="images")])
        archive.write_out(tmp, verbose=False)
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        if variant != "float32":
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
        if variant == "float16":
            converter.target_spec.supported_types = [tf.float16]
        if variant == "int8":
            converter.representative_dataset = lambda: _representative_batches(
                representative_images, size)
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = tf.uint8
            converter.inference_output_type = tf.uint8
        flatbuffer = converter.convert()
    with open(tflite_path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)


class TFLiteRunner:
    """Runs a kgan ``.tflite`` generator with ``ai_edge_litert`` on float images in [-1, 1],
    quantising the input and dequantising the output when the file has integer edges.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads (None: the interpreter's default).
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])

    def __call__(self, images):
        """float32 (N, size, size, 3) in [-1, 1] -> float32 (N, size, size, 3)."""
        images = np.asarray(images, np.float32)
        if images.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"{self.path} takes (N, {self.size}, {self.size}, 3) images, "
                             f"got {images.shape}.")
        return np.concatenate([self._run_one(x[np.newaxis]) for x in images])

    def _run_one(self, x):
        dtype = self.input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


# ----------------------------------------------------------------------------- verification


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
    from kgan.data.samples import sample_photos

    images = []
    for photo in sample_photos(split):
        height, width = photo.shape[:2]
        scale = min(1.0, max_side / max(height, width))
        size = (max(1, round(height * scale)), max(1, round(width * scale)))
        resized = tf.image.resize(photo[np.newaxis].astype(np.float32), size, antialias=True)
        images.append(np.clip(np.round(resized[0].numpy()), 0, 255).astype(np.uint8))
    return images


def _check_images(images, what):
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


def _errors(expected, actual):
    diff = np.abs(np.asarray(expected, np.float64) - np.asarray(actual, np.float64))
    return {"max_abs_error": float(diff.max()), "mean_abs_error": float(diff.mean())}


def _check_bound(what, errors, bound):
    if not (errors["max_abs_error"] <= bound["max"] and errors["mean_abs_error"] <= bound["mean"]):
        raise ExportVerificationError(
            f"{what} does not match the Keras model: max abs error {errors['max_abs_error']:.3g} "
            f"(bound {bound['max']:g}), mean {errors['mean_abs_error']:.3g} (bound "
            f"{bound['mean']:g}) in [-1, 1] units. The export is wrong; do not ship it.")


# Run by a fresh interpreter that imports only TensorFlow (argv: saved_model_dir, in, out).
_RELOAD_SCRIPT = r"""
import sys
import numpy as np
import tensorflow as tf
saved_model_dir, inputs_path, outputs_path = sys.argv[1:4]
data = np.load(inputs_path, allow_pickle=False)
signatures = tf.saved_model.load(saved_model_dir).signatures
outputs = {}
for i in range(int(data["count"])):
    outputs[f"float_{i}"] = signatures["serving_default"](
        images=tf.constant(data[f"float_{i}"]))["images"].numpy()
    outputs[f"uint8_{i}"] = signatures["translate_uint8"](
        images=tf.constant(data[f"uint8_{i}"]))["images"].numpy()
encoded = [data[f"png_{i}"].tobytes() for i in range(int(data["count"]))]
pngs = signatures["translate_bytes"](image_bytes=tf.constant(encoded))["png_bytes"].numpy()
for i, png in enumerate(pngs):
    outputs[f"bytes_{i}"] = tf.io.decode_png(png, channels=3).numpy()
assert not any(name == "kgan" or name.startswith("kgan.") for name in sys.modules)
outputs["signatures"] = np.array(sorted(signatures.keys()))
np.savez(outputs_path, **outputs)
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
        bound: ``{"max": ..., "mean": ...}`` for the float signature (default
            ``ERROR_BOUNDS["saved_model"]``).

    Returns:
        A dict of measured errors.

    Raises:
        ExportVerificationError: when a signature is missing or an output is off.
    """
    bound = bound or ERROR_BOUNDS["saved_model"]
    images = _check_images(images, "verify_images")
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

    with tempfile.TemporaryDirectory() as tmp:
        inputs_path = os.path.join(tmp, "inputs.npz")
        outputs_path = os.path.join(tmp, "outputs.npz")
        np.savez(inputs_path, **inputs)
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
        result = subprocess.run(
            [sys.executable, "-c", _RELOAD_SCRIPT, os.path.abspath(saved_model_dir), inputs_path,
             outputs_path],
            capture_output=True, text=True, cwd=tmp, env=env)
        if result.returncode != 0:
            raise ExportVerificationError(
                f"Reloading the SavedModel {saved_model_dir} in a fresh TensorFlow process "
                f"failed:\n{result.stderr[-3000:]}")
        with np.load(outputs_path, allow_pickle=False) as loaded:
            outputs = {key: loaded[key] for key in loaded.files}

    missing = set(SIGNATURES) - set(outputs["signatures"].tolist())
    if missing:
        raise ExportVerificationError(f"SavedModel lacks the signatures {sorted(missing)}.")
    float_errors = _errors(np.concatenate([e.ravel() for e in expected_float]),
                           np.concatenate([outputs[f"float_{i}"].ravel()
                                           for i in range(len(images))]))
    _check_bound("SavedModel serving_default", float_errors, bound)
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


def verify_tflite(tflite_path, model, images, bound):
    """Runs a ``.tflite`` file with ``ai_edge_litert`` on ``images`` resized to its input size
    and compares it with ``model``.

    Args:
        tflite_path: the ``.tflite`` file.
        model: the Keras generator it was converted from.
        images: uint8 (H, W, 3) arrays.
        bound: ``{"max": ..., "mean": ...}`` in [-1, 1] units.

    Returns:
        A dict of measured errors.

    Raises:
        ExportVerificationError: when the file cannot run or an output is off.
    """
    images = _check_images(images, "verify_images")
    try:
        runner = TFLiteRunner(tflite_path)
    except (ValueError, RuntimeError) as error:
        raise ExportVerificationError(f"{tflite_path} does not load: {error}") from error
    x = np.concatenate([resize_square(image, runner.size) for image in images])
    expected = np.asarray(model(x, training=False))
    actual = runner(x)
    if not np.all(np.isfinite(actual)):
        raise ExportVerificationError(f"{tflite_path} produced non-finite values.")
    errors = _errors(expected, actual)
    _check_bound(os.path.basename(tflite_path), errors, bound)
    return errors


# ----------------------------------------------------------------------------- export


def _parse_variants(tflite):
    if isinstance(tflite, str):
        tflite = [v for v in tflite.split(",") if v.strip()]
    variants = [v.strip() for v in tflite]
    unknown = [v for v in variants if v not in TFLITE_VARIANTS]
    if unknown:
        raise ValueError(f"Unknown TFLite variant(s) {unknown}; use any of "
                         f"{', '.join(TFLITE_VARIANTS)} (comma-separated), or none.")
    return list(dict.fromkeys(variants))


def _directory_size(path):
    return sum(os.path.getsize(os.path.join(root, name))
               for root, _, names in os.walk(path) for name in names)


def export_generator(model, export_dir, tflite=DEFAULT_TFLITE, tflite_size=256,
                     representative_images=None, verify_images=None, bounds=None,
                     overwrite=False, verify=True, source=None):
    """Exports one generator: SavedModel (three signatures), TFLite variants, manifest.json.

    Args:
        model: a kgan generator (``keras.Model``, float32 [-1, 1] in and out).
        export_dir: the directory to write (see the module docstring for its layout).
        tflite: TFLite variants, a sequence or comma-separated string out of ``float32``,
            ``float16``, ``dynamic`` and ``int8``; empty for none.
        tflite_size: the square TFLite input size; a multiple of the network's size multiple.
        representative_images: uint8 (H, W, 3) images calibrating ``int8`` (default
            ``sample_images("train")``; pass images of your domain for a better int8 model).
        verify_images: uint8 (H, W, 3) images the verification runs on (default
            ``sample_images("test")``: two held-out real photos at odd sizes).
        bounds: overrides of ``ERROR_BOUNDS`` entries, e.g. ``{"int8": {"max": 1, "mean": .2}}``.
        overwrite: replace an existing non-empty ``export_dir``.
        verify: verify every file (turn off only when verifying separately).
        source: optional dict recorded in the manifest (where the model came from).

    Returns:
        The manifest dict (also written to ``export_dir/manifest.json``).

    Raises:
        ExportVerificationError: when a file does not reproduce the model.
    """
    variants = _parse_variants(tflite)
    multiple = size_multiple(model)
    if variants and (tflite_size < multiple or tflite_size % multiple):
        fit = max(multiple, tflite_size // multiple * multiple)
        raise ValueError(f"tflite_size={tflite_size} is not a multiple of {multiple}, which "
                         f"{model.name} needs; use e.g. {fit}.")
    bounds = {**ERROR_BOUNDS, **(bounds or {})}
    if os.path.isdir(export_dir) and os.listdir(export_dir):
        if not overwrite:
            raise FileExistsError(f"{export_dir} exists and is not empty; pass overwrite=True "
                                  "(--overwrite) or choose another output directory.")
        shutil.rmtree(export_dir)
    os.makedirs(export_dir, exist_ok=True)
    verify_images = _check_images(verify_images if verify_images is not None
                                  else sample_images(), "verify_images")
    if "int8" in variants:
        if representative_images is None:
            representative_images = sample_images("train")
        representative_images = _check_images(representative_images, "representative_images")

    start = time.time()
    saved_model_dir = os.path.join(export_dir, SAVED_MODEL_VERSION)
    signatures = export_saved_model(model, saved_model_dir)
    saved_model = {"path": SAVED_MODEL_VERSION, "size_bytes": _directory_size(saved_model_dir),
                   "bound": bounds["saved_model"]}
    if verify:
        saved_model["verification"] = verify_saved_model(saved_model_dir, model, verify_images,
                                                         bounds["saved_model"])
    tflite_files = {}
    for variant in variants:
        path = os.path.join(export_dir, f"{variant}.tflite")
        size_bytes = convert_tflite(model, path, variant, tflite_size, representative_images)
        entry = {"path": f"{variant}.tflite", "size_bytes": size_bytes,
                 "input": _tflite_input_contract(path), "bound": bounds[variant]}
        if verify:
            entry["verification"] = verify_tflite(path, model, verify_images, bounds[variant])
        tflite_files[variant] = entry

    manifest = {
        "model": {"name": model.name, "parameters": int(model.count_params()),
                  "size_multiple": multiple},
        "input_contract": {
            "dtype": "float32", "range": [-1.0, 1.0], "layout": "NHWC", "channels": 3,
            "size_multiple": multiple,
            "note": f"serving_default needs H, W multiples of {multiple}; translate_uint8 and "
                    "translate_bytes take any size (reflect-padded inside the graph)."},
        "signatures": signatures,
        "saved_model": saved_model,
        "tflite_size": tflite_size if variants else None,
        "tflite": tflite_files,
        "verified": bool(verify),
        "verify_image_sizes": [list(image.shape[:2]) for image in verify_images],
        "source": source or {},
        "versions": {"kgan": kgan.__version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__, "ai_edge_litert": _litert_version(),
                     "python": sys.version.split()[0]},
        "export_seconds": round(time.time() - start, 1),
    }
    with open(os.path.join(export_dir, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
    return manifest


def _tflite_input_contract(path):
    runner = TFLiteRunner(path)
    details = runner.input
    scale, zero = details["quantization"]
    contract = {"shape": [int(d) for d in details["shape"]],
                "dtype": np.dtype(details["dtype"]).name}
    if np.issubdtype(details["dtype"], np.integer):
        contract["quantization"] = {"scale": float(scale), "zero_point": int(zero),
                                    "real_value": "(q - zero_point) * scale, in [-1, 1]"}
        out_scale, out_zero = runner.output["quantization"]
        contract["output_quantization"] = {"scale": float(out_scale), "zero_point": int(out_zero)}
    else:
        contract["range"] = [-1.0, 1.0]
    return contract


def _litert_version():
    try:
        from importlib.metadata import version
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - the version is informational only
        return "unknown"


def find_generators(checkpoint_dir):
    """Returns ``{name: path}`` of the generators a training run saved
    (``RUN/generators/<name>.keras``).

    Raises:
        FileNotFoundError: when ``checkpoint_dir`` is missing or holds no generators.
    """
    if not os.path.isdir(checkpoint_dir):
        raise FileNotFoundError(f"--checkpoint_dir {checkpoint_dir} does not exist; pass the "
                                "--output_dir of a training run.")
    paths = sorted(glob.glob(os.path.join(checkpoint_dir, "generators", "*.keras")))
    if not paths:
        raise FileNotFoundError(
            f"No generators found in {checkpoint_dir}: expected "
            f"{os.path.join(checkpoint_dir, 'generators', '<name>.keras')} (AtoB.keras and "
            "BtoA.keras for CycleGAN, generator.keras otherwise). Train first, or point "
            "--checkpoint_dir at the training run's --output_dir.")
    return {os.path.splitext(os.path.basename(p))[0]: p for p in paths}


def load_generator(path):
    """Loads a ``.keras`` generator saved by training (``safe_mode=True``)."""
    try:
        return keras.saving.load_model(path, safe_mode=True, compile=False)
    except Exception as error:  # noqa: BLE001 - one clear message instead of a deep trace
        raise ValueError(f"Could not load the generator {path}: {error}") from error


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
    generators = find_generators(checkpoint_dir)
    os.makedirs(output_dir, exist_ok=True)
    flags_path = os.path.join(checkpoint_dir, "flags.cfg")
    if os.path.isfile(flags_path):
        shutil.copyfile(flags_path, os.path.join(output_dir, "flags.cfg"))
    manifests = {}
    for name, path in generators.items():
        source = {"checkpoint": os.path.abspath(path),
                  "flags": os.path.abspath(flags_path) if os.path.isfile(flags_path) else None}
        manifests[name] = export_generator(load_generator(path), os.path.join(output_dir, name),
                                           source=source, **options)
    return manifests


# ----------------------------------------------------------------------------- CLI


def _define_flags():
    from absl import flags

    flags.DEFINE_string("checkpoint_dir", None, "Training run directory (its --output_dir), "
                        "holding generators/<name>.keras.")
    flags.DEFINE_string("output_dir", None, "Where to write the exports, e.g. "
                        "saved_models/NAME (one sub-directory per generator).")
    flags.DEFINE_list("tflite", list(DEFAULT_TFLITE), "TFLite variants: any of "
                      f"{', '.join(TFLITE_VARIANTS)}; empty for none.")
    flags.DEFINE_integer("tflite_size", 256, "Square input size of the TFLite files.")
    flags.DEFINE_string("verify_dir", None, "Folder of images to verify on (and calibrate "
                        "int8 with); default: built-in sample photos.")
    flags.DEFINE_integer("verify_max_images", 4, "At most this many --verify_dir images.")
    flags.DEFINE_bool("overwrite", False, "Replace existing export directories.")
    flags.mark_flags_as_required(["checkpoint_dir", "output_dir"])


def _load_folder_images(folder, limit):
    from kgan.translate import list_images, read_image

    images = []
    for path in list_images(folder):
        try:
            images.append(read_image(path))
        except ValueError:
            continue
        if len(images) >= limit:
            break
    if not images:
        raise FileNotFoundError(f"--verify_dir {folder} holds no readable images.")
    return images


def main(argv):
    """``python -m kgan.export``."""
    from absl import flags, logging

    del argv
    flags_ = flags.FLAGS
    tf.get_logger().setLevel("ERROR")  # keep TensorFlow's INFO chatter out of the progress log
    verify_images = (_load_folder_images(flags_.verify_dir, flags_.verify_max_images)
                     if flags_.verify_dir else None)
    try:
        manifests = export_run(flags_.checkpoint_dir, flags_.output_dir, tflite=flags_.tflite,
                               tflite_size=flags_.tflite_size, verify_images=verify_images,
                               overwrite=flags_.overwrite)
    except (FileNotFoundError, FileExistsError, ValueError, ExportVerificationError) as error:
        sys.exit(f"kgan.export: {error}")
    for name, manifest in manifests.items():
        check = manifest["saved_model"]["verification"]
        logging.info("%s: SavedModel %s (%.1f MB), serving_default max abs error %.2e, "
                     "translate_uint8 / translate_bytes within %d / %d uint8 levels",
                     name, os.path.join(flags_.output_dir, name, SAVED_MODEL_VERSION),
                     manifest["saved_model"]["size_bytes"] / 1e6, check["max_abs_error"],
                     check["translate_uint8_max_uint8_error"],
                     check["translate_bytes_max_uint8_error"])
        for variant, entry in manifest["tflite"].items():
            errors = entry["verification"]
            logging.info("%s: %s.tflite (%.2f MB) max abs error %.2e, mean %.2e (bounds %g, %g)",
                         name, variant, entry["size_bytes"] / 1e6, errors["max_abs_error"],
                         errors["mean_abs_error"], entry["bound"]["max"], entry["bound"]["mean"])
    print(json.dumps({name: os.path.join(flags_.output_dir, name, "manifest.json")
                      for name in manifests}))


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
