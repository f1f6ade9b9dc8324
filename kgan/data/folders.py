"""Unaligned (CycleGAN) and aligned (pix2pix) datasets, as the reference's data modes.

Sources, in order of precedence: image folders (``dataroot``), TensorFlow Datasets
(``tfds_name``, unpaired only), or the built-in offline sample task (neither).
"""

import os
import random

import tensorflow as tf
from absl import logging

from kgan.data import augment, samples
from kgan.data.images import DataError, list_images, log_skipped
from kgan.data.sources import DatasetInfo, scan_folder, scan_images
from kgan.data.tfds_source import tfds_image_stream

DIRECTIONS = ("AtoB", "BtoA")


def resolve_seed(seed):
    """The given seed, or a fresh random one when None."""
    return random.SystemRandom().randrange(2**31) if seed is None else int(seed)


def _check_common(batch_size, max_dataset_size):
    if batch_size < 1:
        raise DataError(f"batch_size must be >= 1, got {batch_size}.")
    if max_dataset_size is not None and max_dataset_size < 1:
        raise DataError(f"max_dataset_size must be >= 1 or unset, got {max_dataset_size}.")


def finish_dataset(ds, count, batch_size, repeat, name):
    """Caps one pass, batches (dropping the remainder) and prefetches."""
    if not repeat:
        if count < batch_size:
            raise DataError(f"{name} has {count} example(s), fewer than batch_size="
                            f"{batch_size}: lower --batch_size.")
        ds = ds.take(count)
    ds = ds.batch(batch_size, drop_remainder=True, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def unpaired_dataset(dataroot=None, tfds_name=None, tfds_data_dir=None, phase="train",
                     preprocess="resize_and_crop", load_size=286, crop_size=256, no_flip=False,
                     max_dataset_size=None, serial_batches=False, batch_size=1, seed=None,
                     repeat=True, size_multiple=4, tfds_download=False, start=0):
    """The CycleGAN dataset: unaligned images of domains A and B.

    As the reference's ``unaligned`` mode: one pass has ``max(|A|, |B|)`` examples; A runs
    through its images (reshuffled each pass unless ``serial_batches``), B independently
    (random order, or in order with ``serial_batches``); crops and flips are independent.

    Args:
        dataroot: folder holding ``{phase}A/`` and ``{phase}B/``.
        tfds_name: a TFDS dataset with splits ``{phase}A`` / ``{phase}B`` (e.g.
            ``cycle_gan/horse2zebra``). With neither, the built-in sample task: sample photos
            (A) vs. the same photos under ``sample_mapping`` (B), cropped independently.
        tfds_data_dir: TFDS data directory.
        phase: ``train`` or ``test``.
        preprocess, load_size, crop_size, size_multiple: see ``augment.check_preprocess``
            (``load_size=None`` means ``crop_size``).
        no_flip: disable the random horizontal flip.
        max_dataset_size: at most this many images per domain.
        serial_batches: read both domains in order.
        batch_size: examples per batch (the remainder is dropped).
        seed: makes the order, crops and flips reproducible; None for a random seed.
        repeat: loop forever; otherwise one pass of ``max(|A|, |B|)`` examples.
        tfds_download: let TFDS download a missing dataset (default: a dataset that is not
            prepared fails at once, see kgan.data.tfds_source.check_prepared).
        start: begin the stream after this many examples (a run resumed at step ``s`` passes
            ``s * batch_size``): the same images, crops and flips as an uninterrupted run.

    Returns:
        ``(dataset, info)``: batches ``(real_a, real_b)``, float32 ``(batch, h, w, 3)`` in
        [-1, 1], and a ``DatasetInfo``.

    Raises:
        DataError: bad options, missing/empty folders, unavailable TFDS data.
    """
    load_size = crop_size if load_size is None else load_size
    augment.check_preprocess(preprocess, load_size, crop_size, size_multiple)
    _check_common(batch_size, max_dataset_size)
    if dataroot and tfds_name:
        raise DataError("Pass either --dataroot or --tfds_name, not both.")
    seed = resolve_seed(seed)
    shuffle = not serial_batches
    skipped = 0
    if dataroot:
        hint = f"--dataroot expects {phase}A/ and {phase}B/ folders of images."
        sources = [scan_folder(os.path.join(dataroot, phase + side), max_dataset_size, hint=hint)
                   for side in "AB"]
        for src in sources:
            augment.check_sizes(src.sizes, src.name, preprocess, load_size, crop_size,
                                batch_size, size_multiple)
        sources = [augment.preresize(src, preprocess, load_size, crop_size, size_multiple)
                   for src in sources]
        stream_a = sources[0].stream(shuffle, seed, start=start)
        stream_b = sources[1].stream(shuffle, seed + 1, start=start)
        num_a, num_b = sources[0].count, sources[1].count
        skipped = sources[0].skipped + sources[1].skipped
        description = f"image folders {sources[0].name} and {sources[1].name}"
    elif tfds_name:
        if "crop" not in preprocess and batch_size > 1:
            raise DataError(f"preprocess={preprocess} keeps image sizes, which vary in TFDS "
                            f"datasets: use --batch_size=1 or a cropping --preprocess.")
        stream_a, num_a = tfds_image_stream(tfds_name, phase + "A", tfds_data_dir, shuffle, seed,
                                            max_dataset_size, tfds_download, start)
        stream_b, num_b = tfds_image_stream(tfds_name, phase + "B", tfds_data_dir, shuffle,
                                            seed + 1, max_dataset_size, tfds_download, start)
        description = f"TFDS {tfds_name} ({phase}A, {phase}B)"
    else:
        source = samples.sample_source(phase, max_dataset_size)
        augment.check_sizes(source.sizes, source.name, preprocess, load_size, crop_size,
                            batch_size, size_multiple)
        source = augment.preresize(source, preprocess, load_size, crop_size, size_multiple)
        # B is the same photos under the known mapping, in an independent order and crop.
        stream_a = source.stream(shuffle, seed, start=start)
        stream_b = samples.mapped_source(source).stream(True, seed + 1, start=start)
        num_a = num_b = source.count
        description = (f"built-in sample task: {source.name} -> the same photos under "
                       f"kgan.data.sample_mapping")

    options = dict(preprocess=preprocess, load_size=load_size, crop_size=crop_size,
                   flip=not no_flip, size_multiple=size_multiple)

    def prepare(image_a, image_b, counter):
        real_a = augment.transform(image_a, augment.element_seed(seed, 1, counter), **options)
        real_b = augment.transform(image_b, augment.element_seed(seed, 2, counter), **options)
        return real_a, real_b

    ds = tf.data.Dataset.zip(stream_a, stream_b, tf.data.Dataset.counter(start))
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    count = max(num_a, num_b)
    ds = finish_dataset(ds, count, batch_size, repeat, description)
    info = DatasetInfo(source=description, num_a=num_a, num_b=num_b, skipped=skipped,
                       steps_per_epoch=max(1, count // batch_size), batch_size=batch_size,
                       crop_size=crop_size if "crop" in preprocess else None)
    logging.info("Unpaired data: %s; %d A, %d B images, %d skipped.", description, num_a, num_b,
                 skipped)
    return ds, info


def _stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def _paired_folders(folder_a, folder_b, max_dataset_size):
    """Sources of same-named (by file stem) readable images in two folders."""
    hint = "Paired data needs same-named files in both folders."
    paths_a = {_stem(p): p for p in list_images(folder_a)}
    paths_b = {_stem(p): p for p in list_images(folder_b)}
    common = sorted(set(paths_a) & set(paths_b))
    unmatched = len(set(paths_a) ^ set(paths_b))
    if unmatched:
        logging.warning("%d file(s) in %s / %s have no same-named partner and are ignored.",
                        unmatched, folder_a, folder_b)
    if not common:
        raise DataError(f"No same-named image files in {folder_a} and {folder_b}. {hint}")
    source_a, bad_a = scan_images([paths_a[s] for s in common], folder_a)
    source_b, bad_b = scan_images([paths_b[s] for s in common], folder_b)
    log_skipped(folder_a, bad_a)
    log_skipped(folder_b, bad_b)
    good_b = {_stem(p): i for i, p in enumerate(source_b.paths)}
    keep_a, keep_b = [], []
    for index, path in enumerate(source_a.paths):
        if _stem(path) in good_b:
            keep_a.append(index)
            keep_b.append(good_b[_stem(path)])
    keep_a, keep_b = keep_a[:max_dataset_size], keep_b[:max_dataset_size]
    if not keep_a:
        raise DataError(f"No readable image pair in {folder_a} and {folder_b}. {hint}")
    skipped = len(bad_a) + len(bad_b)
    source_a = source_a.subset(keep_a)
    source_b = source_b.subset(keep_b)
    source_a.skipped = source_b.skipped = skipped
    return source_a, source_b


def paired_dataset(dataroot=None, phase="train", direction="AtoB", preprocess="resize_and_crop",
                   load_size=286, crop_size=256, no_flip=False, max_dataset_size=None,
                   serial_batches=False, batch_size=1, seed=None, repeat=True, size_multiple=4,
                   start=0):
    """The pix2pix dataset: aligned (input, target) pairs with one shared crop and flip.

    Args:
        dataroot: either ``{phase}/`` holding side-by-side A|B images (split at w/2, as the
            reference's ``aligned`` mode), or ``{phase}A/`` and ``{phase}B/`` holding files
            with the same name (the extension may differ). None: the built-in paired sample
            task, photo -> ``sample_mapping(photo)``.
        phase: ``train`` or ``test`` (``test`` of the sample task uses held-out photos).
        direction: ``AtoB`` or ``BtoA`` (swaps input and target).
        preprocess, load_size, crop_size, size_multiple: see ``augment.check_preprocess``.
        no_flip, max_dataset_size, serial_batches, batch_size, seed, repeat, start: as
            ``unpaired_dataset`` (the order is reshuffled each pass unless ``serial_batches``).

    Returns:
        ``(dataset, info)``: batches ``(input, target)``, float32 ``(batch, h, w, 3)`` in
        [-1, 1], and a ``DatasetInfo``.

    Raises:
        DataError: bad options, missing/empty folders, no readable pair.
    """
    load_size = crop_size if load_size is None else load_size
    augment.check_preprocess(preprocess, load_size, crop_size, size_multiple)
    _check_common(batch_size, max_dataset_size)
    if direction not in DIRECTIONS:
        raise DataError(f"Unknown direction {direction!r}; use AtoB or BtoA.")
    seed = resolve_seed(seed)
    side_by_side = False
    source_b = None
    is_sample = False
    if dataroot:
        combined = os.path.join(dataroot, phase)
        folder_a, folder_b = (os.path.join(dataroot, phase + side) for side in "AB")
        if os.path.isdir(combined):
            source_a = scan_folder(combined, max_dataset_size,
                                   hint="It should hold side-by-side A|B images.")
            side_by_side = True
            narrow = [i for i, (h, w) in enumerate(source_a.sizes) if w < 2]
            if narrow:
                raise DataError(f"Image {source_a.paths[narrow[0]]} is too narrow to hold A|B "
                                f"side by side.")
            half_sizes = [(h, w // 2) for h, w in source_a.sizes]
            description = f"side-by-side A|B images in {combined}"
        elif os.path.isdir(folder_a) and os.path.isdir(folder_b):
            source_a, source_b = _paired_folders(folder_a, folder_b, max_dataset_size)
            half_sizes = source_a.sizes
            description = f"same-named images in {folder_a} and {folder_b}"
        else:
            raise DataError(f"No paired data under {dataroot}: expected {combined}/ (side-by-side "
                            f"A|B images) or {folder_a}/ and {folder_b}/ (same-named files).")
    else:
        source_a = samples.sample_source(phase, max_dataset_size)
        half_sizes = source_a.sizes
        is_sample = True
        description = (f"built-in paired sample task: {source_a.name} -> "
                       f"kgan.data.sample_mapping(photo)")
    augment.check_sizes(half_sizes, description, preprocess, load_size, crop_size, batch_size,
                        size_multiple)
    if not side_by_side:  # Halves of A|B images are resized after the split, in the pipeline.
        source_a = augment.preresize(source_a, preprocess, load_size, crop_size, size_multiple)
        if source_b is not None:
            source_b = augment.preresize(source_b, preprocess, load_size, crop_size,
                                         size_multiple)
    if is_sample:  # Target = the known mapping of the input (the same crop and flip).
        source_b = samples.mapped_source(source_a)
    options = dict(preprocess=preprocess, load_size=load_size, crop_size=crop_size,
                   flip=not no_flip, size_multiple=size_multiple)

    def load_pair(index):
        image_a = source_a.load(index)
        if side_by_side:
            half = tf.shape(image_a)[1] // 2
            return image_a[:, :half], image_a[:, half:2 * half]
        image_b = source_b.load(index)
        size = tf.shape(image_a)[:2]
        image_b = tf.cond(tf.reduce_all(tf.equal(tf.shape(image_b)[:2], size)),
                          lambda: tf.cast(image_b, tf.float32),
                          lambda: augment.resize(tf.cast(image_b, tf.float32), size))
        return image_a, image_b

    def prepare(index, counter):
        image_a, image_b = load_pair(index)
        stacked = tf.concat([tf.cast(image_a, tf.float32), tf.cast(image_b, tf.float32)], -1)
        stacked = augment.transform(stacked, augment.element_seed(seed, 3, counter), **options)
        real_a, real_b = stacked[..., :3], stacked[..., 3:]
        return (real_b, real_a) if direction == "BtoA" else (real_a, real_b)

    ds = tf.data.Dataset.range(source_a.count)
    if not serial_batches:
        ds = ds.shuffle(source_a.count, seed=seed, reshuffle_each_iteration=True)
    ds = tf.data.Dataset.zip(ds.repeat(), tf.data.Dataset.counter()).skip(start)
    ds = ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE)
    ds = finish_dataset(ds, source_a.count, batch_size, repeat, description)
    info = DatasetInfo(source=description, num_a=source_a.count, num_b=source_a.count,
                       skipped=source_a.skipped,
                       steps_per_epoch=max(1, source_a.count // batch_size),
                       batch_size=batch_size, crop_size=crop_size if "crop" in preprocess else None)
    logging.info("Paired data: %s; %d pairs, %d skipped.", description, source_a.count,
                 source_a.skipped)
    return ds, info
