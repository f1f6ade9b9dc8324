"""``python -m kgan.crappify --input_dir=CLEAN --output_dir=DEGRADED``: degraded copies on disk.

Writes one degraded PNG per readable image of ``--input_dir`` (``photo.jpg`` ->
``photo.png``; PNG so the file adds no compression of its own), skipping unreadable files
with a count. The degradation of each file depends only on ``--seed`` and its file name, so
reruns give identical files. ``kgan.data.paired_dataset`` pairs the two folders by file name:
put clean images in ``DIR/trainB`` and their degraded copies in ``DIR/trainA``.

Example:
    python -m kgan.crappify --input_dir=photos --output_dir=photos_crappy \\
        --degradations=downscale,text,jpeg --seed=0
"""

import os
import sys
import zlib

from absl import app, flags, logging
from PIL import Image

FLAGS = flags.FLAGS

flags.DEFINE_string("input_dir", None, "Folder of clean images.")
flags.DEFINE_string("output_dir", None, "Folder that receives the degraded PNG copies.")
flags.DEFINE_list("degradations", ["downscale", "jpeg"],
                  "Comma-separated degradations, applied in the order grayscale, blur, "
                  "downscale, noise, text, jpeg.")
flags.DEFINE_integer("seed", 0, "Seed; each file's degradation depends on it and the file name.")
flags.DEFINE_float("min_scale", 2.0, "Smallest downscale factor.")
flags.DEFINE_float("max_scale", 4.0, "Largest downscale factor.")
flags.DEFINE_integer("min_quality", 10, "Lowest JPEG quality.")
flags.DEFINE_integer("max_quality", 70, "Highest JPEG quality.")


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
    from kgan.data import DataError, crappify_array, list_images, load_image, parse_degradations

    names = parse_degradations(degradations)
    paths = list_images(input_dir)
    if not paths:
        raise DataError(f"No image files in {input_dir}.")
    if os.path.abspath(input_dir) == os.path.abspath(output_dir):
        raise DataError("--output_dir must differ from --input_dir (files would be replaced).")
    os.makedirs(output_dir, exist_ok=True)
    written, skipped = 0, 0
    for path in paths:
        name = os.path.basename(path)
        try:
            image = load_image(path)
        except Exception as error:  # Unreadable file: skip and count, never stop.
            logging.warning("Skipping %s: %s", path, error)
            skipped += 1
            continue
        file_seed = [seed, zlib.crc32(name.encode())]
        degraded = crappify_array(image, names, file_seed, **ranges)
        stem = os.path.splitext(name)[0]
        Image.fromarray(degraded).save(os.path.join(output_dir, stem + ".png"))
        written += 1
    if written == 0:
        raise DataError(f"No readable image in {input_dir} ({skipped} file(s) failed to decode).")
    return written, skipped


def main(argv):
    del argv
    from kgan.data import DataError

    if not FLAGS.input_dir or not FLAGS.output_dir:
        sys.exit("kgan.crappify: pass --input_dir=CLEAN_IMAGES and --output_dir=DESTINATION.")
    ranges = dict(scale_range=(FLAGS.min_scale, FLAGS.max_scale),
                  jpeg_quality=(FLAGS.min_quality, FLAGS.max_quality))
    try:
        written, skipped = crappify_folder(FLAGS.input_dir, FLAGS.output_dir,
                                           FLAGS.degradations, FLAGS.seed, **ranges)
    except DataError as error:
        sys.exit(f"kgan.crappify: {error}")
    print(f"kgan.crappify: wrote {written} degraded image(s) to {FLAGS.output_dir}; "
          f"skipped {skipped} unreadable file(s).")


if __name__ == "__main__":
    app.run(main)
