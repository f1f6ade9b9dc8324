"""Translates images of any size with an exported generator or straight from a training run.

Examples::

    python -m kgan.translate --model=saved_models/horse2zebra/AtoB --input=photos/ --output=out/
    python -m kgan.translate --model=saved_models/horse2zebra/AtoB/float16.tflite \
        --input=horse.jpg --output=out/
    python -m kgan.translate --checkpoint_dir=runs/horse2zebra --direction=BtoA \
        --input=zebras/ --output=out/ --tile=512

Outputs are PNG files named after the inputs (``horse.jpg`` -> ``out/horse.png``) plus an
``index.html`` page showing inputs and outputs side by side. Unreadable files are skipped and
reported; grayscale, palette and RGBA images are converted to RGB (alpha is dropped).
"""

import html as html_lib
import os
import sys
import time

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps

from kgan.export import (SAVED_MODEL_VERSION, TFLiteRunner, find_generators, load_generator,
                         make_translate_uint8)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap height and width


# ----------------------------------------------------------------------------- image files


def list_images(path):
    """Returns the image files at ``path``: the file itself, or a folder's image files (by
    extension, sorted, not recursive).

    Raises:
        FileNotFoundError: when ``path`` is missing or the folder holds no image files.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--input {path} does not exist; pass an image file or a folder.")
    files = sorted(os.path.join(path, name) for name in os.listdir(path)
                   if name.lower().endswith(IMAGE_EXTENSIONS)
                   and os.path.isfile(os.path.join(path, name)))
    if not files:
        raise FileNotFoundError(f"{path} holds no image files ({', '.join(IMAGE_EXTENSIONS)}).")
    return files


def read_image(path):
    """Reads an image file as uint8 (H, W, 3) RGB: EXIF rotation applied, grayscale and palette
    expanded, alpha dropped, first frame of an animation.

    Raises:
        ValueError: when the file is not a readable image.
    """
    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            return np.asarray(image.convert("RGB"), dtype=np.uint8)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def image_size(path):
    """(height, width) of an image file from its header (after EXIF rotation).

    Raises:
        ValueError: when the header cannot be read.
    """
    try:
        with Image.open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSED_ORIENTATIONS:
                height, width = width, height
            return height, width
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ValueError(f"{path}: not a readable image ({error})") from error


def write_png(path, image):
    """Writes uint8 (H, W, 3) ``image`` as a PNG file."""
    Image.fromarray(np.asarray(image, np.uint8)).save(path, format="PNG")


def output_names(paths):
    """Maps input paths to output PNG names keeping the stems (``a.jpg`` -> ``a.png``); inputs
    sharing a stem keep their extension too (``a.jpg`` -> ``a_jpg.png``)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = {}
    for path, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{os.path.splitext(path)[1].lstrip('.').lower()}"
        names[path] = stem + ".png"
    return names


# ----------------------------------------------------------------------------- translators


class SavedModelTranslator:
    """uint8 (N, H, W, 3) -> uint8 through a SavedModel's ``translate_uint8`` signature (any size).

    Args:
        path: an export directory (holding ``1/``) or a SavedModel directory.
    """

    fixed_size = None

    def __init__(self, path):
        self.path = resolve_saved_model(path)
        self.loaded = tf.saved_model.load(self.path)
        if "translate_uint8" not in self.loaded.signatures:
            raise ValueError(f"{self.path} has no translate_uint8 signature; export it with "
                             "python -m kgan.export.")
        self.function = self.loaded.signatures["translate_uint8"]

    def __call__(self, images):
        return self.function(images=tf.constant(images, tf.uint8))["images"].numpy()


class KerasTranslator:
    """uint8 (N, H, W, 3) -> uint8 with a live Keras generator (any size: reflect padded to the
    network's multiple, cropped back).

    Args:
        model: a kgan generator.
    """

    fixed_size = None

    def __init__(self, model):
        self.model = model
        self.function = tf.function(
            make_translate_uint8(model),
            input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8)])

    def __call__(self, images):
        return self.function(tf.constant(images, tf.uint8)).numpy()


class TFLiteTranslator:
    """uint8 (N, h, w, 3) -> uint8 with a fixed-size ``.tflite`` generator; images up to its
    size are reflect-padded to it and cropped back (larger ones go through tiles).

    Args:
        path: the ``.tflite`` file.
    """

    def __init__(self, path):
        self.runner = TFLiteRunner(path)
        self.fixed_size = self.runner.size

    def __call__(self, images):
        images = np.asarray(images)
        height, width = images.shape[1:3]
        size = self.fixed_size
        if height > size or width > size:
            raise ValueError(f"The TFLite model takes at most {size}x{size}; got {height}x{width}.")
        top, left = (size - height) // 2, (size - width) // 2
        padded = np.pad(images, ((0, 0), (top, size - height - top), (left, size - width - left),
                                 (0, 0)), mode="reflect")
        outputs = self.runner(padded.astype(np.float32) / 127.5 - 1.0)
        outputs = outputs[:, top:top + height, left:left + width]
        return np.clip(np.round((outputs + 1.0) * 127.5), 0, 255).astype(np.uint8)


def resolve_saved_model(path):
    """Returns the SavedModel directory for ``path``: itself when it holds ``saved_model.pb``,
    else its highest numeric version sub-directory (TF Serving layout).

    Raises:
        FileNotFoundError: with a hint when ``path`` is not an export.
    """
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    if not os.path.isdir(path):
        raise FileNotFoundError(f"--model {path} does not exist; pass an export directory "
                                "(python -m kgan.export --output_dir) or a .tflite file.")
    versions = sorted((int(name) for name in os.listdir(path) if name.isdigit()
                       and os.path.isfile(os.path.join(path, name, "saved_model.pb"))))
    if versions:
        return os.path.join(path, str(versions[-1]))
    exports = sorted(name for name in os.listdir(path) if os.path.isfile(
        os.path.join(path, name, SAVED_MODEL_VERSION, "saved_model.pb")))
    if exports:
        raise FileNotFoundError(f"{path} holds several exports ({', '.join(exports)}); pass "
                                f"one of them, e.g. --model={os.path.join(path, exports[0])}.")
    raise FileNotFoundError(f"{path} is not a SavedModel export (no saved_model.pb); export "
                            "with python -m kgan.export or pass a .tflite file.")


def load_translator(model=None, checkpoint_dir=None, direction=None):
    """Builds a translator from ``--model`` (export directory, SavedModel or ``.tflite``) or
    ``--checkpoint_dir`` (a training run's ``generators/<direction>.keras``).

    Args:
        model: path of an export directory, SavedModel directory or ``.tflite`` file.
        checkpoint_dir: a training run directory (used when ``model`` is None).
        direction: the generator of the run: ``AtoB``, ``BtoA`` or ``generator``; default the
            only one, or ``AtoB``.

    Returns:
        A callable uint8 (N, H, W, 3) -> uint8 (N, H, W, 3) with a ``fixed_size`` attribute.
    """
    if (model is None) == (checkpoint_dir is None):
        raise ValueError("Pass exactly one of --model (an export or .tflite file) and "
                         "--checkpoint_dir (a training run).")
    if model is not None:
        if model.endswith(".tflite"):
            if not os.path.isfile(model):
                raise FileNotFoundError(f"--model {model} does not exist.")
            return TFLiteTranslator(model)
        return SavedModelTranslator(model)
    generators = find_generators(checkpoint_dir)
    if direction is None:
        direction = next(iter(generators)) if len(generators) == 1 else "AtoB"
    if direction not in generators:
        raise ValueError(f"--direction={direction} has no generator in {checkpoint_dir}; "
                         f"use one of {', '.join(generators)}.")
    return KerasTranslator(load_generator(generators[direction]))


# ----------------------------------------------------------------------------- tiling


def _tile_starts(length, tile, overlap):
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def _feather(length, overlap):
    """1-D blending weights: linear ramps over ``overlap`` pixels at both ends, 1 inside."""
    ramp = max(1, overlap)
    positions = np.arange(length)
    return np.minimum(np.minimum(positions + 1, length - positions), ramp) / ramp


def translate_tiled(translator, image, tile, overlap=None, batch_size=4):
    """Translates one large image in overlapping ``tile`` x ``tile`` tiles, cross-fading the
    overlaps with linear (feathered) weights so that no seams show.

    Args:
        translator: uint8 batch -> uint8 batch callable.
        image: uint8 (H, W, 3).
        tile: tile side in pixels.
        overlap: overlap between neighbouring tiles (default ``tile // 4``).
        batch_size: tiles per call.

    Returns:
        uint8 (H, W, 3).
    """
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"The tile overlap must be in [0, {tile}), got {overlap}.")
    height, width = image.shape[:2]
    tile_h, tile_w = min(tile, height), min(tile, width)
    weight = np.outer(_feather(tile_h, overlap), _feather(tile_w, overlap))[..., np.newaxis]
    boxes = [(y, x) for y in _tile_starts(height, tile, overlap)
             for x in _tile_starts(width, tile, overlap)]
    total = np.zeros((height, width, 3), np.float64)
    weights = np.zeros((height, width, 1), np.float64)
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i:i + batch_size]
        tiles = np.stack([image[y:y + tile_h, x:x + tile_w] for y, x in chunk])
        for (y, x), out in zip(chunk, translator(tiles)):
            total[y:y + tile_h, x:x + tile_w] += out * weight
            weights[y:y + tile_h, x:x + tile_w] += weight
    return np.clip(np.round(total / weights), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------------- folders


def translate_images(translator, input_path, output_dir, batch_size=4, tile=None, overlap=None,
                     html=True, log=print):
    """Translates an image file or a folder into ``output_dir`` (PNG files named after the
    inputs), batching images of equal size.

    Images with a side above ``tile`` (and every image larger than a TFLite model's fixed size)
    go through ``translate_tiled``; the others are translated whole.

    Args:
        translator: from ``load_translator`` (or any uint8 batch -> uint8 batch callable with a
            ``fixed_size`` attribute).
        input_path: an image file or a folder.
        output_dir: where the outputs go (created).
        batch_size: images (or tiles) per call.
        tile: tile side for large images; None or 0 translates images whole.
        overlap: tile overlap (default ``tile // 4``).
        html: write ``output_dir/index.html`` with inputs and outputs side by side.
        log: progress callback taking one string.

    Returns:
        A summary dict: ``translated`` (count), ``outputs`` (paths), ``skipped`` (list of
        ``(path, reason)``), ``seconds`` and ``images_per_second``.
    """
    paths = list_images(input_path)
    input_folder = input_path if os.path.isdir(input_path) else os.path.dirname(input_path)
    if os.path.realpath(output_dir) == os.path.realpath(input_folder or "."):
        raise ValueError(f"--output {output_dir} is the input folder; outputs would overwrite "
                         "PNG inputs. Choose another --output folder.")
    os.makedirs(output_dir, exist_ok=True)
    names = output_names(paths)
    fixed = getattr(translator, "fixed_size", None)
    if fixed:
        tile = min(tile, fixed) if tile else fixed

    skipped, groups = [], {}
    for path in paths:
        try:
            groups.setdefault(image_size(path), []).append(path)
        except ValueError as error:
            skipped.append((path, str(error)))

    start = time.time()
    done, rows, outputs = 0, [], []
    total = sum(len(group) for group in groups.values())
    log_every = max(1, total // 20)
    for (height, width), group in groups.items():
        whole = not tile or (height <= tile and width <= tile)
        step = batch_size if whole else 1
        for i in range(0, len(group), step):
            batch_paths, images = [], []
            for path in group[i:i + step]:
                try:
                    images.append(read_image(path))
                    batch_paths.append(path)
                except ValueError as error:
                    skipped.append((path, str(error)))
            if not images:
                continue
            if whole:
                results = translator(np.stack(images))
            else:
                results = [translate_tiled(translator, images[0], tile, overlap, batch_size)]
            for path, image, result in zip(batch_paths, images, results):
                out_path = os.path.join(output_dir, names[path])
                write_png(out_path, result)
                outputs.append(out_path)
                if html:
                    rows.append((path, _write_thumbnail(output_dir, names[path], image),
                                 names[path]))
                done += 1
                if done % log_every == 0 or done == total:
                    log(f"[{done}/{total}] {os.path.basename(path)} -> {out_path}")
    seconds = time.time() - start

    if html:
        _write_html(output_dir, rows, skipped)
    summary = {"translated": done, "outputs": outputs, "skipped": skipped,
               "seconds": seconds, "images_per_second": done / seconds if seconds > 0 else 0.0}
    log(f"Translated {done} image(s) in {seconds:.1f} s ({summary['images_per_second']:.2f} "
        f"images/s) into {output_dir}.")
    if skipped:
        log(f"Skipped {len(skipped)} unreadable file(s): "
            + ", ".join(os.path.basename(path) for path, _ in skipped))
    return summary


def _write_thumbnail(output_dir, name, image, max_side=512):
    """Saves a JPEG copy of an input for the HTML page; returns its path relative to the page."""
    folder = os.path.join(output_dir, "index_files")
    os.makedirs(folder, exist_ok=True)
    thumb = Image.fromarray(image)
    thumb.thumbnail((max_side, max_side))
    relative = os.path.join("index_files", os.path.splitext(name)[0] + "_input.jpg")
    thumb.save(os.path.join(output_dir, relative), format="JPEG", quality=90)
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
                     f"<td><img src='{escape(thumb)}'></td>"
                     f"<td><a href='{escape(name)}'><img src='{escape(name)}'></a></td></tr>")
    lines.append("</table>")
    if skipped:
        lines.append(f"<h2>Skipped {len(skipped)} unreadable file(s)</h2><ul>")
        lines += [f"<li>{escape(reason)}</li>" for _, reason in skipped]
        lines.append("</ul>")
    lines.append("</body></html>")
    with open(os.path.join(output_dir, "index.html"), "w") as f:
        f.write("\n".join(lines))


# ----------------------------------------------------------------------------- CLI


def _define_flags():
    from absl import flags

    flags.DEFINE_string("model", None, "An export directory (python -m kgan.export), a "
                        "SavedModel directory or a .tflite file.")
    flags.DEFINE_string("checkpoint_dir", None, "A training run directory; translates with its "
                        "generators/<direction>.keras instead of an export.")
    flags.DEFINE_string("direction", None, "Generator of --checkpoint_dir: AtoB, BtoA or "
                        "generator (default: the only one, else AtoB).")
    flags.DEFINE_string("input", None, "An image file or a folder of images.")
    flags.DEFINE_string("output", None, "Output folder (PNG files named after the inputs).")
    flags.DEFINE_integer("batch_size", 4, "Images (or tiles) per call.")
    flags.DEFINE_integer("tile", 0, "Translate images with a side above this in overlapping "
                         "tiles of this size (0: whole images; TFLite: its fixed size).")
    flags.DEFINE_integer("tile_overlap", None, "Overlap of neighbouring tiles (default tile/4).")
    flags.DEFINE_bool("html", True, "Write index.html with inputs and outputs side by side.")
    flags.mark_flags_as_required(["input", "output"])


def main(argv):
    """``python -m kgan.translate``."""
    from absl import flags, logging

    del argv
    flags_ = flags.FLAGS
    tf.get_logger().setLevel("ERROR")  # keep TensorFlow's INFO chatter out of the progress log
    try:
        start = time.time()
        translator = load_translator(flags_.model, flags_.checkpoint_dir, flags_.direction)
        logging.info("Loaded the model in %.1f s.", time.time() - start)
        summary = translate_images(translator, flags_.input, flags_.output,
                                   batch_size=flags_.batch_size, tile=flags_.tile or None,
                                   overlap=flags_.tile_overlap, html=flags_.html,
                                   log=logging.info)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"kgan.translate: {error}")
    print(f"{summary['translated']} translated, {len(summary['skipped'])} skipped, "
          f"{summary['images_per_second']:.2f} images/s -> {flags_.output}")


if __name__ == "__main__":
    from absl import app

    _define_flags()
    app.run(main)
