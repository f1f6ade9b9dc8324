"""Crappify: synthetic degradations that make (degraded, clean) pairs for restoration.

As fastai's crappifier (course-v3 ``crappify.py``) and DeOldify, as tf.data ops. The
degradations, always applied in the order of ``DEGRADATIONS`` whatever order they are named:

- ``grayscale``: 3-channel gray (colourisation).
- ``blur``: Gaussian blur, sigma uniform in ``blur_sigma`` (pixels).
- ``downscale``: bilinear downscale by a factor uniform in ``scale_range``, then bilinear
  upscale back to the original size (super-resolution).
- ``noise``: additive Gaussian noise, sigma uniform in ``noise_sigma`` (0..255 scale).
- ``text``: a random number (10-99) drawn in white at a random point in the top-left quadrant
  (Pillow's default font, about 1/8 of the image side).
- ``jpeg``: JPEG re-encoding at a quality uniform in ``jpeg_quality`` (default 10-70, as fastai).

``crappify`` takes and returns uint8 ``(h, w, 3)`` images; every random draw comes from the
seed, so the same seed gives the same degraded image.
"""

import functools
import os
import zlib

import numpy as np
import tensorflow as tf
from absl import logging
from PIL import Image, ImageDraw, ImageFont

from kgan.data import samples
from kgan.data.augment import resize_uint8, to_float
from kgan.data.folders import finish_dataset, resolve_seed
from kgan.data.images import (
    DataError,
    ImageNotFoundError,
    ImageReadError,
    list_images,
    load_image,
    write_image,
)
from kgan.data.sources import DatasetInfo, ImageSource, scan_folder

DEGRADATIONS = ("grayscale", "blur", "downscale", "noise", "text", "jpeg")
DEFAULT_DEGRADATIONS = ("downscale", "jpeg")
_BLUR_RADIUS = 4  # Kernel size 9 covers sigma up to ~2 px.


def parse_degradations(degradations):
    """Validates degradation names.

    Args:
        degradations: a comma-separated string or a sequence of names from ``DEGRADATIONS``.

    Returns:
        The names as a tuple, in the order they will be applied.

    Raises:
        DataError: an unknown name, or none at all.
    """
    if isinstance(degradations, str):
        degradations = [d for d in degradations.split(",")]
    names = [d.strip() for d in degradations if d and d.strip()]
    unknown = [d for d in names if d not in DEGRADATIONS]
    if unknown:
        raise DataError(f"Unknown degradation(s) {', '.join(unknown)}; choose from "
                        f"{', '.join(DEGRADATIONS)}.")
    if not names:
        raise DataError(f"Choose at least one degradation from {', '.join(DEGRADATIONS)}.")
    return tuple(d for d in DEGRADATIONS if d in names)


def _as_seed(seed):
    if isinstance(seed, (int, np.integer)):
        return tf.constant([int(seed), 0], tf.int64)
    return tf.cast(seed, tf.int64)


def _uniform(seed, salt, bounds):
    return tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, salt),
                                       minval=float(bounds[0]), maxval=float(bounds[1]))


def _uniform_int(seed, salt, low, high):
    """An int32 uniform in [low, high] (inclusive)."""
    return tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, salt),
                                       minval=low, maxval=high + 1, dtype=tf.int32)


def _gaussian_blur(image, sigma):
    taps = tf.range(-_BLUR_RADIUS, _BLUR_RADIUS + 1, dtype=tf.float32)
    kernel = tf.exp(-0.5 * tf.square(taps / sigma))
    kernel /= tf.reduce_sum(kernel)
    padded = tf.pad(image[None], [[0, 0], [_BLUR_RADIUS] * 2, [_BLUR_RADIUS] * 2, [0, 0]],
                    mode="SYMMETRIC")
    row = tf.tile(tf.reshape(kernel, [1, -1, 1, 1]), [1, 1, 3, 1])
    column = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, 3, 1])
    out = tf.nn.depthwise_conv2d(padded, row, [1, 1, 1, 1], "VALID")
    out = tf.nn.depthwise_conv2d(out, column, [1, 1, 1, 1], "VALID")
    return out[0]


@functools.lru_cache(maxsize=32)
def _font(size):
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):  # Pillow without FreeType: the bitmap font.
        return ImageFont.load_default()


def _draw_text(image, number, x, y):
    pil = Image.fromarray(np.asarray(image))
    size = max(8, min(pil.size) // 8)
    ImageDraw.Draw(pil).text((int(x), int(y)), str(int(number)), fill=(255, 255, 255),
                             font=_font(size))
    return np.asarray(pil, dtype=np.uint8)


def crappify(image, degradations=DEFAULT_DEGRADATIONS, seed=0, scale_range=(2.0, 4.0),
             jpeg_quality=(10, 70), noise_sigma=(5.0, 25.0), blur_sigma=(0.5, 2.0)):
    """Degrades one image; works eagerly and inside tf.data / tf.function.

    Args:
        image: uint8 ``(h, w, 3)`` tensor or array.
        degradations: names from ``DEGRADATIONS`` (string "a,b" or sequence).
        seed: an int, or a shape-[2] int tensor (e.g. a per-example seed in tf.data).
        scale_range: downscale factor range.
        jpeg_quality: inclusive JPEG quality range.
        noise_sigma: Gaussian noise standard deviation range, in 0..255 units.
        blur_sigma: Gaussian blur sigma range, in pixels.

    Returns:
        The degraded image, uint8 ``(h, w, 3)``, same shape as ``image``.
    """
    names = parse_degradations(degradations)
    if not 1 <= jpeg_quality[0] <= jpeg_quality[1] <= 100:
        raise DataError(f"JPEG quality range must satisfy 1 <= low <= high <= 100, got "
                        f"{tuple(jpeg_quality)}.")
    if not 1.0 <= scale_range[0] <= scale_range[1]:
        raise DataError(f"Downscale range must satisfy 1 <= low <= high, got "
                        f"{tuple(scale_range)}.")
    seed = _as_seed(seed)
    image = tf.convert_to_tensor(image)
    if image.dtype != tf.uint8:
        raise DataError(f"crappify expects uint8 pixels, got {image.dtype.name}.")
    static_shape = image.shape
    x = tf.cast(image, tf.float32)
    shape = tf.shape(image)
    height, width = shape[0], shape[1]
    if "grayscale" in names:
        x = tf.repeat(tf.image.rgb_to_grayscale(x), 3, axis=-1)
    if "blur" in names:
        x = _gaussian_blur(x, _uniform(seed, 1, blur_sigma))
    if "downscale" in names:
        factor = _uniform(seed, 2, scale_range)
        small = tf.maximum(tf.cast(tf.round(tf.cast(shape[:2], tf.float32) / factor), tf.int32), 1)
        x = tf.image.resize(x, small, method="bilinear", antialias=True)
        x = tf.image.resize(x, [height, width], method="bilinear")
    if "noise" in names:
        sigma = _uniform(seed, 3, noise_sigma)
        noise_seed = tf.random.experimental.stateless_fold_in(seed, 4)
        x = x + sigma * tf.random.stateless_normal(tf.shape(x), noise_seed)
    out = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 255.0)), tf.uint8)
    if "text" in names:
        number = _uniform_int(seed, 5, 10, 99)
        left = _uniform_int(seed, 6, 0, tf.maximum(width // 2 - 1, 0))
        top = _uniform_int(seed, 7, 0, tf.maximum(height // 2 - 1, 0))
        out = tf.numpy_function(_draw_text, [out, number, left, top], tf.uint8, stateful=False)
        out.set_shape(static_shape.merge_with([None, None, 3]))
    if "jpeg" in names:
        quality = _uniform_int(seed, 8, int(jpeg_quality[0]), int(jpeg_quality[1]))
        out = tf.image.adjust_jpeg_quality(out, quality)
    out = tf.ensure_shape(out, [None, None, 3])
    out.set_shape(static_shape)
    return out


def crappify_array(image, degradations=DEFAULT_DEGRADATIONS, seed=0, **ranges):
    """``crappify`` for NumPy: uint8 ``(h, w, 3)`` array in, uint8 array out."""
    return crappify(tf.constant(np.asarray(image, np.uint8)), degradations, seed,
                    **ranges).numpy()


def _integer_round(value, numerator, denominator):
    return (2 * value * numerator + denominator) // (2 * denominator)


def _max64(a, b):
    return tf.maximum(tf.cast(a, tf.int64), tf.cast(b, tf.int64))


def _min64(a, b):
    return tf.minimum(tf.cast(a, tf.int64), tf.cast(b, tf.int64))


def _loaded_size(height, width, load_size, crop_size, maximum, minimum):
    """Shorter side scaled to ``max(load_size, crop_size)`` (or raised to crop_size)."""
    short = minimum(height, width)
    target = maximum(load_size, crop_size) if load_size else maximum(short, crop_size)
    return (maximum(_integer_round(height, target, short), crop_size),
            maximum(_integer_round(width, target, short), crop_size))


def restoration_dataset(dataroot=None, phase="train", degradations=DEFAULT_DEGRADATIONS,
                        crop_size=64, load_size=None, no_flip=False, batch_size=1, seed=None,
                        repeat=True, max_dataset_size=None, source=None, start=0, **ranges):
    """(degraded, clean) pairs made on the fly by ``crappify`` from clean images.

    Train: a random crop (and flip) of a random image, degraded with fresh random draws every
    step. Test: every image cut into a centred grid of non-overlapping ``crop_size`` tiles, no
    flip, each tile degraded the same way on every pass, so evaluation is repeatable.

    Args:
        dataroot: folder of clean images: ``dataroot/{phase}/`` if present, else images directly
            in ``dataroot``. None: the built-in sample photos (``phase="test"`` gives held-out
            photos never used for train).
        phase: ``train`` or ``test``.
        degradations: names from ``DEGRADATIONS``.
        crop_size: side of each (square) example.
        load_size: first scale each image so its shorter side is ``load_size`` (aspect kept);
            None keeps the original size. Images smaller than the crop are scaled up.
        no_flip: disable the random flip (train).
        batch_size: examples per batch (the remainder is dropped).
        seed: makes crops and degradations reproducible; None for a random seed.
        repeat: loop forever; otherwise one pass (train: one crop per image; test: all tiles).
        max_dataset_size: use at most this many images.
        source: an ``ImageSource`` of clean images to use when ``dataroot`` is None, instead of
            the built-in sample photos (e.g. ``samples.color_sample_source``).
        start: train: begin the stream after this many examples (a run resumed at step ``s``
            passes ``s * batch_size``), with the crops and degradations an uninterrupted run
            would draw next.
        **ranges: ``scale_range``, ``jpeg_quality``, ``noise_sigma``, ``blur_sigma`` for
            ``crappify``.

    Returns:
        ``(dataset, info)``: batches ``(degraded, clean)``, float32
        ``(batch, crop_size, crop_size, 3)`` in [-1, 1], and a ``DatasetInfo``.

    Raises:
        DataError: unknown degradation, bad sizes, missing/empty folder.
    """
    names = parse_degradations(degradations)
    if crop_size < 1 or batch_size < 1:
        raise DataError(f"crop_size and batch_size must be positive, got {crop_size}, "
                        f"{batch_size}.")
    if load_size is not None and load_size < crop_size:
        raise DataError(f"load_size ({load_size}) is smaller than crop_size ({crop_size}): set "
                        f"--load_size >= --crop_size or leave it unset.")
    if phase not in ("train", "test"):
        raise DataError(f"Unknown phase {phase!r}; use train or test.")
    # Test pairs default to seed 0 so every evaluation sees the same degradations.
    seed = resolve_seed(0 if seed is None and phase == "test" else seed)
    if dataroot:
        folder = os.path.join(dataroot, phase)
        if not os.path.isdir(folder):
            if os.path.isdir(dataroot) and list_images(dataroot):
                folder = dataroot
            else:
                raise DataError(f"No clean images for restoration: expected a folder {folder}/ "
                                f"or image files directly in {dataroot}.")
        source = scan_folder(folder, max_dataset_size)
    elif source is None:
        source = samples.sample_source(phase, max_dataset_size)
    if source.arrays is not None:  # In memory: do the deterministic resize once, here.
        arrays = []
        for array in source.arrays:
            size = _loaded_size(*array.shape[:2], load_size, crop_size, max, min)
            if tuple(size) != array.shape[:2]:
                array = resize_uint8(array, tf.constant(size, tf.int32)).numpy()
            arrays.append(array)
        source = ImageSource.from_arrays(arrays, source.name, source.skipped, source.paths)

    def load(index):
        image = source.load(index)
        shape = tf.shape(image, out_type=tf.int64)
        # A Python int, not a tensor, so `if load_size` in _loaded_size stays a Python branch.
        size = _loaded_size(shape[0], shape[1], int(load_size) if load_size else None,
                            crop_size, _max64, _min64)
        same = tf.reduce_all(tf.equal(tf.stack(size), shape[:2]))
        return tf.cond(same, lambda: image,
                       lambda: resize_uint8(image, tf.cast(tf.stack(size), tf.int32)))

    def make_pair(clean, element_seed):
        degraded = crappify(clean, names, element_seed, **ranges)
        return to_float(degraded), to_float(clean)

    if phase == "train":
        def prepare(index, counter):
            element_seed = tf.random.experimental.stateless_fold_in(
                tf.constant([seed, 4], tf.int64), counter)
            clean = tf.image.stateless_random_crop(
                load(index), [crop_size, crop_size, 3],
                tf.random.experimental.stateless_fold_in(element_seed, 100))
            if not no_flip:
                clean = tf.image.stateless_random_flip_left_right(
                    clean, tf.random.experimental.stateless_fold_in(element_seed, 101))
            return make_pair(clean, element_seed)

        count = source.count
        ds = tf.data.Dataset.range(count).shuffle(count, seed=seed, reshuffle_each_iteration=True)
        ds = tf.data.Dataset.zip(ds.repeat(), tf.data.Dataset.counter()).skip(start)
        ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    else:
        sizes = [_loaded_size(h, w, load_size, crop_size, max, min) for h, w in source.sizes]
        count = sum((h // crop_size) * (w // crop_size) for h, w in sizes)

        def tiles(image):
            shape = tf.shape(image)
            rows, cols = shape[0] // crop_size, shape[1] // crop_size
            top, left = (shape[0] - rows * crop_size) // 2, (shape[1] - cols * crop_size) // 2
            grid = image[top:top + rows * crop_size, left:left + cols * crop_size]
            grid = tf.reshape(grid, [rows, crop_size, cols, crop_size, 3])
            grid = tf.transpose(grid, [0, 2, 1, 3, 4])
            return tf.data.Dataset.from_tensor_slices(
                tf.reshape(grid, [-1, crop_size, crop_size, 3]))

        ds = tf.data.Dataset.range(source.count).map(load).flat_map(tiles).enumerate()
        ds = ds.map(lambda index, clean: make_pair(clean, tf.random.experimental.stateless_fold_in(
            tf.constant([seed, 5], tf.int64), index)), num_parallel_calls=tf.data.AUTOTUNE)
        if repeat:
            ds = ds.repeat()
    ds = finish_dataset(ds, count, batch_size, repeat, source.name)
    description = f"{source.name}, crappified on the fly ({', '.join(names)})"
    info = DatasetInfo(source=description, num_a=count, num_b=count, skipped=source.skipped,
                       steps_per_epoch=max(1, count // batch_size), batch_size=batch_size,
                       crop_size=crop_size)
    return ds, info


def crappify_folder(input_dir, output_dir, degradations, seed=0, **ranges):
    """Writes a degraded PNG copy of every readable image of a folder.

    Args:
        input_dir: folder of clean images (not searched recursively).
        output_dir: destination folder (created when missing).
        degradations: names from ``kgan.data.DEGRADATIONS``.
        seed: base seed; a file's own seed is ``(seed, crc32(file name))``.
        **ranges: ``crappify`` ranges (``scale_range``, ``jpeg_quality``, ...).

    Returns:
        ``(written, skipped)`` counts.

    Raises:
        DataError: missing or empty input folder, unknown degradation.
    """
    names = parse_degradations(degradations)
    paths = list_images(input_dir)
    if not paths:
        raise ImageNotFoundError(f"No image files in {input_dir}.")
    if os.path.abspath(input_dir) == os.path.abspath(output_dir):
        raise DataError("--output_dir must differ from --input_dir (files would be replaced).")
    created = not os.path.exists(output_dir)
    written, skipped, first_error = 0, 0, None
    for path in paths:
        name = os.path.basename(path)
        try:
            image = load_image(path)
        except ImageReadError as error:  # Unreadable file: skip and count, never stop.
            logging.warning("Skipping %s: %s", path, error)
            skipped += 1
            first_error = first_error or str(error)
            continue
        os.makedirs(output_dir, exist_ok=True)
        file_seed = [seed, zlib.crc32(name.encode())]
        degraded = crappify_array(image, names, file_seed, **ranges)
        stem = os.path.splitext(name)[0]
        write_image(os.path.join(output_dir, stem + ".png"), degraded)
        written += 1
    if written == 0:  # nothing written: no output folder either
        if created and os.path.isdir(output_dir) and not os.listdir(output_dir):
            os.rmdir(output_dir)
        raise DataError(f"No readable image in {input_dir}: all {skipped} file(s) failed to "
                        f"decode ({first_error}); pass a folder of image files.")
    return written, skipped
