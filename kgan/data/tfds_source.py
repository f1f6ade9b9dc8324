"""TensorFlow Datasets as an image source (e.g. ``cycle_gan/horse2zebra``)."""

import tensorflow as tf

from kgan.data.images import DataError
from kgan.data.sources import ensure_rgb

# Decoded images held by the shuffle buffer of a TFDS split (files are shuffled too).
SHUFFLE_BUFFER = 512


def _first_line(error):
    text = str(error).strip().splitlines()
    return text[0].rstrip(".") if text else type(error).__name__


def check_prepared(name, data_dir=None):
    """Raises a one-line ``DataError`` at once when TFDS dataset ``name`` is not prepared in
    ``data_dir``, instead of TFDS downloading it (which, without a network, retries for
    minutes). Reads only the local data dir: no network, nothing created.

    Raises:
        DataError: an unknown name, or a dataset not prepared there (the message says how to
            prepare it, or to use image folders with ``--dataroot``).
    """
    import logging

    import tensorflow_datasets as tfds

    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets)"
    tfds_logger = logging.getLogger("absl")
    level = tfds_logger.level
    tfds_logger.setLevel(logging.ERROR)  # "Variant folder ... has no dataset_info.json"
    try:
        prepared = tfds.builder(name, data_dir=data_dir).is_prepared()
    except Exception as error:  # DatasetNotFoundError lists every dataset: keep one line
        raise DataError(f"Could not open TFDS dataset {name!r}: {_first_line(error)}; check "
                        "--tfds_name, or use --dataroot with image folders.") from None
    finally:
        tfds_logger.setLevel(level)
    if not prepared:
        raise DataError(
            f"TFDS dataset {name!r} is not prepared in {where} (kgan does not download it "
            f"while training). Prepare it once where the network is available: `tfds build "
            f"{name} --data_dir=DIR`, then pass --tfds_data_dir=DIR; or put the images in "
            "folders (trainA/, trainB/) and pass --dataroot=FOLDER.")


def tfds_image_stream(name, split, data_dir=None, shuffle=True, seed=0, max_dataset_size=None,
                      download=False, start=0):
    """Opens one split of a TFDS image dataset as an endless stream of RGB images.

    Args:
        name: TFDS name, e.g. ``"cycle_gan/horse2zebra"``.
        split: split name, e.g. ``"trainA"``.
        data_dir: TFDS data directory (``--tfds_data_dir``); None for the TFDS default.
        shuffle: shuffle files and examples on every pass.
        seed: seed for the shuffles.
        max_dataset_size: use only the first this many examples.
        download: let TFDS download and prepare the dataset when it is missing; without it
            (the default) a dataset that is not prepared fails at once (``check_prepared``).
        start: begin after this many images of the stream (a resumed run); TFDS decodes the
            skipped images, so resuming a long run costs a pass over that many.

    Returns:
        ``(dataset, count)``: a repeating ``tf.data.Dataset`` of uint8 ``(h, w, 3)`` images and
        the number of examples in the (capped) split.

    Raises:
        DataError: the dataset, split or ``image`` feature is unavailable (not downloaded and
            no network, unknown name, ...).
    """
    import tensorflow_datasets as tfds  # Heavy import, only needed for this source.

    where = data_dir or "the default TFDS data dir (~/tensorflow_datasets)"
    if not download:
        check_prepared(name, data_dir)
    try:
        ds = tfds.load(name, split=split, data_dir=data_dir, download=download,
                       shuffle_files=shuffle, read_config=tfds.ReadConfig(shuffle_seed=seed))
    except Exception as error:  # tfds raises many types (AssertionError, DatasetNotFound, ...)
        raise DataError(
            f"Could not load TFDS dataset {name!r} split {split!r} from {where}: "
            f"{_first_line(error)}. Download it once where the network is available (e.g. "
            f"`tfds build {name} --data_dir=DIR`) and pass --tfds_data_dir=DIR, or use "
            f"--dataroot with image folders.") from None
    spec = ds.element_spec
    if isinstance(spec, dict):
        if "image" not in spec:
            raise DataError(f"TFDS dataset {name!r} has no 'image' feature "
                            f"(features: {', '.join(spec)}).")
        ds = ds.map(lambda example: example["image"], num_parallel_calls=tf.data.AUTOTUNE)
    if max_dataset_size:
        ds = ds.take(max_dataset_size)
    count = int(ds.cardinality())
    if count < 0:  # Unknown cardinality: count once.
        count = int(ds.reduce(0, lambda total, _: total + 1))
    if count == 0:
        raise DataError(f"TFDS dataset {name!r} split {split!r} in {where} is empty.")
    ds = ds.map(ensure_rgb, num_parallel_calls=tf.data.AUTOTUNE)
    if shuffle:
        ds = ds.shuffle(min(count, SHUFFLE_BUFFER), seed=seed, reshuffle_each_iteration=True)
    return ds.repeat().skip(start), count
