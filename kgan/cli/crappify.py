"""``python -m kgan.crappify --input_dir=CLEAN --output_dir=DEGRADED``: degraded copies on disk.

Writes one degraded PNG per readable image of ``--input_dir`` (``photo.jpg`` ->
``photo.png``; PNG so the file adds no compression of its own), skipping unreadable files
with a count. The degradation of each file depends only on ``--seed`` and its file name, so
reruns give identical files. ``kgan.data.paired_dataset`` pairs the two folders by file name:
put clean images in ``DIR/trainB`` and their degraded copies in ``DIR/trainA``.

Example::

    python -m kgan.crappify --input_dir=photos --output_dir=photos_crappy \\
        --degradations=downscale,text,jpeg --seed=0
"""

from absl import flags

from kgan.cli.common import run_cli
from kgan.data.crappify import crappify_folder


def define_flags():
    if "min_quality" in flags.FLAGS:
        return
    flags.DEFINE_string("input_dir", None, "Folder of clean images.")
    flags.DEFINE_string("output_dir", None, "Folder that receives the degraded PNG copies.")
    flags.DEFINE_list("degradations", ["downscale", "jpeg"],
                      "Comma-separated degradations, applied in the order grayscale, blur, "
                      "downscale, noise, text, jpeg.")
    flags.DEFINE_integer("seed", 0, "Seed; each file's degradation depends on it and the file "
                         "name.")
    flags.DEFINE_float("min_scale", 2.0, "Smallest downscale factor.")
    flags.DEFINE_float("max_scale", 4.0, "Largest downscale factor.")
    flags.DEFINE_integer("min_quality", 10, "Lowest JPEG quality.")
    flags.DEFINE_integer("max_quality", 70, "Highest JPEG quality.")
    flags.mark_flags_as_required(["input_dir", "output_dir"])


def run(f):
    ranges = dict(scale_range=(f.min_scale, f.max_scale),
                  jpeg_quality=(f.min_quality, f.max_quality))
    written, skipped = crappify_folder(f.input_dir, f.output_dir, f.degradations, f.seed,
                                       **ranges)
    print(f"kgan.crappify: wrote {written} degraded image(s) to {f.output_dir}; "
          f"skipped {skipped} unreadable file(s).")


def main(argv=None):
    run_cli("kgan.crappify", run, define_flags, doc=__doc__, argv=argv)
