"""Translating image files and folders with a translator (kgan.serving.translators): PNG outputs
named after the inputs, batching of equal-sized images, automatic tiling of large images, one
failing file never ending the run, and an ``index.html`` page with inputs and outputs side by side.

Called by the translate CLI (kgan.cli.translate) and usable from Python::

    from kgan.serving.translators import load_translator
    from kgan.serving.inference import translate_images
    translate_images(load_translator("saved_models/quickstart/generator"), "photos/", "out/")
"""

import html as html_lib
import os
import time
from urllib.parse import quote

import numpy as np
import tensorflow as tf
from PIL import Image

from kgan.core.atomic import atomic_path, write_text
from kgan.data.images import (
    ImageReadError,
    display_name,
    image_size,
    load_image,
    plan_outputs,
    write_image,
)
from kgan.serving.size_buckets import bucket_shape, translate_bucketed
from kgan.serving.tiling import CONV_PIXEL_LIMIT, tile_for_limit, translate_tiled


def choose_tile(translator, height, width, tile=None):
    """The tile side for one image, or None to translate it whole.

    Args:
        translator: a kgan.serving.translators translator (``fixed_size``, ``pixel_limit``,
        ``multiple``). height, width: the image size. tile: the user's ``--tile``: None or -1
        chooses automatically from the model's
            whole-image pixel limit (``kgan.serving.tiling.CONV_PIXEL_LIMIT`` for a translator that
            does not say, so a huge photo never goes through in one piece), 0 never tiles (except
            above a TFLite file's fixed size), N tiles images with a side above N.
    """
    fixed = getattr(translator, "fixed_size", None)
    if fixed:
        tile = min(tile, fixed) if tile and tile > 0 else fixed
        return None if height <= tile and width <= tile else tile
    if tile is None or tile < 0:
        limit = getattr(translator, "pixel_limit", None) or CONV_PIXEL_LIMIT
        if height * width <= limit:
            return None
        return tile_for_limit(limit, _multiple(translator))
    if tile == 0 or (height <= tile and width <= tile):
        return None
    return tile


def whole_shape(translator, height, width, size_buckets=False):
    """The (height, width) a whole image of that size is translated at: with ``size_buckets``
    its size bucket (kgan.serving.size_buckets: few shapes and batches across sizes, outputs changed
    near the borders), else (and for a fixed-size TFLite translator) its own size."""
    if not size_buckets or getattr(translator, "fixed_size", None):
        return height, width
    return bucket_shape(height, width, _multiple(translator),
                        getattr(translator, "pixel_limit", None) or CONV_PIXEL_LIMIT)


def _multiple(translator):
    return getattr(translator, "multiple", 1) or 1


def translate_one(translator, image, tile=None, overlap=None, batch_size=4, size_buckets=False):
    """Translates one uint8 image, tiling it when ``choose_tile`` says so; when the whole image
    runs out of memory it retries in tiles of half the side (down to 64 px).

    Args:
        size_buckets: pad a whole image up to its size bucket (see ``whole_shape``).

    Returns:
        ``(output uint8 (H, W, 3), tile side used or None)``.
    """
    side = choose_tile(translator, *image.shape[:2], tile=tile)
    while True:
        try:
            if side is None:
                shape = whole_shape(translator, *image.shape[:2], size_buckets)
                output = translate_bucketed(translator, [image], shape, _multiple(translator))
                return output[0], None
            return translate_tiled(translator, image, side, overlap, batch_size), side
        except (tf.errors.ResourceExhaustedError, MemoryError):
            current = side or max(image.shape[:2])
            if current <= 64:
                raise
            side = max(64, current // 2 // 8 * 8)


def translate_images(translator, input_path, output_dir, batch_size=4, tile=None, overlap=None,
                     html=True, log=print, size_buckets=False):
    """Translates an image file or a folder into ``output_dir`` (PNG files named after the
    inputs), batching images of equal size (or, with ``size_buckets``, of one size bucket).

    Args:
        translator: from ``kgan.serving.translators.load_translator`` (or any uint8 batch -> uint8
        batch
            callable; ``fixed_size``/``pixel_limit``/``multiple`` attributes guide tiling).
        input_path: an image file or a folder.
        output_dir: where the outputs go (created).
        batch_size: images (or tiles) per call.
        tile: see ``choose_tile`` (None: automatic).
        overlap: tile overlap (default ``tile // 4``).
        html: write ``output_dir/index.html`` with inputs and outputs side by side.
        log: progress callback taking one string.
        size_buckets: reflect-pad whole images up to a few size buckets and crop back, so a
            folder of many sizes runs few shapes and batches across sizes (see
            ``whole_shape``); False (the default) runs each image at its own size.

    Returns:
        A summary dict: ``translated`` (count), ``outputs`` (paths), ``skipped`` (list of
        ``(path, reason)``), ``seconds`` and ``images_per_second``.
    """
    planned = plan_outputs(input_path, output_dir)
    paths = list(planned)

    # Whole images are grouped by the shape they run at, tiled ones by their own size.
    skipped, failed, groups = [], [], {}
    for path in paths:
        try:
            height, width = image_size(path)
        except ImageReadError as error:
            skipped.append((path, str(error)))
            continue
        whole = choose_tile(translator, height, width, tile) is None
        key = (True, whole_shape(translator, height, width, size_buckets)) if whole else \
            (False, (height, width))
        groups.setdefault(key, []).append(path)

    start = time.time()
    done, rows, outputs = 0, [], []
    total = sum(len(group) for group in groups.values())
    log_every = max(1, total // 20)
    for (whole, shape), group in groups.items():
        step = batch_size if whole else 1
        for i in range(0, len(group), step):
            batch_paths, images = [], []
            for path in group[i:i + step]:
                try:
                    images.append(load_image(path))
                    batch_paths.append(path)
                except ImageReadError as error:  # its header read, its data does not
                    skipped.append((path, str(error)))
                    total -= 1
            if not images:
                continue
            try:
                if whole and len(images) > 1:
                    results = translate_bucketed(translator, images, shape, _multiple(translator))
                else:
                    results = [translate_one(translator, image, tile, overlap, batch_size,
                                             size_buckets)[0] for image in images]
            except (tf.errors.ResourceExhaustedError, MemoryError):
                results = [translate_one(translator, image, tile, overlap, batch_size,
                                         size_buckets)[0] for image in images]
            except (tf.errors.OpError, ValueError) as error:
                reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
                failed += [(path, f"{display_name(path)}: translation failed ({reason})")
                           for path in batch_paths]
                total -= len(batch_paths)
                continue
            for path, image, result in zip(batch_paths, images, results):
                out_path = planned[path]
                write_image(out_path, result)
                outputs.append(out_path)
                if html:
                    name = os.path.basename(out_path)
                    rows.append((path, _write_thumbnail(output_dir, name, image), name))
                done += 1
                if done % log_every == 0 or done == total:
                    log(f"[{done}/{total}] {display_name(path)} -> "
                        f"{os.path.join(output_dir, display_name(out_path))}")
    seconds = time.time() - start

    skipped += failed
    if html:
        _write_html(output_dir, rows, skipped)
    summary = {"translated": done, "outputs": outputs, "skipped": skipped,
               "seconds": seconds, "images_per_second": done / seconds if seconds > 0 else 0.0}
    log(f"Translated {done} image(s) in {seconds:.1f} s ({summary['images_per_second']:.2f} "
        f"images/s) into {output_dir}.")
    unreadable = skipped[:len(skipped) - len(failed)]
    if unreadable:
        log(f"Skipped {len(unreadable)} unreadable file(s): "
            + ", ".join(f"{display_name(path)} ({_short(path, reason)})"
                        for path, reason in unreadable))
    if failed:
        log(f"Skipped {len(failed)} file(s) that failed to translate: "
            + ", ".join(display_name(path) for path, _ in failed))
    return summary


def _short(path, reason):
    """A skip reason without the path it starts with, on one line."""
    reason = reason[len(path) + 2:] if reason.startswith(path + ": ") else reason
    return " ".join(reason.split())


def _write_thumbnail(output_dir, name, image, max_side=512):
    """Saves a JPEG copy of an input for the HTML page; returns its path relative to the page."""
    # Decimate a huge input first so the thumbnail never copies the full-size image.
    step = max(1, max(image.shape[:2]) // (2 * max_side))
    thumb = Image.fromarray(np.ascontiguousarray(image[::step, ::step]))
    thumb.thumbnail((max_side, max_side))
    relative = os.path.join("index_files", os.path.splitext(name)[0] + "_input.jpg")
    with atomic_path(os.path.join(output_dir, relative)) as partial:
        thumb.save(partial, format="JPEG", quality=90)
    return relative


def _write_html(output_dir, rows, skipped):
    """Writes ``index.html``: one row per image with the input and the output side by side."""
    escape = html_lib.escape
    lines = ["<!DOCTYPE html>", "<html><head><meta charset='utf-8'><title>kgan results</title>",
             "<style>body{font-family:sans-serif} td{padding:4px;vertical-align:top;"
             "text-align:center} img{max-width:384px;height:auto}</style></head><body>",
             f"<h1>kgan results: {len(rows)} image(s)</h1>",
             "<table><tr><th>name</th><th>input</th><th>output</th></tr>"]
    for path, thumb, name in rows:
        lines.append(f"<tr><td>{escape(os.path.basename(path))}</td>"
                     f"<td><img src='{escape(quote(thumb))}'></td>"
                     f"<td><a href='{escape(quote(name))}'><img src='{escape(quote(name))}'>"
                     "</a></td></tr>")
    lines.append("</table>")
    if skipped:
        lines.append(f"<h2>Skipped {len(skipped)} file(s)</h2><ul>")
        lines += [f"<li>{escape(reason)}</li>" for _, reason in skipped]
        lines.append("</ul>")
    lines.append("</body></html>")
    write_text(os.path.join(output_dir, "index.html"), "\n".join(lines))
