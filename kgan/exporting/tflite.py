"""TFLite files of a generator at a fixed square input: ``float32``, ``float16`` (float16
weights), ``dynamic`` (int8 weights, dynamic-range activations) and ``int8`` (full integer).

The route that gives the right numbers on TF 2.21 is an ``ExportArchive`` SavedModel converted
by ``TFLiteConverter.from_saved_model`` with builtin ops only (a tf.function of a Keras 3 model
gave wrong numbers: ARCHITECTURE.md, "traps"). Called by kgan.exporting.export, which verifies
each file (kgan.exporting.verify).
"""

import tempfile

import keras
import numpy as np
import tensorflow as tf

from kgan.core.errors import UsageError
from kgan.core.tf_import import native_lines_dropped
from kgan.exporting.verify import resize_square
from kgan.serving.translators import TFLiteRunner

TFLITE_VARIANTS = ("float32", "float16", "dynamic", "int8")
DEFAULT_TFLITE = ("float32", "float16", "dynamic")


def _representative_batches(images, size):
    """Yields float32 (1, size, size, 3) batches for int8 calibration (each image and its
    mirror, resized to ``size``)."""
    for image in images:
        x = resize_square(image, size)
        yield [x]
        yield [x[:, :, ::-1, :].copy()]


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
        raise UsageError(f"Unknown TFLite variant {variant!r}; use one of "
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
        with native_lines_dropped("Ignored output_format", "Ignored drop_control_dependency"):
            flatbuffer = converter.convert()
    with open(tflite_path, "wb") as f:
        f.write(flatbuffer)
    return len(flatbuffer)


def parse_variants(tflite):
    if isinstance(tflite, str):
        tflite = [v for v in tflite.split(",") if v.strip()]
    variants = [v.strip() for v in tflite]
    unknown = [v for v in variants if v not in TFLITE_VARIANTS]
    if unknown:
        raise UsageError(f"Unknown TFLite variant(s) {unknown}; use any of "
                         f"{', '.join(TFLITE_VARIANTS)} (comma-separated), or none.")
    return list(dict.fromkeys(variants))


def input_contract(path):
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


def litert_version():
    try:
        from importlib.metadata import version
        return version("ai-edge-litert")
    except Exception:  # noqa: BLE001 - the version is informational only
        return "unknown"
