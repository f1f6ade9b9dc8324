"""DeOldify's own pre- and post-processing around a colouriser, reproduced in numpy + PIL so
that a converted DeOldify model gives the picture DeOldify gives (jantic/DeOldify
``deoldify/filters.py``, MIT licence; REFERENCE.md section 7.1).

DeOldify's ``ColorizerFilter`` (i) stretches the RGB original to a ``16 * render_factor``
square with PIL ``BILINEAR`` (which antialiases when it shrinks), (ii) makes it gray with PIL
``LA`` copied to 3 channels, (iii) runs the model on ``gray / 255`` ImageNet-normalised, (iv)
denormalises, clamps to [0, 1] and TRUNCATES ``x * 255`` to uint8, (v) resizes that square back
to the original size with PIL ``BILINEAR`` and (vi) keeps Y of the original and U, V of the
model output through OpenCV's 8-bit integer YUV. It hands RGB arrays to ``COLOR_BGR2YUV`` /
``COLOR_YUV2BGR``, so its "Y" weighs red 0.114 and blue 0.299; ``opencv_bgr2yuv`` /
``opencv_yuv2bgr`` reproduce OpenCV's fixed-point formulas bit for bit (checked against cv2 over
all 2^24 inputs in the tests) and are applied to RGB arrays the same way, so OpenCV is no
runtime dependency. Steps (iii)-(iv) are the kgan model itself (``ImageNetPreprocess("torch")``
-> network -> ``SigmoidRange(-3, 3)`` -> ``DeOldifyOutput``, kgan.models.deoldify); the
truncation needs the translator's float output (``translate_float``; a translator without it,
e.g. a worker process, gives rounded uint8).

``resolve_pipeline`` picks DeOldify's pipeline for DeOldify models (``is_deoldify_model``, or an
export whose manifest says ``"pipeline": "deoldify"``) and kgan's own (luma kept exactly, float
BT.601 merge, kgan.colorization.colorizer) otherwise. Called by ``Colorizer``.
"""

import numpy as np
from PIL import Image

from kgan.core.errors import UsageError
from kgan.models.colorize import is_colorization_model
from kgan.models.deoldify import is_deoldify_model
from kgan.serving import exports

PIPELINES = ("auto", "deoldify", "kgan")

# OpenCV's 8-bit RGB <-> YUV constants (imgproc/src/color_yuv.simd.hpp; 14-bit fixed point).
_SHIFT = 14
_R2Y, _G2Y, _B2Y = 4899, 9617, 1868
_B2UI, _R2VI = 8061, 14369
_U2BI, _U2GI, _V2GI, _V2RI = 33292, -6472, -9519, 18678


def _descale(x):
    return (x + (1 << (_SHIFT - 1))) >> _SHIFT  # CV_DESCALE: round half up, floor shift


def opencv_bgr2yuv(pixels):
    """``cv2.cvtColor(pixels, cv2.COLOR_BGR2YUV)`` for uint8 (..., 3): channel 0 is taken as
    blue, as OpenCV does whatever the array holds."""
    p = np.asarray(pixels, np.int32)
    b, g, r = p[..., 0], p[..., 1], p[..., 2]
    y = _descale(b * _B2Y + g * _G2Y + r * _R2Y)
    u = _descale((b - y) * _B2UI + (128 << _SHIFT))
    v = _descale((r - y) * _R2VI + (128 << _SHIFT))
    return np.clip(np.stack([y, u, v], axis=-1), 0, 255).astype(np.uint8)


def opencv_yuv2bgr(yuv):
    """``cv2.cvtColor(yuv, cv2.COLOR_YUV2BGR)`` for uint8 (..., 3)."""
    p = np.asarray(yuv, np.int32)
    y, u, v = p[..., 0], p[..., 1] - 128, p[..., 2] - 128
    b = y + _descale(u * _U2BI)
    g = y + _descale(u * _U2GI + v * _V2GI)
    r = y + _descale(v * _V2RI)
    return np.clip(np.stack([b, g, r], axis=-1), 0, 255).astype(np.uint8)


def pil_resize(rgb, width, height):
    """uint8 (H, W, 3) -> (height, width, 3) with PIL's ``BILINEAR`` (a triangle filter
    widened by the scale when shrinking), as DeOldify's ``_scale_to_square`` / ``_unsquare``."""
    return np.asarray(Image.fromarray(np.ascontiguousarray(rgb, np.uint8)).resize(
        (int(width), int(height)), resample=Image.Resampling.BILINEAR))


def model_input(rgb, size):
    """DeOldify's model input: the RGB original (H, W, 3) uint8 stretched to ``size`` x
    ``size``, PIL gray (``L``: BT.601 in fixed point) copied to 3 channels, (1, size, size, 3)."""
    gray = np.asarray(Image.fromarray(pil_resize(rgb, size, size)).convert("L"))
    return np.repeat(gray[np.newaxis, ..., np.newaxis], 3, axis=-1)


def run_square(translator, square):
    """The model on a gray uint8 square batch, its [-1, 1] output truncated to uint8 as
    DeOldify's ``image2np(out * 255).astype(np.uint8)`` (rounded when the translator has no
    ``translate_float``)."""
    run_float = getattr(translator, "translate_float", None)
    if run_float is None:
        return np.asarray(translator(square), np.uint8)
    out01 = (np.asarray(run_float(square), np.float32) + 1.0) * 0.5
    return np.clip(out01 * 255.0, 0.0, 255.0).astype(np.uint8)


def post_process(square, rgb):
    """DeOldify's ``_post_process``: the model's uint8 square (size, size, 3) resized back to
    the original ``rgb`` (H, W, 3) with PIL bilinear; Y from the original, U and V from the
    model (OpenCV integer YUV on RGB arrays, as DeOldify calls it). uint8 (H, W, 3)."""
    colour = pil_resize(square, rgb.shape[1], rgb.shape[0])
    merged = opencv_bgr2yuv(rgb)
    merged[..., 1:] = opencv_bgr2yuv(colour)[..., 1:]
    return opencv_yuv2bgr(merged)


def colorize_deoldify(translator, rgb, size):
    """DeOldify's whole pipeline on one uint8 RGB image (H, W, 3) at a ``size`` square."""
    return post_process(run_square(translator, model_input(rgb, size))[0], rgb)


def _path_of(translator):
    runner = getattr(translator, "runner", None)  # a TFLiteTranslator
    return getattr(translator, "path", None) or getattr(runner, "path", None)


def detect_pipeline(translator):
    """``"deoldify"`` for a DeOldify colouriser (a Keras model ending in ``DeOldifyOutput``, or
    an export whose manifest says so), else ``"kgan"``."""
    model = getattr(translator, "model", None)
    if model is not None:
        return "deoldify" if is_deoldify_model(model) else "kgan"
    path = _path_of(translator)
    return exports.pipeline(path) if path else "kgan"


def is_colorizer(translator):
    """True when ``translator`` runs a kgan colouriser or a DeOldify one (None: unknown)."""
    model = getattr(translator, "model", None)
    if model is not None:
        return is_colorization_model(model) or is_deoldify_model(model)
    return detect_pipeline(translator) == "deoldify" or None


def resolve_pipeline(translator, pipeline="auto", fit="stretch"):
    """The pre/post-processing to run: ``deoldify`` or ``kgan`` (``auto``: DeOldify's for
    DeOldify models, which were trained and tuned with it, kgan's for kgan's colourisers).

    Raises:
        UsageError: an unknown name, or ``fit="pad"`` with DeOldify's pipeline (it stretches).
    """
    if pipeline not in PIPELINES:
        raise UsageError(f"Unknown pipeline {pipeline!r}; use one of {', '.join(PIPELINES)}.")
    if pipeline == "auto":
        pipeline = detect_pipeline(translator)
    if pipeline == "deoldify" and fit != "stretch":
        raise UsageError(f"fit={fit!r} is kgan's pipeline; DeOldify's stretches the image to "
                         "the render square. Use fit=stretch, or pipeline=kgan to pad.")
    return pipeline
