"""Index-addressable image sources for tf.data: a folder (or list of files) is scanned once with
kgan.data.images' reader, so unreadable, truncated or non-image files are found (and counted)
before training starts instead of crashing tf.data mid-epoch. Small folders keep their decoded
pixels in memory; large ones are decoded again inside the pipeline (parallel
``tf.numpy_function`` calls; Pillow releases the GIL while decoding).

Called by the dataset builders in kgan.data (folders, crappify, samples).
"""

import dataclasses
import os
import time

import numpy as np
import tensorflow as tf
from absl import logging

from kgan.data.images import (
    IMAGE_EXTENSIONS,
    DataError,
    decode_files,
    list_images,
    log_skipped,
    try_load,
)

# Folders whose decoded pixels fit in this many bytes are kept in memory (no second decode).
CACHE_BYTES = 512 * 1024 * 1024


@dataclasses.dataclass
class DatasetInfo:
    """What a dataset builder found.

    Attributes:
        source: human-readable description of where the images come from.
        num_a: images (or pairs, or test tiles) in domain A.
        num_b: images in domain B (equal to ``num_a`` for paired data).
        skipped: unreadable files that were skipped.
        steps_per_epoch: ``max(num_a, num_b) // batch_size``, at least 1.
        batch_size: the batch size the dataset was built with.
        crop_size: the static height/width of each image, or None when sizes vary.
    """

    source: str
    num_a: int
    num_b: int
    skipped: int
    steps_per_epoch: int
    batch_size: int = 1
    crop_size: object = None


def read_image_folder(folder, max_dataset_size=None):
    """Decodes every readable image in a folder.

    Args:
        folder: a directory of images.
        max_dataset_size: keep at most this many readable images (in sorted order).

    Returns:
        ``(images, skipped)``: a list of uint8 ``(h, w, 3)`` arrays and the number of files
        that could not be decoded.

    Raises:
        DataError: the folder is missing, empty or holds no readable image.
    """
    source = scan_folder(folder, max_dataset_size=max_dataset_size, cache_bytes=float("inf"))
    return source.arrays, source.skipped


class ImageSource:
    """An ordered set of RGB images that tf.data can read by index.

    Build one with ``ImageSource.from_arrays`` (pixels in memory) or ``scan_folder``.

    Attributes:
        name: where the images come from.
        count: number of images.
        sizes: list of ``(height, width)``.
        skipped: unreadable files left out.
        paths: file paths (None for in-memory images).
        arrays: decoded arrays when held in memory, else None.
    """

    def __init__(self, name, sizes, skipped=0, paths=None, arrays=None):
        self.name = name
        self.sizes = [tuple(int(v) for v in s) for s in sizes]
        self.count = len(self.sizes)
        self.skipped = skipped
        self.paths = paths
        self.arrays = arrays
        if not self.sizes:
            return
        heights, widths = zip(*self.sizes)
        self._heights = tf.constant(heights, tf.int64)
        self._widths = tf.constant(widths, tf.int64)
        if arrays is not None:
            lengths = [a.size for a in arrays]
            self._offsets = tf.constant(np.cumsum([0] + lengths[:-1]), tf.int64)
            self._buffer = tf.constant(np.concatenate([a.reshape(-1) for a in arrays]))
        else:
            self._paths = tf.constant(paths)

    @classmethod
    def from_arrays(cls, arrays, name, skipped=0, paths=None):
        """An in-memory source from a list of uint8 ``(h, w, 3)`` arrays."""
        arrays = [np.ascontiguousarray(a, dtype=np.uint8) for a in arrays]
        return cls(name, [a.shape[:2] for a in arrays], skipped=skipped, paths=paths,
                   arrays=arrays)

    def subset(self, indices, name=None):
        """A source holding only the images at ``indices`` (in that order)."""
        sizes = [self.sizes[i] for i in indices]
        paths = None if self.paths is None else [self.paths[i] for i in indices]
        arrays = None if self.arrays is None else [self.arrays[i] for i in indices]
        return ImageSource(name or self.name, sizes, skipped=self.skipped, paths=paths,
                           arrays=arrays)

    def load(self, index):
        """Reads image ``index`` inside a tf.function: a uint8 ``(h, w, 3)`` tensor."""
        index = tf.cast(index, tf.int64)
        height, width = self._heights[index], self._widths[index]
        if self.arrays is not None:
            flat = tf.slice(self._buffer, [self._offsets[index]], [height * width * 3])
            return tf.reshape(flat, tf.stack([height, width, 3]))
        image = tf.numpy_function(_decode_for_pipeline, [self._paths[index], height, width],
                                  tf.uint8, stateful=False)
        image.set_shape([None, None, 3])
        return image

    def stream(self, shuffle, seed, repeat=True, start=0):
        """Images in order or reshuffled every pass (deterministic under ``seed``).

        Args:
            shuffle: reshuffle the order on every pass over the images.
            seed: an int seed for the shuffle.
            repeat: loop forever; otherwise one pass.
            start: begin after this many images of the stream, as a resumed run does (only
                indices are skipped: nothing is read for them).

        Returns:
            A ``tf.data.Dataset`` of uint8 ``(h, w, 3)`` images.
        """
        ds = tf.data.Dataset.range(self.count)
        if shuffle:
            ds = ds.shuffle(self.count, seed=seed, reshuffle_each_iteration=True)
        if repeat:
            ds = ds.repeat()
        return ds.skip(start).map(self.load, num_parallel_calls=tf.data.AUTOTUNE)


def _decode_for_pipeline(path, height, width):
    """Decodes inside tf.data; a file broken since the scan becomes gray, not a crash."""
    if isinstance(path, np.ndarray):
        path = path.item()
    path = path.decode() if isinstance(path, bytes) else str(path)
    array, error = try_load(path)
    if array is None or array.shape[:2] != (height, width):
        logging.warning("Could not re-read %s (%s); using a gray image instead.", path,
                        error or "size changed since the scan")
        array = np.full((height, width, 3), 128, np.uint8)
    return array


def scan_images(paths, name, max_dataset_size=None, cache_bytes=None):
    """Decodes files once to find the readable ones.

    Args:
        paths: candidate files, in order.
        name: a label for messages (usually the folder).
        max_dataset_size: stop after this many readable images.
        cache_bytes: keep decoded pixels in memory when they fit in this many bytes
            (None: the module's ``CACHE_BYTES``; 0: always decode in the pipeline).

    Returns:
        ``(source, bad)``: an ``ImageSource`` (possibly empty) and a list of
        ``(path, error)`` for the skipped files.
    """
    cache_bytes = CACHE_BYTES if cache_bytes is None else cache_bytes
    good_paths, sizes, arrays, bad = [], [], [], []
    total = 0
    limit = max_dataset_size or len(paths)
    chunk = 256
    for start in range(0, len(paths), chunk):
        for path, (array, error) in zip(paths[start:start + chunk],
                                        decode_files(paths[start:start + chunk])):
            if len(good_paths) >= limit:
                break
            if array is None:
                bad.append((path, error))
                continue
            good_paths.append(path)
            sizes.append(array.shape[:2])
            total += array.nbytes
            if arrays is not None:
                arrays.append(array)
                if total > cache_bytes:
                    arrays = None  # Too big to hold: decode again inside the pipeline.
        if len(good_paths) >= limit:
            break
    source = ImageSource(name, sizes, skipped=len(bad), paths=good_paths, arrays=arrays)
    return source, bad


def scan_folder(folder, max_dataset_size=None, cache_bytes=None, hint=""):
    """Finds the readable images of a folder.

    Args:
        folder: a directory of images.
        max_dataset_size: keep at most this many readable images (sorted by name).
        cache_bytes: see ``scan_images``.
        hint: extra advice appended to error messages (e.g. the expected layout).

    Returns:
        An ``ImageSource`` with at least one image.

    Raises:
        DataError: the folder is missing, has no image file, or none of them decodes.
    """
    suffix = f" {hint}" if hint else ""
    if not os.path.isdir(folder):
        raise DataError(f"Image folder not found: {folder}.{suffix}")
    paths = list_images(folder)
    if not paths:
        raise DataError(f"No image files ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in "
                        f"folder {folder}.{suffix}")
    source, bad = scan_images(paths, folder, max_dataset_size, cache_bytes)
    log_skipped(folder, bad)
    if source.count == 0:
        raise DataError(f"No readable image in folder {folder}: all {len(bad)} image file(s) "
                        f"failed to decode (e.g. {os.path.basename(bad[0][0])}: {bad[0][1]}).")
    return source


def ensure_rgb(image):
    """Makes a uint8 image tensor 3-channel (gray repeated, alpha dropped)."""
    channels = image.shape[-1]
    if channels == 1:
        return tf.repeat(image, 3, axis=-1)
    if channels == 2:
        return tf.repeat(image[..., :1], 3, axis=-1)
    if channels == 4:
        return image[..., :3]
    if channels is None:
        image = tf.cond(tf.shape(image)[-1] < 3,
                        lambda: tf.repeat(image[..., :1], 3, axis=-1),
                        lambda: image[..., :3])
        image.set_shape([None, None, 3])
    return image


def measure_throughput(dataset, num_batches=50, warmup_batches=2):
    """Measures how fast a dataset delivers examples.

    Args:
        dataset: a batched ``tf.data.Dataset`` whose elements are tensors or tuples of tensors
            with the batch as first dimension.
        num_batches: batches to time.
        warmup_batches: batches read first and not timed (pipeline start-up, caches).

    Returns:
        Examples (rows of the first component) per second. For pair datasets one example is
        one pair.
    """
    iterator = iter(dataset)
    for _ in range(warmup_batches):
        next(iterator)
    count = 0
    start = time.perf_counter()
    for _ in range(num_batches):
        element = next(iterator)
        first = tf.nest.flatten(element)[0]
        count += int(first.shape[0])
    return count / (time.perf_counter() - start)

