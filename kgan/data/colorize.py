"""(gray, colour) training pairs for colourisation, made on the fly from colour photos.

The input is the photo's BT.601 luma as 3-channel gray, optionally degraded further (JPEG,
noise, blur, downscale, text: ``kgan.data.crappify``) so the model also works on real scanned
photos; the degraded input is made gray again at the end, because per-channel noise would
otherwise give it colour that a black-and-white scan never has. The target is the clean colour
photo. Called by the colourisation recipe (``--model=colorize``) and its sanity benchmark.
"""

import tensorflow as tf

from kgan.data import samples
from kgan.data.crappify import parse_degradations, restoration_dataset


def gray3(images):
    """Float images (..., 3) -> their BT.601 luma copied to 3 channels (same range)."""
    y = tf.image.rgb_to_yuv(images)[..., :1]
    return tf.concat([y, y, y], axis=-1)


def colorization_dataset(dataroot=None, phase="train", degradations=(), crop_size=64,
                         load_size=None, no_flip=False, batch_size=1, seed=None, repeat=True,
                         max_dataset_size=None, start=0, **ranges):
    """Batches of (gray input, colour target), float32 in [-1, 1].

    Args:
        dataroot: a folder of colour photos (``dataroot/{phase}/`` or the folder itself); None:
            the built-in natural colour photos (``samples.sample_color_photos``).
        phase: ``train`` (random crops and flips) or ``test`` (a fixed grid of tiles).
        degradations: extra degradations of the input on top of gray, names from
            ``kgan.data.crappify.DEGRADATIONS`` (``grayscale`` is always applied).
        crop_size, load_size, no_flip, batch_size, seed, repeat, max_dataset_size, start and
            **ranges: as ``restoration_dataset``.

    Returns:
        ``(dataset, info)`` as ``restoration_dataset``; every input is exactly gray (R = G = B).
    """
    extra = parse_degradations(degradations) if degradations else ()
    names = ("grayscale",) + tuple(d for d in extra if d != "grayscale")
    source = None if dataroot else samples.color_sample_source(phase, max_dataset_size)
    dataset, info = restoration_dataset(
        dataroot=dataroot, phase=phase, degradations=names, crop_size=crop_size,
        load_size=load_size, no_flip=no_flip, batch_size=batch_size, seed=seed, repeat=repeat,
        max_dataset_size=max_dataset_size, source=source, start=start, **ranges)
    dataset = dataset.map(lambda gray, colour: (gray3(gray), colour),
                          num_parallel_calls=tf.data.AUTOTUNE)
    return dataset, info
