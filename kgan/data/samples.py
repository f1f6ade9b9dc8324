"""The built-in offline sample data: colour photos shipped with scikit-image.

The photos come from ``skimage.data`` (installed with scikit-image, nothing is downloaded).
They are split once and for all: ``TRAIN_PHOTOS`` are used for training and
``TEST_PHOTOS`` are held out for evaluation. Each photo is reduced so its longer side is at
most ``MAX_SIDE`` pixels (bicubic) to keep the sample tasks fast.

The built-in unpaired and paired tasks translate a photo into the same photo under a fixed,
known colour transform (``sample_mapping``), so a generator's output can be scored exactly.
"""

import functools

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.core.pixels import to_float, to_uint8
from kgan.data.sources import ImageSource

TRAIN_PHOTOS = ("astronaut", "coffee", "rocket", "immunohistochemistry", "hubble_deep_field",
                "retina")
TEST_PHOTOS = ("chelsea", "stereo_motorcycle")
MAX_SIDE = 512
# Colourisation needs natural colours: the false-colour scientific images above would teach
# wrong ones, so only the six natural colour photos of scikit-image's wheel are used. The
# stereo motorcycle pair (two views of one scene) stays in one split, the training one: held
# out, it would count one scene twice; in training it adds pixels. Two scenes are held out.
COLOR_TRAIN_PHOTOS = ("astronaut", "rocket", "motorcycle_left", "motorcycle_right")
COLOR_TEST_PHOTOS = ("coffee", "chelsea")

# sample_mapping: output channel i is input channel _PERMUTATION[i] raised to _GAMMA[i].
_PERMUTATION = (2, 0, 1)
_GAMMA = (0.8, 1.0, 1.25)


def _load_photo(name):
    import skimage.data  # Imported lazily: only the sample tasks need it.

    if name in ("motorcycle_left", "motorcycle_right"):
        image = skimage.data.stereo_motorcycle()[0 if name == "motorcycle_left" else 1]
    else:
        image = getattr(skimage.data, name)()
    if isinstance(image, tuple):  # stereo_motorcycle returns (left, right, disparity).
        image = image[0]
    image = np.asarray(image)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=-1)
    image = image[..., :3].astype(np.uint8)
    height, width = image.shape[:2]
    scale = MAX_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.BICUBIC))
    return image


@functools.lru_cache(maxsize=None)
def _photos(split):
    names = {"train": TRAIN_PHOTOS, "test": TEST_PHOTOS, "color_train": COLOR_TRAIN_PHOTOS,
             "color_test": COLOR_TEST_PHOTOS}[split]
    return tuple(_load_photo(name) for name in names)


def sample_photos(split="train"):
    """The built-in photos of one split.

    Args:
        split: ``"train"`` (6 photos) or ``"test"`` (2 held-out photos never used for train).

    Returns:
        A list of uint8 ``(h, w, 3)`` arrays (fresh copies).

    Raises:
        ValueError: unknown split.
    """
    return _copies("", split)


def sample_color_photos(split="train"):
    """The natural colour photos for colourisation (no false colour).

    Args:
        split: ``"train"`` (astronaut, rocket and the stereo motorcycle pair) or ``"test"``
            (coffee and chelsea, held out).

    Returns:
        A list of uint8 ``(h, w, 3)`` arrays (fresh copies).

    Raises:
        ValueError: unknown split.
    """
    return _copies("color_", split)


def _copies(prefix, split):
    """Fresh copies of the photos of ``prefix + split`` (the cache keeps the originals)."""
    if split not in ("train", "test"):
        raise ValueError(f"Unknown sample split {split!r}; use 'train' or 'test'.")
    return [photo.copy() for photo in _photos(prefix + split)]


def _photos_source(photos, names, label, split):
    """Photos as an in-memory ``ImageSource`` described as ``built-in LABEL (SPLIT: names)``."""
    return ImageSource.from_arrays(photos, f"built-in {label} ({split}: "
                                           f"{', '.join(names[:len(photos)])})")


def color_sample_source(split="train", max_dataset_size=None):
    """The colour photos of one split as an in-memory ``ImageSource``."""
    names = COLOR_TRAIN_PHOTOS if split == "train" else COLOR_TEST_PHOTOS
    return _photos_source(sample_color_photos(split)[:max_dataset_size], names, "colour photos",
                          split)


def sample_mapping(images):
    """The known colour transform of the built-in tasks (domain A -> domain B).

    Channels are permuted (R, G, B) -> (B, R, G) and each gets a gamma (0.8, 1.0, 1.25) in
    [0, 1] space. The transform is pointwise, invertible and smooth, so a small generator can
    learn it, and ``psnr(G(x), sample_mapping(x))`` measures how well it did.

    Args:
        images: float32 ``(..., 3)`` in [-1, 1], a NumPy array or a tensor.

    Returns:
        The mapped images, float32 in [-1, 1], of the same kind (NumPy in, NumPy out).
    """
    if isinstance(images, np.ndarray):
        unit = np.clip((images.astype(np.float32) + 1.0) / 2.0, 0.0, 1.0)
        mapped = unit[..., list(_PERMUTATION)] ** np.asarray(_GAMMA, np.float32)
        return (mapped * 2.0 - 1.0).astype(np.float32)
    images = tf.convert_to_tensor(images, tf.float32)
    unit = tf.clip_by_value((images + 1.0) / 2.0, 0.0, 1.0)
    mapped = tf.pow(tf.gather(unit, list(_PERMUTATION), axis=-1), tf.constant(_GAMMA))
    return mapped * 2.0 - 1.0


def sample_source(split="train", max_dataset_size=None):
    """The sample photos of one split as an in-memory ``ImageSource``."""
    names = TRAIN_PHOTOS if split == "train" else TEST_PHOTOS
    return _photos_source(sample_photos(split)[:max_dataset_size], names, "sample photos", split)


def mapped_source(source):
    """An in-memory source of ``sample_mapping`` applied to every image of ``source``.

    The mapping is pointwise, so it commutes with cropping and flipping: mapping the photos
    once here equals mapping every crop later, up to uint8 rounding (at most 0.5/255).
    """
    mapped = [to_uint8(np.asarray(sample_mapping(to_float(a)))) for a in source.arrays]
    return ImageSource.from_arrays(mapped, f"{source.name} under sample_mapping")
