"""The stabiliser with a trained colouriser, end to end through ``kgan.colorize``.

Makes a black-and-white clip of a window panning over a held-out colour photo (whole pixels per
frame, so the flow is exact), encodes it to H.264 at 29.97 fps, colourises it with
``python -m kgan.colorize --model=MODEL`` with and without ``--nostabilize``, reads both results
back and prints, for the per-frame and the stabilised output: the chroma warping error (exact
flow), the mean colourfulness, and the largest invented chroma (``kgan.metrics.video
.invented_chroma``: 8x8 tiles whose chroma departs from both the warped previous output and this
frame's per-frame output, 8-bit levels) overall and in the last ``--edge`` columns where new
content enters; then the ratios the issue targets (warping error <= 0.7x, colourfulness >= 0.9x).

Not a test (a trained model and a few minutes). Example, after the colourisation quickstart::

    python -m kgan.train --flagfile=configs/colorize_quickstart.cfg
    PYTHONPATH=. python benchmarks/stabilizer_real_model.py \
        --model=saved_models/colorize_quickstart --photo=coffee --frames=36
"""

import argparse
import os
import subprocess
import sys
import tempfile
from fractions import Fraction

import numpy as np

from kgan.core import frame_ops
from kgan.metrics import video as video_metrics
from kgan.video import ffmpeg

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True, help="a colourisation export, run or .keras")
    parser.add_argument("--photo", default="coffee", help="a scikit-image colour photo")
    parser.add_argument("--height", type=int, default=192)
    parser.add_argument("--width", type=int, default=256)
    parser.add_argument("--frames", type=int, default=36)
    parser.add_argument("--dx", type=int, default=2, help="pixels per frame (even)")
    parser.add_argument("--edge", type=int, default=40, help="columns of the entering strip")
    parser.add_argument("--render_factor", default=None)
    parser.add_argument("--workdir", default=None)
    return parser.parse_args(argv)


def gray_pan(photo_name, height, width, frames, dx):
    """Gray RGB frames of a height x width window moving right by dx pixels per frame (the
    content moves left; new content enters on the right)."""
    import skimage.data

    photo = getattr(skimage.data, photo_name)()
    if photo.shape[0] < height or photo.shape[1] < width + dx * (frames - 1):
        raise SystemExit(f"{photo_name} ({photo.shape[1]}x{photo.shape[0]}) is too small")
    luma = np.round(frame_ops.rgb_to_yuv(photo)[..., 0] * 255).astype(np.uint8)
    gray = np.repeat(luma[..., None], 3, axis=-1)
    return [gray[:height, dx * t:dx * t + width] for t in range(frames)]


def colorize(model, clip, output, *flags):
    command = [sys.executable, "-m", "kgan.colorize", f"--model={model}", f"--input={clip}",
               f"--output={output}", *flags]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return [np.asarray(frame) for frame in ffmpeg.read_frames(output)]


def main(argv=None):
    args = parse_args(argv)
    workdir = args.workdir or tempfile.mkdtemp(prefix="kgan_stab_")
    os.makedirs(workdir, exist_ok=True)
    frames = gray_pan(args.photo, args.height, args.width, args.frames, args.dx)
    clip = os.path.join(workdir, "pan.mp4")
    writer = ffmpeg.FrameWriter(clip, args.width, args.height, Fraction(30000, 1001))
    for frame in frames:
        writer.write(frame)
    writer.close()
    flags = [f"--render_factor={args.render_factor}"] if args.render_factor else []
    per_frame = colorize(args.model, clip, os.path.join(workdir, "per_frame.mp4"),
                         "--nostabilize", *flags)
    stable = colorize(args.model, clip, os.path.join(workdir, "stable.mp4"), *flags)
    forward = frame_ops.constant_flow(args.height, args.width, 0, -args.dx)  # t -> t+1
    backward = frame_ops.constant_flow(args.height, args.width, 0, args.dx)  # t -> t-1
    edge = slice(args.width - args.edge, args.width)
    figures = {}
    for name, outputs in (("per-frame", per_frame), ("stabilised", stable)):
        invented = video_metrics.invented_chroma(outputs, per_frame, flows=backward) * 255
        invented_edge = video_metrics.invented_chroma(
            [o[:, edge] for o in outputs], [p[:, edge] for p in per_frame],
            flows=backward[:, :, edge]) * 255
        figures[name] = {
            "warp": video_metrics.chroma_warping_error(outputs, flows=forward),
            "colourfulness": video_metrics.mean_colourfulness(outputs),
            "invented": float(invented.max()), "invented_edge": float(invented_edge.max())}
    print(f"{args.photo}, {args.frames} frames {args.width}x{args.height}, pan {args.dx} px/frame,"
          f" model {args.model}")
    print("| output | warping error (x1e-4) | colourfulness | invented chroma, max (levels) | "
          f"in the last {args.edge} columns |")
    print("|---|---|---|---|---|")
    for name, f in figures.items():
        print(f"| {name} | {f['warp'] * 1e4:.2f} | {f['colourfulness']:.1f} | "
              f"{f['invented']:.1f} | {f['invented_edge']:.1f} |")
    base, stab = figures["per-frame"], figures["stabilised"]
    print(f"stabilised / per-frame: warping error {stab['warp'] / base['warp']:.2f}x (target "
          f"<= 0.7x), colourfulness {stab['colourfulness'] / base['colourfulness']:.2f}x "
          "(target >= 0.9x)")
    print(f"files in {workdir}")


if __name__ == "__main__":
    main()
