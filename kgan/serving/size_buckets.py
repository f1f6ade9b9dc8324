"""A few input shapes for folders of many image sizes: each whole image is reflect-padded up to a
size bucket, translated, and cropped back.

Why: TensorFlow's oneDNN build keeps memory per input shape (kgan.serving.worker), so a translate
job over photos of many distinct sizes grows with every new one. Rounding each side up to one of
eight steps per octave (at most 12.5 % more pixels per side, about 6 % on average) leaves few shapes
(sides 64..160: 121 instead of 625), so memory grows less and kgan.serving.worker restarts less
often, and images that share a bucket are batched together.

The padding is the reflection kgan.serving.translators already uses to reach the network's size
multiple, added below and to the right so the image stays on the network's sampling grid: a
norm-free or eval-mode-norm generator changes only within its receptive field of the border; an
instance-norm generator also sees the padding in its statistics (tests/serving/test_size_buckets.py bounds
it). So it is opt-in, ``kgan.translate --size_buckets``: kgan.serving.worker bounds the memory
without it.
"""

import numpy as np

STEPS_PER_OCTAVE = 8


def bucket_side(side, multiple=1, steps_per_octave=STEPS_PER_OCTAVE):
    """The bucket a side of ``side`` pixels is padded up to.

    Sides in [2^k, 2^(k+1)) round up to a multiple of 2^k / ``steps_per_octave`` (and of the
    network's ``multiple``): 100 -> 104, 140 -> 144, 600 -> 640, 1080 -> 1152; sides that are
    already on a step (64, 256, 1024) stay.

    Args:
        side: an image side in pixels (>= 1).
        multiple: the network's size multiple (every bucket is a multiple of it).
        steps_per_octave: buckets between one power of two and the next.

    Returns:
        An int >= ``side``.
    """
    step = max(1, (1 << (max(1, side).bit_length() - 1)) // steps_per_octave)
    step = -(-step // multiple) * multiple
    return -(-side // step) * step


def bucket_shape(height, width, multiple=1, pixel_limit=None):
    """The (height, width) an image is translated at: both sides bucketed, or only rounded up to
    ``multiple`` when the bucket would exceed ``pixel_limit`` (the translator's whole-image
    memory bound)."""
    shape = bucket_side(height, multiple), bucket_side(width, multiple)
    if pixel_limit and shape[0] * shape[1] > pixel_limit:
        return -(-height // multiple) * multiple, -(-width // multiple) * multiple
    return shape


def pad_to_shape(image, height, width, multiple=1):
    """Reflect-pads a uint8 (h, w, C) image to (``height``, ``width``).

    The image keeps the offset kgan.serving.translators's own padding to ``multiple`` would give it
    (half of ``-h % multiple`` above, the same to the left) and the rest of the padding goes below
    and to the right: shifting the image by other amounts would move it against the network's
    stride-2 sampling grid and change every output pixel, not only the borders.

    Returns:
        ``(padded, top, left)``; ``padded[top:top + h, left:left + w]`` is ``image``.
    """
    top, left = (_offset(image.shape[0], height, multiple),
                 _offset(image.shape[1], width, multiple))
    bottom, right = height - image.shape[0] - top, width - image.shape[1] - left
    if top == bottom == left == right == 0:
        return image, 0, 0
    padded = np.pad(image, ((top, bottom), (left, right), (0, 0)), mode="reflect")
    return padded, top, left


def _offset(side, padded_side, multiple):
    """Where a side of ``side`` pixels starts in ``padded_side``: where the translator's own
    centred padding to ``multiple`` would put it when ``padded_side`` is on the multiple (the
    translator then adds nothing), else 0 (the translator pads the whole, as it would the
    image)."""
    if padded_side % multiple:
        return 0
    return min((-side) % multiple // 2, padded_side - side)


def translate_bucketed(translator, images, shape, multiple=1):
    """Translates equal-or-smaller uint8 images as one batch at ``shape``, each reflect-padded
    to it (``pad_to_shape``) and cropped back.

    Args:
        translator: uint8 batch -> uint8 batch callable.
        images: a list of uint8 (h, w, 3) arrays, each no larger than ``shape``.
        shape: the (height, width) of the batch, e.g. from ``bucket_shape``.
        multiple: the network's size multiple.

    Returns:
        A list of uint8 arrays, each the size of its input.
    """
    padded = [pad_to_shape(image, *shape, multiple) for image in images]
    outputs = translator(np.stack([p for p, _, _ in padded]))
    return [out[top:top + image.shape[0], left:left + image.shape[1]]
            for out, image, (_, top, left) in zip(outputs, images, padded)]
