"""Reference preprocessing (resize / scale_width / crop / flip / [-1, 1]) as tf.data ops.

Mirrors ``data/base_dataset.py`` of the PyTorch reference: bicubic resizing, a random crop,
a horizontal flip with p = 0.5, and scaling with mean 0.5 / std 0.5. All randomness is
stateless and keyed by a per-example seed, so a pipeline is reproducible under ``seed``.
Stacking two images along channels before ``transform`` gives both the same crop and flip
(aligned pairs).
"""

import tensorflow as tf

from kgan.core.pixels import to_float, to_uint8  # noqa: F401  (kgan.data re-exports them)
from kgan.data.images import DataError
from kgan.data.sources import ImageSource

PREPROCESS_MODES = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")


def check_preprocess(preprocess, load_size, crop_size, size_multiple=4):
    """Validates preprocessing options.

    Args:
        preprocess: one of ``PREPROCESS_MODES``.
        load_size: resize target (``resize*`` and ``scale_width*`` modes).
        crop_size: random-crop size (modes containing ``crop``).
        size_multiple: sides must be a multiple of this (4 for ResNet generators,
            ``2 ** num_downs`` for UNets).

    Raises:
        DataError: unknown mode, non-positive sizes, ``crop_size > load_size`` with a resizing
            mode, or a crop size that is not a multiple of ``size_multiple``.
    """
    if preprocess not in PREPROCESS_MODES:
        raise DataError(f"Unknown preprocess {preprocess!r}; use one of "
                        f"{', '.join(PREPROCESS_MODES)}.")
    if size_multiple < 1:
        raise DataError(f"size_multiple must be >= 1, got {size_multiple}.")
    if preprocess != "crop" and preprocess != "none" and load_size < 1:
        raise DataError(f"load_size must be positive, got {load_size}.")
    if "crop" in preprocess:
        if crop_size < 1:
            raise DataError(f"crop_size must be positive, got {crop_size}.")
        if preprocess != "crop" and crop_size > load_size:
            raise DataError(f"crop_size ({crop_size}) is larger than load_size ({load_size}) "
                            f"with preprocess={preprocess}: set --load_size >= --crop_size.")
        if crop_size % size_multiple:
            suggestion = max(1, round(crop_size / size_multiple)) * size_multiple
            raise DataError(f"crop_size ({crop_size}) must be a multiple of {size_multiple} for "
                            f"this generator; pick e.g. {suggestion}.")


def _round_to(value, multiple, maximum):
    return maximum((value * 2 + multiple) // (2 * multiple) * multiple, multiple)


def _resized_size(height, width, preprocess, load_size, crop_size, size_multiple, maximum):
    """The size before cropping; works on Python ints and on int64 tensors."""
    if preprocess == "resize_and_crop":
        return load_size, load_size
    if preprocess.startswith("scale_width"):
        new_height = maximum(load_size * height // width, crop_size)
        if preprocess == "scale_width":
            return (_round_to(new_height, size_multiple, maximum),
                    _round_to(load_size, size_multiple, maximum))
        return new_height, load_size
    if preprocess == "crop":
        # Only reached for images smaller than the crop (tfds; folders are checked up front).
        return maximum(height, crop_size), maximum(width, crop_size)
    return (_round_to(height, size_multiple, maximum), _round_to(width, size_multiple, maximum))


def output_size(height, width, preprocess, load_size, crop_size, size_multiple=4):
    """The ``(height, width)`` an image of the given size has after ``transform``."""
    if "crop" in preprocess:
        return crop_size, crop_size
    return _resized_size(height, width, preprocess, load_size, crop_size, size_multiple, max)


def check_sizes(sizes, name, preprocess, load_size, crop_size, batch_size, size_multiple=4):
    """Checks known image sizes against the preprocessing, before any tf.data work.

    Raises:
        DataError: ``preprocess=crop`` with an image smaller than the crop, or a batch size
            above 1 with a non-cropping mode whose output sizes differ.
    """
    if preprocess == "crop":
        for index, (height, width) in enumerate(sizes):
            if min(height, width) < crop_size:
                raise DataError(f"Image {index} of {name} is {width}x{height}, smaller than "
                                f"crop_size={crop_size} with preprocess=crop: use "
                                f"--preprocess=resize_and_crop or a smaller --crop_size.")
    if "crop" not in preprocess and batch_size > 1:
        shapes = {output_size(h, w, preprocess, load_size, crop_size, size_multiple)
                  for h, w in sizes}
        if len(shapes) > 1:
            raise DataError(f"Images of {name} get different sizes with preprocess={preprocess}"
                            f" ({len(shapes)} distinct), so they cannot be batched: use "
                            f"--batch_size=1 or a cropping --preprocess.")


def element_seed(base_seed, salt, counter):
    """A per-example stateless seed (shape [2], int64) from a base seed, a salt and a counter."""
    return tf.random.experimental.stateless_fold_in(
        tf.constant([base_seed, salt], tf.int64), tf.cast(counter, tf.int64))


def resize(image, size):
    """Bicubic resize with antialiasing (as Pillow's BICUBIC used by the reference)."""
    return tf.image.resize(image, tf.cast(size, tf.int32), method="bicubic", antialias=True)


def resize_to_grid(image, size):
    """``resize`` rounded back to whole pixel values, as the reference's uint8 PIL resize."""
    return tf.round(tf.clip_by_value(resize(image, size), 0.0, 255.0))


def resize_uint8(image, size):
    """Bicubic (antialiased) resize of a uint8 image to ``size``, returning uint8."""
    return tf.cast(resize_to_grid(tf.cast(image, tf.float32), size), tf.uint8)


_resize_uint8_eager = tf.function(resize_uint8, reduce_retracing=True)


def preresize(source, preprocess, load_size, crop_size, size_multiple=4):
    """Applies the deterministic resize of ``preprocess`` once to an in-memory source.

    Only the crop and flip are random, so sources held in memory are resized here once
    instead of on every step (``transform`` then finds the size already right). Sources read
    from files are returned unchanged.

    Returns:
        An ``ImageSource``.
    """
    if source.arrays is None or preprocess == "crop":
        return source
    arrays = []
    for array, (height, width) in zip(source.arrays, source.sizes):
        size = _resized_size(height, width, preprocess, load_size, crop_size, size_multiple, max)
        if tuple(size) != (height, width):
            array = _resize_uint8_eager(array, tf.constant(size, tf.int32)).numpy()
        arrays.append(array)
    return ImageSource.from_arrays(arrays, source.name, skipped=source.skipped,
                                   paths=source.paths)


def transform(image, seed, preprocess="resize_and_crop", load_size=286, crop_size=256,
              flip=True, size_multiple=4):
    """Applies the reference preprocessing to one image.

    Args:
        image: ``(h, w, c)`` uint8 (or float 0..255) tensor; ``c`` may be 6 for an aligned
            pair stacked along channels, which then shares one crop and flip.
        seed: shape-[2] int seed (see ``element_seed``).
        preprocess, load_size, crop_size, size_multiple: see ``check_preprocess``.
        flip: random horizontal flip with p = 0.5.

    Returns:
        float32 ``(h', w', c)`` in [-1, 1]; ``h' = w' = crop_size`` (static) for crop modes.
    """
    channels = image.shape[-1]
    image = tf.cast(image, tf.float32)
    shape = tf.shape(image, out_type=tf.int64)
    height, width = shape[0], shape[1]
    new_height, new_width = _resized_size(height, width, preprocess,
                                          tf.constant(load_size, tf.int64),
                                          tf.constant(crop_size, tf.int64), size_multiple,
                                          tf.maximum)
    new_height = tf.cast(new_height, tf.int64)
    new_width = tf.cast(new_width, tf.int64)
    same = tf.logical_and(tf.equal(new_height, height), tf.equal(new_width, width))
    image = tf.cond(same, lambda: image,
                    lambda: resize_to_grid(image, tf.stack([new_height, new_width])))
    if "crop" in preprocess:
        crop_seed = tf.random.experimental.stateless_fold_in(seed, 1)
        top = tf.random.stateless_uniform([], crop_seed, minval=0,
                                          maxval=new_height - crop_size + 1, dtype=tf.int64)
        left = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 2),
                                           minval=0, maxval=new_width - crop_size + 1,
                                           dtype=tf.int64)
        image = tf.slice(image, tf.stack([top, left, 0]),
                         tf.constant([crop_size, crop_size, -1], tf.int64))
        image.set_shape([crop_size, crop_size, channels])
    else:
        image.set_shape([None, None, channels])
    if flip:
        coin = tf.random.stateless_uniform([], tf.random.experimental.stateless_fold_in(seed, 3))
        image = tf.cond(coin < 0.5, lambda: tf.reverse(image, axis=[1]), lambda: image)
    return to_float(image)
