"""Colourises photos and frames of any size with a colourisation model, DeOldify-style but
keeping the input sharp: the model runs on a small gray square (``render_factor`` x 16 px), only
its chroma is kept, upsampled bilinearly to full size and merged with the ORIGINAL full-resolution
luma (``kgan.models.colorize.merge_luma_chroma``), so the output's luma is the input's up to uint8
rounding whatever the render size. DeOldify's own colourisers run with DeOldify's pre- and
post-processing instead (``pipeline``; kgan.colorization.deoldify_pipeline).

Also here: the render factor's defaults and checks, choosing it per image
(``render_factor="auto"``), falling back to a smaller render size when memory runs out (never a
silent gray image), telling a model that is not a colouriser (``not_a_colorizer``), and
colourising a file or folder into PNGs. Models are loaded by ``kgan.serving.loading``. Scoring
and checkpoint selection are in ``kgan.colorization.scoring``, the SavedModel signature in
``kgan.exporting.colorize_signature``.

Called by ``kgan.cli.colorize`` (photos, folders, video frames),
``kgan.exporting.colorize_signature``, ``kgan.colorization.scoring`` and the colourisation recipe.
"""

import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kgan.colorization import deoldify_pipeline as deoldify
from kgan.core.errors import KganError, UsageError
from kgan.data.images import load_image_with_alpha, plan_outputs, write_image
from kgan.models.colorize import chroma, is_colorization_model, luma, merge_luma_chroma
from kgan.serving import exports, runs
from kgan.serving.translators import KerasTranslator

RENDER_MULTIPLE = 16
PHOTO_RENDER_FACTOR = 35
VIDEO_RENDER_FACTOR = 21
MIN_RENDER_FACTOR = 4
AUTO_FACTORS = (14, 21, 28, 35, 42)
FITS = ("stretch", "pad")
_AUTO_COMPARE_SIDE = 256
_OUT_OF_MEMORY = (tf.errors.ResourceExhaustedError, MemoryError)


def default_render_factor(video=False):
    """DeOldify's recommended render factor: 21 for video frames, 35 for photos."""
    return VIDEO_RENDER_FACTOR if video else PHOTO_RENDER_FACTOR


def render_factor_for_eval_size(eval_size):
    """The render factor a colourisation run scores its checkpoints at: ``--eval_size`` / 16."""
    return max(1, int(eval_size) // RENDER_MULTIPLE)


def recommended_render_factor(model_path):
    """The render factor a model was trained and scored at, or None when nothing says.

    Args:
        model_path: an export folder (its manifest's ``render_factor``), a run folder or a
            ``RUN/generators/NAME.keras`` file (the run's ``--eval_size`` / 16).
    """
    if not model_path:
        return None
    if model_path.endswith(".keras"):  # RUN/generators/NAME.keras
        run_dir = os.path.dirname(os.path.dirname(os.path.abspath(model_path)))
    else:
        manifest = exports.read_manifest(model_path) if os.path.exists(model_path) else {}
        if manifest.get("render_factor"):
            return int(manifest["render_factor"])
        run_dir = model_path
    eval_size = runs.read_flags(run_dir).get("eval_size")
    return render_factor_for_eval_size(eval_size) if eval_size else None


def check_render_factor(value, video=False):
    """A render factor as given by a user or a caller: a positive integer, ``"auto"``, or
    None / ``""`` for the default (``default_render_factor(video)``); text is parsed.

    Returns:
        An int, or ``"auto"``.

    Raises:
        UsageError: anything else (one line naming what is accepted).
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return default_render_factor(video)
    if isinstance(value, str):
        if value.strip().lower() == "auto":
            return "auto"
        try:
            value = int(value)
        except ValueError:
            value = 0
    if isinstance(value, (bool, float)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise UsageError(f"render_factor={value!r}: use a positive integer (the model runs at "
                         f"{RENDER_MULTIPLE} x N px) or auto.")
    return int(value)


class ColorizeError(KganError, RuntimeError):
    """Colourisation could not produce a coloured image (the message says why and what to do)."""


class ColorizeOutOfMemoryError(ColorizeError, MemoryError):
    """Even the smallest render size ran out of memory."""


# ----------------------------------------------------------------------------- graph pieces
# TensorFlow ops only, so the same code runs eagerly (Python inference) and inside the
# SavedModel's colorize_uint8 signature.


def rgb01_to_uint8(rgb01):
    """float RGB in [0, 1] -> uint8, rounded and clipped."""
    return tf.cast(tf.clip_by_value(tf.round(rgb01 * 255.0), 0.0, 255.0), tf.uint8)


def _edge_indices(length, before, after):
    return tf.clip_by_value(tf.range(-before, length + after), 0, length - 1)


def render_input(y, size, fit="stretch"):
    """The model's input: luma ``y`` (N, H, W, 1) in [0, 1] as a gray uint8 (N, size, size, 3).

    Args:
        y: full-resolution luma.
        size: the render square's side (int or scalar tensor).
        fit: ``stretch`` (aspect ratio discarded, as DeOldify) or ``pad`` (longer side to
            ``size``, the rest filled by repeating the edge pixels).

    Returns:
        ``(square, box)``: the uint8 square and the ``(top, left, height, width)`` of the image
        inside it.
    """
    shape = tf.shape(y)
    height, width = shape[1], shape[2]
    size = tf.cast(size, tf.int32)
    if fit == "stretch":
        inner_h, inner_w = size, size
    elif fit == "pad":
        scale = tf.cast(size, tf.float32) / tf.cast(tf.maximum(height, width), tf.float32)
        inner_h = tf.clip_by_value(tf.cast(tf.round(tf.cast(height, tf.float32) * scale),
                                           tf.int32), 1, size)
        inner_w = tf.clip_by_value(tf.cast(tf.round(tf.cast(width, tf.float32) * scale),
                                           tf.int32), 1, size)
    else:
        raise UsageError(f"Unknown fit {fit!r}; use one of {', '.join(FITS)}.")
    small = tf.image.resize(y, tf.stack([inner_h, inner_w]), method="bilinear", antialias=True)
    top, left = (size - inner_h) // 2, (size - inner_w) // 2
    small = tf.gather(small, _edge_indices(inner_h, top, size - inner_h - top), axis=1)
    small = tf.gather(small, _edge_indices(inner_w, left, size - inner_w - left), axis=2)
    gray = rgb01_to_uint8(small)
    return tf.concat([gray, gray, gray], axis=-1), (top, left, inner_h, inner_w)


def square_chroma(output, box, height, width):
    """The chroma (N, height, width, 2) of the model's uint8 square output: the image's box
    cropped out and resized bilinearly to the full size."""
    top, left, inner_h, inner_w = box
    uv = chroma(tf.cast(output, tf.float32) / 255.0)[:, top:top + inner_h, left:left + inner_w]
    return tf.image.resize(uv, tf.stack([height, width]), method="bilinear", antialias=True)


def colorize_float(run_square, rgb01, size, fit="stretch"):
    """Colourises float RGB (N, H, W, 3) in [0, 1] (gray or colour): float RGB out, luma kept.

    Args:
        run_square: uint8 (N, size, size, 3) -> uint8 (N, size, size, 3), the model.
        rgb01: the images.
        size: the render square's side.
        fit: see ``render_input``.
    """
    shape = tf.shape(rgb01)
    y = luma(rgb01)
    square, box = render_input(y, size, fit)
    uv = square_chroma(run_square(square), box, shape[1], shape[2])
    return merge_luma_chroma(y, uv)


# ----------------------------------------------------------------------------- Colorizer


def _as_rgb01(image):
    """uint8 / uint16 (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) -> (float32 RGB in [0, 1],
    alpha uint8 or None)."""
    image = np.asarray(image)
    if image.dtype == np.uint8:
        scale = 255.0
    elif image.dtype == np.uint16:
        scale = 65535.0
    else:
        raise UsageError(f"colorize takes uint8 or uint16 images, got {image.dtype}.")
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 2, 3, 4) or min(image.shape[:2]) < 1:
        raise UsageError(f"colorize takes (H, W), (H, W, 1|3|4) images, got {image.shape}.")
    alpha = None
    if image.shape[-1] in (2, 4):
        alpha = image[..., -1]
        if scale > 255:
            alpha = np.round(alpha / 257.0)
        alpha = alpha.astype(np.uint8)
        image = image[..., :-1]
    if image.shape[-1] == 1:
        image = np.repeat(image, 3, axis=-1)
    return image.astype(np.float32) / scale, alpha


def as_translator(model):
    """A uint8 batch -> uint8 batch callable (``fixed_size`` attribute) for a Keras model, or
    ``model`` itself when it already is one (``kgan.translate`` translators)."""
    if isinstance(model, keras.Model):
        return KerasTranslator(model)
    if not callable(model):
        raise UsageError(f"Expected a keras.Model or a translator, got {type(model).__name__}.")
    return model


class Colorizer:
    """Colourises images one by one with a model, remembering a smaller render factor after
    running out of memory.

    Args:
        model: a colourisation ``keras.Model`` or a translator (``kgan.serving.loading``).
        render_factor: the model runs at ``16 * render_factor`` px, or ``"auto"`` (the factor
            of ``auto_factors`` whose chroma agrees best with the per-pixel median over all of
            them). A fixed-size (TFLite) model always runs at its own size.
        fit: ``stretch`` (DeOldify's) or ``pad``; see ``render_input``.
        pipeline: ``deoldify`` (DeOldify's resize, gray, truncation and integer YUV merge:
            its picture exactly), ``kgan`` (luma kept exactly) or ``auto``: ``deoldify`` for a
            DeOldify model (kgan.colorization.deoldify_pipeline), else ``kgan``.
        min_render_factor: the smallest factor tried after running out of memory.
        auto_factors: the sweep of ``render_factor="auto"``.
        log: called with a message when falling back to a smaller render size.

    Example:

    >>> import numpy as np
    >>> from kgan.models import colorization_generator
    >>> colorizer = Colorizer(colorization_generator(num_downs=5, ngf=8), render_factor=4)
    >>> gray = np.full((48, 80), 128, np.uint8)
    >>> colour = colorizer.colorize(gray)  # the model runs at 16 * 4 = 64 px
    >>> colour.shape, colour.dtype.name
    ((48, 80, 3), 'uint8')
    """

    def __init__(self, model, render_factor=PHOTO_RENDER_FACTOR, fit="stretch",
                 min_render_factor=MIN_RENDER_FACTOR, auto_factors=AUTO_FACTORS,
                 log=logging.warning, pipeline="auto"):
        self.translator = as_translator(model)
        self.pipeline = deoldify.resolve_pipeline(self.translator, pipeline, fit)
        self.fixed_size = getattr(self.translator, "fixed_size", None)
        render_factor = check_render_factor(render_factor)
        self.auto = render_factor == "auto"
        if self.auto and self.fixed_size:
            raise UsageError(f"render_factor=auto needs a model that takes any size; this one "
                             f"runs at a fixed {self.fixed_size} px (TFLite). Use a SavedModel "
                             "export or a .keras file.")
        if fit not in FITS:
            raise UsageError(f"Unknown fit {fit!r}; use one of {', '.join(FITS)}.")
        self.render_factor = None if self.auto else int(render_factor)
        self.fit = fit
        self.min_render_factor = max(1, int(min_render_factor))
        self.auto_factors = tuple(sorted(int(f) for f in auto_factors))
        self.log = log
        self.fallbacks = []          # (from factor, to factor), in order
        self.last_render_factor = None

    def _run_square(self, square):
        return tf.constant(np.asarray(self.translator(square.numpy())), tf.uint8)

    def _size(self, factor):
        return self.fixed_size or RENDER_MULTIPLE * factor

    def _square(self, y, factor):
        """(model output square, box) at ``factor`` from the luma (kgan) or the uint8 RGB
        (DeOldify); raises the out-of-memory errors."""
        size = self._size(factor)
        if self.pipeline == "deoldify":
            square = deoldify.model_input(np.asarray(y)[0], size)
            return deoldify.run_square(self.translator, square), (0, 0, size, size)
        square, box = render_input(y, size, self.fit)
        return self._run_square(square), box

    def _square_with_fallback(self, y, factor):
        while True:
            try:
                return factor, self._square(y, factor)
            except _OUT_OF_MEMORY as error:
                smaller = max(self.min_render_factor, int(factor * 0.75))
                if self.fixed_size or factor <= self.min_render_factor or smaller >= factor:
                    where = (f"the model's fixed size {self.fixed_size} px" if self.fixed_size
                             else f"render size {self._size(factor)} px (render factor "
                                  f"{factor}), the smallest allowed")
                    raise ColorizeOutOfMemoryError(
                        f"Out of memory at {where}; free memory, or run on the CPU "
                        f"(CUDA_VISIBLE_DEVICES=) ({type(error).__name__}).") from error
                self.log(f"kgan.colorize: out of memory at render factor {factor} "
                         f"({self._size(factor)} px); retrying at {smaller} "
                         f"({self._size(smaller)} px).")
                self.fallbacks.append((factor, smaller))
                factor = smaller
                if not self.auto:
                    self.render_factor = smaller  # later images start there

    def _auto_square(self, y):
        """The sweep of ``render_factor="auto"``: (factor, (square, box))."""
        height, width = int(y.shape[1]), int(y.shape[2])
        scale = min(1.0, _AUTO_COMPARE_SIDE / max(height, width))
        small = (max(1, round(height * scale)), max(1, round(width * scale)))
        results, chromas = {}, {}
        for factor in self.auto_factors:
            try:
                results[factor] = self._square(y, factor)
            except _OUT_OF_MEMORY:
                self.log(f"kgan.colorize: render_factor=auto skips factor {factor} "
                         f"({self._size(factor)} px): out of memory.")
                continue
            chromas[factor] = square_chroma(results[factor][0], results[factor][1],
                                            *small).numpy()
        if not results:
            floor = min(self.auto_factors)
            return self._square_with_fallback(y, max(self.min_render_factor, floor - 1))
        factor = choose_by_median(chromas)
        return factor, results[factor]

    def colorize(self, image):
        """Colourises one image.

        Args:
            image: uint8 or uint16, (H, W) gray, (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA
                (only the luma is used; alpha is kept).

        Returns:
            uint8 (H, W, 3), or (H, W, 4) with the input's alpha; its BT.601 luma is the
            input's within half a level (kgan's pipeline; DeOldify's keeps its own Y).

        Raises:
            ColorizeOutOfMemoryError: even the smallest render size ran out of memory.
        """
        rgb01, alpha = _as_rgb01(image)
        rgb01 = tf.constant(rgb01[np.newaxis])
        y = rgb01_to_uint8(rgb01).numpy() if self.pipeline == "deoldify" else luma(rgb01)
        if self.auto:
            factor, (output, box) = self._auto_square(y)
        else:
            factor, (output, box) = self._square_with_fallback(y, self.render_factor)
        self.last_render_factor = factor
        if self.pipeline == "deoldify":
            result = deoldify.post_process(np.asarray(output)[0], y[0])
        else:
            uv = square_chroma(output, box, rgb01.shape[1], rgb01.shape[2])
            result = rgb01_to_uint8(merge_luma_chroma(y, uv))[0].numpy()
        if alpha is not None:
            result = np.concatenate([result, alpha[..., None]], axis=-1)
        return result

    __call__ = colorize


def choose_by_median(chromas):
    """The key of ``chromas`` ({factor: (h, w, 2) or (1, h, w, 2) chroma}) closest on average
    to the per-pixel median over all of them (ties: the smaller factor)."""
    factors = sorted(chromas)
    stack = np.stack([np.asarray(chromas[f], np.float64).reshape(-1, 2) for f in factors])
    median = np.median(stack, axis=0)
    distances = np.linalg.norm(stack - median, axis=-1).mean(axis=-1)
    return factors[int(np.argmin(distances))]


def colorize_image(model, image, render_factor=PHOTO_RENDER_FACTOR, fit="stretch", **options):
    """Colourises one image (see ``Colorizer.colorize``); ``options`` go to ``Colorizer``."""
    return Colorizer(model, render_factor, fit, **options).colorize(image)


def not_a_colorizer(translator, path):
    """Why ``translator`` is not a colourisation model, in one line naming what it is and what
    to use instead; None when it is one (or when that cannot be told: a ``.tflite`` file).

    A model without kgan's luma-preserving head (a ``.keras`` generator) or an export without a
    ``colorize_uint8`` signature only translates RGB: run on a gray image it gives gray back.

    Args:
        translator: from ``kgan.serving.loading.load_model``.
        path: the model's path, for the message.
    """
    use = ("Use a --model=colorize run's generators/generator.keras or its export "
           "(python -m kgan.export); run this model with python -m kgan.translate.")
    model = getattr(translator, "model", None)
    loaded = getattr(translator, "loaded", None)
    if deoldify.is_colorizer(translator):
        return None
    if model is not None and not is_colorization_model(model):
        return (f"{path} is not a colourisation model: a {model.name} generator "
                f"({model.count_params():,} parameters) without kgan's luma-preserving colour "
                f"head, so it would write gray images. {use}")
    if loaded is not None and "colorize_uint8" not in loaded.signatures:
        exported = exports.read_manifest(translator.path).get("model", {}).get("name")
        what = f"an export of a {exported} generator" if exported else "a SavedModel"
        return (f"{path} is not a colourisation model: {what} without a colorize_uint8 "
                f"signature, so it would write gray images. {use}")
    return None


# ----------------------------------------------------------------------------- files


def colorize_files(colorizer, input_path, output_dir, fmt="png", progress=None, log=print):
    """Colourises an image file or a folder of images into ``output_dir``.

    Args:
        colorizer: a ``Colorizer``.
        input_path: an image file or a folder (not recursive).
        output_dir: created; outputs keep the input names with the ``fmt`` extension.
        fmt: ``png`` (keeps alpha) or ``jpg``.
        progress: called as ``progress(done, total, name)`` after each image (or None).
        log: called with each message about skipped files.

    Returns:
        ``{"colorized": n, "outputs": [paths], "skipped": [(path, reason)], "seconds": s,
        "render_factors": {path: factor}, "out_of_memory": bool (a smaller render factor was
        used), "render_factor": the factor later images start at}``.
    """
    if fmt not in ("png", "jpg"):
        raise UsageError(f"Unknown output format {fmt!r}; use png or jpg.")
    planned = plan_outputs(input_path, output_dir, fmt)
    paths = list(planned)
    start = time.time()
    outputs, skipped, factors = [], [], {}
    for done, path in enumerate(paths, 1):
        try:
            rgb, alpha = load_image_with_alpha(path)
        except Exception as error:  # noqa: BLE001 - any decoding failure skips the file
            skipped.append((path, f"{type(error).__name__}: {error}"))
            log(f"kgan.colorize: skipped {os.path.basename(path)}: not a readable image")
        else:
            image = rgb if alpha is None else np.concatenate([rgb, alpha[..., None]], axis=-1)
            out_path = planned[path]
            write_image(out_path, colorizer.colorize(image))
            outputs.append(out_path)
            factors[path] = colorizer.last_render_factor
        if progress:
            progress(done, len(paths), os.path.basename(path))
    return {"colorized": len(outputs), "outputs": outputs, "skipped": skipped,
            "seconds": time.time() - start, "render_factors": factors,
            "out_of_memory": bool(colorizer.fallbacks), "render_factor": colorizer.render_factor}
