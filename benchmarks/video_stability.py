"""How much ``kgan.video.stabilize.TemporalStabilizer`` steadies a flickering per-frame colouriser.

A synthetic clip: a window panning over a scikit-image colour photo by whole, even pixels per
frame (so the flow is known exactly and 4:2:0 chroma subsampling puts no floor under the
error). A "flickering colouriser" gives each frame the true colours turned by a random global
hue angle and scaled by a random saturation factor, plus per-pixel chroma noise, on the
original's luma (frame 0 keeps the true colours). The chroma warping error (exact flow, and
flow estimated on the input frames), the static-pixel chroma flicker, the frame-to-frame
mean-chroma change and the colourfulness are printed for the per-frame output and the
stabilised one, first on frames in memory and then (``--video``) through real files: the clip
is encoded to H.264 with a sine audio track and ``kgan.video.pipeline.process_video`` runs the
colouriser with and without the stabiliser.

    python benchmarks/video_stability.py                  # in memory, 256x256, 48 frames
    python benchmarks/video_stability.py --video          # also through mp4 files
    python benchmarks/video_stability.py --strengths=0.3,1,3 --motions=flow,shift

A measurement tool, not part of the test suite.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from kgan.core import frame_ops
from kgan.metrics import video as video_metrics
from kgan.video import ffmpeg
from kgan.video import pipeline as video
from kgan.video.stabilize import TemporalStabilizer


class _Clock:
    """CPU time of this process (the machine may be shared) and wall time."""

    def __init__(self):
        self.cpu, self.wall = time.process_time(), time.perf_counter()

    def per_frame(self, frames):
        return {"cpu_ms_per_frame": 1000 * (time.process_time() - self.cpu) / frames,
                "wall_ms_per_frame": 1000 * (time.perf_counter() - self.wall) / frames}


def pan_clip(photo_name, size, frames, dy, dx):
    """Frames of a ``size`` window moving by (dy, dx) pixels per frame over a skimage photo."""
    import skimage.data

    photo = getattr(skimage.data, photo_name)()
    need_h, need_w = size + abs(dy) * (frames - 1), size + abs(dx) * (frames - 1)
    if photo.shape[0] < need_h or photo.shape[1] < need_w:
        raise SystemExit(f"{photo_name} ({photo.shape[1]}x{photo.shape[0]}) is too small for "
                         f"{frames} frames of a {size}px window moving by ({dy}, {dx})")
    top0 = 0 if dy >= 0 else photo.shape[0] - size
    left0 = 0 if dx >= 0 else photo.shape[1] - size
    return [photo[top0 + dy * t:top0 + dy * t + size, left0 + dx * t:left0 + dx * t + size]
            for t in range(frames)]


def flicker(frame, index, seed, noise=0.01, hue_sd=0.3, saturation=0.3):
    """The flickering colouriser's output for frame ``index`` (deterministic per frame)."""
    rng = np.random.default_rng([seed, index])
    yuv = frame_ops.rgb_to_yuv(frame)
    angle, scale = rng.normal(0, hue_sd), rng.uniform(1 - saturation, 1 + saturation)
    if index == 0:
        angle, scale = 0.0, 1.0
    rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]], np.float32)
    yuv[..., 1:] = scale * (yuv[..., 1:] @ rot) + \
        rng.normal(0, noise, yuv[..., 1:].shape).astype(np.float32)
    return frame_ops.yuv_to_rgb_uint8(yuv)


def measure(outputs, inputs, exact_flow):
    """The metrics of one output clip (lists of frames)."""
    return {
        "warp_exact": video_metrics.chroma_warping_error(outputs, flows=exact_flow),
        "warp_flow": video_metrics.chroma_warping_error(outputs, inputs=inputs),
        "static_flicker": video_metrics.static_chroma_flicker(outputs, inputs),
        "mean_chroma_change": video_metrics.mean_chroma_change(outputs),
        "colourfulness": video_metrics.mean_colourfulness(outputs),
    }


def print_table(title, rows):
    print(f"\n{title}")
    print("| output | warping error, exact flow (x1e-4) | warping error, estimated flow (x1e-4)"
          " | static-pixel flicker (x1e-3) | mean-chroma change (x1e-3) | colourfulness "
          "| CPU (wall) ms/frame |")
    print("|---|---|---|---|---|---|---|")
    for name, m in rows:
        ms = (f"{m['cpu_ms_per_frame']:.0f} ({m['wall_ms_per_frame']:.0f})"
              if "cpu_ms_per_frame" in m else "-")
        print(f"| {name} | {m['warp_exact'] * 1e4:.2f} | {m['warp_flow'] * 1e4:.2f} | "
              f"{m['static_flicker'] * 1e3:.2f} | {m['mean_chroma_change'] * 1e3:.2f} | "
              f"{m['colourfulness']:.1f} | {ms} |")


def make_source_video(frames, path, fps="30000/1001"):
    """Encodes the truth frames (H.264 CRF 17) with a sine AAC track as the source clip."""
    tmp = path + ".noaudio.mp4"
    writer = video.FrameWriter(tmp, frames[0].shape[1], frames[0].shape[0], fps)
    for frame in frames:
        writer.write(frame)
    writer.close()
    seconds = len(frames) * 1001 / 30000
    subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-y", "-i", tmp, "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-t", f"{seconds:.3f}",
                    "-map", "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", path],
                   check=True)
    os.remove(tmp)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default="astronaut")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--frames", type=int, default=48)
    parser.add_argument("--pan", default="2,4", help="dy,dx pixels per frame (even)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--noise", type=float, default=0.01,
                        help="per-pixel chroma noise of the colouriser (0-1 chroma scale)")
    parser.add_argument("--strengths", default="1", help="stabiliser lambdas, comma-separated")
    parser.add_argument("--motions", default="flow", help="flow, shift, none; comma-separated")
    parser.add_argument("--video", action="store_true", help="also run through mp4 files")
    parser.add_argument("--workdir", default=None, help="folder for the --video files")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    dy, dx = (int(v) for v in args.pan.split(","))
    truth = pan_clip(args.photo, args.size, args.frames, dy, dx)
    # Frame t+1 at x - (dy, dx) shows what frame t shows at x.
    exact = frame_ops.constant_flow(args.size, args.size, -dy, -dx)
    per_frame = [flicker(f, t, args.seed, args.noise) for t, f in enumerate(truth)]
    results = {"setup": vars(args), "memory": {}, "video": {}}
    rows = [("truth", measure(truth, truth, exact)),
            ("per-frame colouriser", measure(per_frame, truth, exact))]
    for strength in (float(s) for s in args.strengths.split(",")):
        for motion in args.motions.split(","):
            stabilizer = TemporalStabilizer(strength=strength, motion=motion)
            clock = _Clock()
            stable = [stabilizer(p, guide=f) for p, f in zip(per_frame, truth)]
            timing = clock.per_frame(len(truth))
            m = measure(stable, truth, exact)
            m.update(timing)
            rows.append((f"stabilised (strength={strength:g}, motion={motion})", m))
    results["memory"] = dict(rows)
    print_table(f"In memory: {args.photo}, {args.size}x{args.size}, {args.frames} frames, pan "
                f"({dy}, {dx}) px/frame, chroma noise {args.noise}, seed {args.seed}", rows)
    if args.video:
        work = args.workdir or tempfile.mkdtemp(prefix="kgan_video_stability_")
        os.makedirs(work, exist_ok=True)
        source = os.path.join(work, "source.mp4")
        make_source_video(truth, source)
        inputs = list(video.read_frames(source))
        video_rows = [("source (H.264)", measure(inputs, inputs, exact))]
        for name, stabilizer in (("per-frame", None), ("stabilised", TemporalStabilizer())):
            counter = iter(range(10 ** 9))
            out = os.path.join(work, f"{name}.mp4")
            clock = _Clock()
            info = video.process_video(source, out, lambda f: flicker(f, next(counter),
                                                                      args.seed, args.noise),
                                       stabilizer=stabilizer, resume=False, progress=False)
            timing = clock.per_frame(info.frame_count)
            m = measure(list(video.read_frames(out)), inputs, exact)
            m.update(timing)
            video_rows.append((f"{name} ({info.frame_count} frames, {info.fps} fps)", m))
        results["video"] = dict(video_rows)
        print_table(f"Through H.264 files in {work} (process_video, CRF 17; ms/frame: this "
                    "process's CPU only, the ffmpeg decoder and encoder run in their own "
                    "processes)", video_rows)
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(results, f, indent=1, default=str)
    return results


if __name__ == "__main__":
    sys.exit(main() and 0)
