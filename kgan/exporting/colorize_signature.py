"""The SavedModel ``colorize_uint8`` signature of colourisation models and its verification.

``kgan.exporting.export`` calls ``add_colorize_endpoint`` for every model and, when it added the
signature (the model has a ``LumaChromaMerge`` head), ``verify_colorize_signature``. The
signature runs the whole inference of ``kgan.colorization.colorizer`` in the graph: uint8 images of
any size in, the gray render square through the model, the chroma upsampled and merged with the
full-resolution luma, uint8 of the same size out.
"""

import numpy as np
import tensorflow as tf

from kgan.colorization.colorizer import (
    PHOTO_RENDER_FACTOR,
    RENDER_MULTIPLE,
    VIDEO_RENDER_FACTOR,
    Colorizer,
    as_translator,
    colorize_float,
    rgb01_to_uint8,
)
from kgan.exporting.verify import (
    UINT8_TOLERANCE,
    ExportVerificationError,
    bound_failures,
    fidelity,
    run_in_fresh_tensorflow,
)
from kgan.metrics import color as color_metrics
from kgan.models.colorize import is_colorization_model
from kgan.serving.translators import make_translate_uint8

VERIFY_RENDER_FACTORS = (8, 21)
# The chroma (RGB minus its luma, in uint8 levels) of colorize_uint8's output against the
# Keras model's must beat a constant chroma (the model's mean) by this much. The one-level
# check alone passes a wrong model whose output is (nearly) gray: a tiny random colouriser
# (init gain 0.02) has chroma std 0.0 levels, and another seed's model matched it within one
# level. Measured with colorization_generator(num_downs=5, ngf=4, norm="none", init_gain=0.2),
# chroma std 16-27 levels: uint8 rounding leaves +20 to +28 dB, another seed's model -6.6 to
# -11.8 dB. Below the floor (a gray model) the signature is labelled unverified.
CHROMA_BOUND = {"min_margin_db": 10.0}


def colorize_signature_fn(model, multiple):
    """The ``colorize_uint8`` function of a colourisation model's SavedModel:
    ``(images uint8 (N, H, W, 3), render_factor int32 scalar) -> {"images": uint8 (N, H, W, 3)}``
    (stretch fit, as ``Colorizer`` by default)."""

    translate_uint8 = make_translate_uint8(model, multiple)

    def colorize_uint8(images, render_factor):
        size = RENDER_MULTIPLE * tf.maximum(render_factor, 1)
        rgb01 = tf.cast(images, tf.float32) / 255.0
        return {"images": rgb01_to_uint8(colorize_float(translate_uint8, rgb01, size))}

    return colorize_uint8


def add_colorize_endpoint(archive, model, multiple):
    """Adds ``colorize_uint8`` to an ``ExportArchive`` when ``model`` is a colourisation model.

    Returns:
        The signature's manifest description, or None (not a colourisation model).
    """
    if not is_colorization_model(model):
        return None
    archive.add_endpoint(
        "colorize_uint8", colorize_signature_fn(model, multiple),
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images"),
                         tf.TensorSpec((), tf.int32, name="render_factor")])
    return {"inputs": {"images": "uint8 (N, H, W, 3), any H, W (only the luma is used)",
                       "render_factor": "int32 scalar: the model runs at 16 * render_factor px "
                                        f"(DeOldify's; {PHOTO_RENDER_FACTOR} photos, "
                                        f"{VIDEO_RENDER_FACTOR} video)"},
            "outputs": {"images": "uint8 (N, H, W, 3), same size, the input's luma with the "
                                  "model's chroma"}}


# Reruns colorize_uint8 on each ``<image>_<render factor>`` input.
_COLORIZE_CHECK = r"""
for key in data.files:
    image, factor = key.rsplit("_", 1)
    outputs[key] = signatures["colorize_uint8"](
        images=tf.constant(data[key]),
        render_factor=tf.constant(int(factor), tf.int32))["images"].numpy()
"""


def _chroma(rgb_uint8):
    rgb = np.asarray(rgb_uint8, np.float64)
    return (rgb - color_metrics.rgb_luma(rgb)[..., None]) / 127.5


def verify_colorize_signature(saved_model_dir, model, images, factors=VERIFY_RENDER_FACTORS,
                              strict=True):
    """Reloads a SavedModel in a fresh TensorFlow-only process and checks ``colorize_uint8``
    against ``Colorizer`` on the Keras model (within one uint8 level), the luma of its
    outputs against the inputs' (within half a level plus float slack), and its chroma against
    the model's by ``CHROMA_BOUND`` (dB over a constant chroma), which a gray model cannot meet.

    Args:
        saved_model_dir: the SavedModel directory.
        model: the Keras colourisation model it was exported from.
        images: uint8 (H, W, 3) arrays.
        factors: the render factors to check.
        strict: when False, a chroma margin below ``CHROMA_BOUND`` (the model is too gray for
            the check to tell it from another model) is reported as
            ``"colorize_uint8_verified": False`` instead of raised.

    Returns:
        ``{"colorize_uint8_max_uint8_error": int, "colorize_uint8_max_luma_error": float,
        "colorize_uint8_chroma_margin_db": float, "colorize_uint8_verified": bool,
        "render_factors": [...]}`` (and ``"colorize_uint8_unverified"``, the reason).

    Raises:
        ExportVerificationError: a mismatch, a failed reload, or (``strict``) a chroma margin
            below ``CHROMA_BOUND``.
    """
    inputs = {f"{i}_{factor}": image[np.newaxis] for i, image in enumerate(images)
              for factor in factors}
    outputs = run_in_fresh_tensorflow(saved_model_dir, inputs, _COLORIZE_CHECK,
                                      "colorize_uint8")
    worst, worst_luma = 0, 0.0
    expected_chroma, actual_chroma = [], []
    translator = as_translator(model)  # one traced function for every size
    for key, batch in inputs.items():
        factor = int(key.rsplit("_", 1)[1])
        expected = Colorizer(translator, factor).colorize(batch[0])
        actual = outputs[key][0]
        if actual.shape != expected.shape:
            raise ExportVerificationError(f"colorize_uint8 returned shape {actual.shape} for an "
                                          f"image of shape {expected.shape}.")
        worst = max(worst, int(np.abs(actual.astype(int) - expected.astype(int)).max()))
        worst_luma = max(worst_luma, float(np.abs(color_metrics.rgb_luma(actual)
                                                  - color_metrics.rgb_luma(batch[0])).max()))
        expected_chroma.append(_chroma(expected).reshape(-1, 3))
        actual_chroma.append(_chroma(actual).reshape(-1, 3))
    if worst > UINT8_TOLERANCE or worst_luma > 0.5 + 1e-3:
        raise ExportVerificationError(
            f"SavedModel colorize_uint8 differs from the Keras model by {worst} uint8 levels "
            f"(bound {UINT8_TOLERANCE}) and from the input's luma by {worst_luma:.3f} levels "
            "(bound 0.5).")
    chroma = fidelity(np.concatenate(expected_chroma), np.concatenate(actual_chroma))
    result = {"colorize_uint8_max_uint8_error": worst, "colorize_uint8_max_luma_error": worst_luma,
              "colorize_uint8_chroma_margin_db": chroma["margin_db"],
              "colorize_uint8_verified": True, "render_factors": list(factors)}
    if bound_failures(chroma, CHROMA_BOUND):
        message = (f"SavedModel colorize_uint8's chroma is {chroma['margin_db']:+.1f} dB over a "
                   f"constant chroma (floor {CHROMA_BOUND['min_margin_db']:g} dB): the model's "
                   "output is too gray on the verify images for the check to tell it from "
                   "another model.")
        if strict:
            raise ExportVerificationError(message)
        result.update(colorize_uint8_verified=False, colorize_uint8_unverified=message)
    return result
