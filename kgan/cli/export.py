"""``python -m kgan.export``: exports every generator of a training run as a SavedModel (TF
Serving) plus TFLite files, each verified numerically against the Keras model.

Example::

    python -m kgan.export --checkpoint_dir=runs/quickstart --output_dir=saved_models/quickstart \\
        [--tflite=float32,float16,dynamic] [--tflite_size=256] [--overwrite]

Each generator lands in ``OUTPUT_DIR/<AtoB|BtoA|generator>/`` (layout in kgan.exporting.export).
With ``--overwrite`` the previous export is replaced only after the new one is complete and
verified.
"""

import json
import os

import tensorflow as tf
from absl import flags, logging

from kgan.cli.common import run_cli
from kgan.data.images import ImageNotFoundError, ImageReadError, list_images, load_image
from kgan.exporting.export import export_run
from kgan.exporting.tflite import DEFAULT_TFLITE, TFLITE_VARIANTS
from kgan.serving.exports import MANIFEST, SAVED_MODEL_VERSION


def define_flags():
    if "verify_max_images" in flags.FLAGS:
        return
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
    flags.DEFINE_bool("overwrite", False, "Replace existing exports (only once the new ones "
                      "are written and verified).")
    flags.DEFINE_bool("onnx", False, "Also write model.onnx (tf2onnx, verified with "
                      "onnxruntime; needs pip install -e \".[onnx]\").")
    flags.mark_flags_as_required(["checkpoint_dir", "output_dir"])


def load_folder_images(folder, limit):
    """Up to ``limit`` readable images of ``folder`` (unreadable ones skipped)."""
    images = []
    for path in list_images(folder):
        try:
            images.append(load_image(path))
        except ImageReadError:
            continue
        if len(images) >= limit:
            break
    if not images:
        raise ImageNotFoundError(f"--verify_dir {folder} holds no readable images.")
    return images


def run(f):
    tf.get_logger().setLevel("ERROR")  # keep TensorFlow's INFO chatter out of the progress log
    verify_images = (load_folder_images(f.verify_dir, f.verify_max_images)
                     if f.verify_dir else None)
    manifests = export_run(f.checkpoint_dir, f.output_dir, tflite=f.tflite,
                           tflite_size=f.tflite_size, verify_images=verify_images,
                           overwrite=f.overwrite, onnx=f.onnx)
    for name, manifest in manifests.items():
        check = manifest["saved_model"]["verification"]
        logging.info("%s: SavedModel %s (%.1f MB), serving_default max abs error %.2e, "
                     "translate_uint8 / translate_bytes within %d / %d uint8 levels",
                     name, os.path.join(f.output_dir, name, SAVED_MODEL_VERSION),
                     manifest["saved_model"]["size_bytes"] / 1e6, check["max_abs_error"],
                     check["translate_uint8_max_uint8_error"],
                     check["translate_bytes_max_uint8_error"])
        for variant, entry in manifest["tflite"].items():
            errors = entry["verification"]
            logging.info("%s: %s.tflite (%.2f MB) %s: max abs error %.2e, mean %.2e, PSNR %.1f "
                         "dB (floor %g), %+.1f dB over a constant image (floor %g)", name,
                         variant, entry["size_bytes"] / 1e6,
                         "verified" if entry["verified"] else "UNVERIFIED",
                         errors["max_abs_error"], errors["mean_abs_error"], errors["psnr_db"],
                         entry["bound"]["min_psnr_db"], errors["margin_db"],
                         entry["bound"]["min_margin_db"])
        if "onnx" in manifest:
            logging.info("%s: model.onnx (%.2f MB) max abs error %s", name,
                         manifest["onnx"]["size_bytes"] / 1e6,
                         manifest["onnx"].get("verification", {}).get("max_abs_error"))
    print(json.dumps({name: os.path.join(f.output_dir, name, MANIFEST)
                      for name in manifests}))


def main(argv=None):
    run_cli("kgan.export", run, define_flags, doc=__doc__, argv=argv)
