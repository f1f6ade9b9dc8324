"""Colourises black-and-white photos, folders and videos with a colourisation model.

Examples::

    python -m kgan.colorize --model=saved_models/colorize/generator --input=old.jpg --output=out/
    python -m kgan.colorize --model=run/generators/generator.keras --input=scans/ --output=out/ \
        --render_factor=auto
    python -m kgan.colorize --model=saved_models/colorize/generator --input=film.mp4 \
        --output=film_colour.mp4

The model runs on a gray square of 16 x render_factor pixels (default 35 for photos, 21 for
videos); its chroma is upsampled to full size and merged with the input's own full-resolution
luma, so the output is exactly as sharp as the input. Photos become PNG files (alpha kept) named
after the inputs; unreadable files are skipped by name. Videos (by extension) go through
kgan.video.pipeline with kgan.video.stabilize's temporal stabiliser (--nostabilize turns it off).
A model that is not a colouriser (no colourisation head, no colorize_uint8 signature) is refused
with one line (exit 2): it would only write gray images.

DeOldify's colourisers (converted with ``kgan.convert --generator=deoldify_*``) run with
DeOldify's own pre- and post-processing by default (--pipeline=auto): the picture DeOldify
itself gives (PIL stretch and gray, truncation, OpenCV YUV merge; kgan.colorization.
deoldify_pipeline), because they were trained and tuned with it; --pipeline=kgan runs them
with kgan's exact-luma merge instead. kgan's own colourisers use kgan's merge by default.
"""

import os
import sys

from absl import flags

from kgan.cli.common import nothing_produced, run_cli
from kgan.core.progress import Progress
from kgan.core.errors import UsageError

VIDEO_EXTENSIONS = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv",
                    ".flv", ".ts")


def define_flags():
    if "render_factor" in flags.FLAGS:
        return
    flags.DEFINE_string("model", None, "A colourisation export (python -m kgan.export), a "
                        ".keras generator or a .tflite file (fixed render size).")
    flags.DEFINE_string("input", None, "An image file, a folder of images, or a video file.")
    flags.DEFINE_string("output", None, "Output folder (photos) or video file (videos).")
    flags.DEFINE_string("render_factor", None, "The model runs at 16 x N px: an integer, or "
                        "auto (chosen per image by agreement over a sweep). Default: the one "
                        "the model was scored at (its export's manifest, its run's "
                        "--eval_size / 16), else 35 for photos, 21 for videos.")
    flags.DEFINE_enum("fit", "stretch", ["stretch", "pad"], "How the image fills the render "
                      "square: stretch (aspect ratio discarded, DeOldify's) or pad.")
    flags.DEFINE_enum("pipeline", "auto", ["auto", "deoldify", "kgan"], "Pre/post-processing: "
                      "deoldify (DeOldify's own: its picture exactly), kgan (the input's luma "
                      "kept exactly, float BT.601 merge) or auto: deoldify for DeOldify's "
                      "models (they were tuned with it), kgan for kgan's colourisers.")
    flags.DEFINE_integer("min_render_factor", 4, "Smallest render factor tried after running "
                         "out of memory.")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision of "
                      "the model (bfloat16: float32 weights, bf16 activations; not for .tflite).")
    flags.DEFINE_enum("format", "png", ["png", "jpg"], "Photo output format (png keeps alpha).")
    flags.DEFINE_bool("nostabilize", False, "Videos: colourise each frame independently "
                      "(no temporal stabilisation).")
    flags.DEFINE_bool("progress", True, "Show a progress line with ETA on stderr.")
    flags.mark_flags_as_required(["model", "input", "output"])


def is_video(path):
    """True for a video file, by extension."""
    return path.lower().endswith(VIDEO_EXTENSIONS)


def _warn(message):
    print(message, file=sys.stderr)


def run(f):
    import tensorflow as tf

    from kgan.colorization.colorizer import (
        Colorizer,
        check_render_factor,
        colorize_files,
        not_a_colorizer,
        recommended_render_factor,
    )
    from kgan.serving.loading import load_model

    tf.get_logger().setLevel("ERROR")  # keep TensorFlow's chatter out of the progress line
    video = is_video(f.input)
    existed = os.path.exists(f.output)
    # No --render_factor: the one the model was scored at (its export's manifest or its
    # run's --eval_size), else DeOldify's for photos or video.
    factor = check_render_factor(f.render_factor or recommended_render_factor(f.model), video)
    if not os.path.exists(f.input):
        raise UsageError(f"--input {f.input} does not exist; pass an image, a folder or a video.")
    translator = load_model(f.model, precision=f.precision)
    refusal = not_a_colorizer(translator, f.model)
    if refusal:  # it would only write gray images
        raise UsageError(refusal)
    fixed = getattr(translator, "fixed_size", None)
    if fixed:
        if factor == "auto":
            raise UsageError(f"--render_factor=auto needs a model that takes any size; "
                             f"{f.model} runs at a fixed {fixed} px. Use its SavedModel export.")
        if f.render_factor:
            _warn(f"kgan.colorize: {f.model} runs at a fixed {fixed} px; --render_factor is "
                  "ignored.")
    colorizer = Colorizer(translator, factor, f.fit, min_render_factor=f.min_render_factor,
                          log=_warn, pipeline=f.pipeline)
    if video:
        _run_video(f, colorizer, factor)
        return
    summary = colorize_files(colorizer, f.input, f.output, fmt=f.format,
                             progress=Progress(None, enabled=f.progress, label="kgan.colorize",
                                               item="image", in_place=sys.stderr.isatty()),
                             log=_warn)
    if not summary["colorized"]:
        raise nothing_produced("colourised", summary["skipped"], f.input, f.output, existed)
    line = (f"{summary['colorized']} colourised, {len(summary['skipped'])} skipped in "
            f"{summary['seconds']:.1f} s -> {f.output}")
    if factor == "auto" and summary["render_factors"]:
        chosen = sorted(summary["render_factors"].values())
        line += f" (auto render factors: {', '.join(map(str, chosen))})"
    if summary["out_of_memory"]:
        line += (f" (out of memory: render factor lowered to {summary['render_factor']})"
                 if factor != "auto" else " (out of memory at some render factors)")
    print(line)


def _run_video(f, colorizer, factor):
    try:
        from kgan.video.pipeline import process_video
        from kgan.video.stabilize import TemporalStabilizer
    except ImportError as error:
        raise UsageError(f"Video colourisation needs kgan.video ({error}); "
                         'install the video extra: pip install -e ".[video]".') from error
    if os.path.isdir(f.output) or not is_video(f.output):
        raise UsageError(f"--output {f.output}: a video input needs a video output file "
                         f"({', '.join(VIDEO_EXTENSIONS)}).")
    stabilizer = None if f.nostabilize else TemporalStabilizer()
    settings = {"model": os.path.abspath(f.model), "render_factor": factor, "fit": f.fit,
                "pipeline": colorizer.pipeline}
    process_video(f.input, f.output, frame_fn=colorizer.colorize, stabilizer=stabilizer,
                  resume=True, progress=f.progress, settings=settings)
    print(f"kgan.colorize: wrote {f.output}")


def main(argv=None):
    run_cli("kgan.colorize", run, define_flags, doc=__doc__, argv=argv)
