"""Video in and out for per-frame models: probe a clip, stream its frames, and write the
processed frames as H.264 with the source's exact frame rate and its audio copied unchanged,
resumably.

``process_video(input, output, frame_fn)`` reads any container ffmpeg reads, passes each frame
(HxWx3 uint8 RGB) through ``frame_fn`` (and an optional ``kgan.stabilize.TemporalStabilizer``),
and writes ``output``: H.264 yuv420p (BT.709, CRF 17), the same number of frames at the same
rational frame rate (e.g. 30000/1001), the audio streams copied bit-exact. Frames are streamed
through pipes, never stored as images or held all at once. The video is written in segments of
``chunk_frames`` frames inside a hidden folder next to the output (``.out.mp4.parts/``); each
finished segment is committed atomically in a small JSON state, so running the same call again
after an interruption skips the finished segments. At the end the segments are joined without
re-encoding (ffmpeg's concat demuxer) and the source's audio is muxed in.

ffmpeg comes from the optional ``imageio-ffmpeg`` package (``pip install -e ".[video]"``),
whose wheel ships a static binary, so no system ffmpeg is needed. Called by the colourisation
CLI (``kgan.cli.colorize``) and ``benchmarks/video_stability.py``.
"""

import dataclasses
import fractions
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from absl import logging

from kgan.errors import KganError
from kgan.progress import Progress

# Frame rates a millisecond-timestamp container (Matroska, WebM, FLV) can only approximate.
COMMON_RATES = [fractions.Fraction(n, d) for n, d in (
    (24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (48, 1), (50, 1),
    (60000, 1001), (60, 1), (120, 1))]
STATE_VERSION = 1
# Extensions a CLI can route to process_video instead of the photo path.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                    ".mts", ".m2ts", ".flv", ".wmv", ".ogv", ".3gp")
# Shortest segment: x264 gives clips of 1-2 frames no B-frame decode delay, and a segment whose
# delay differs from the others' breaks the joined file's timestamps, so a short tail is
# absorbed into the segment before it.
MIN_SEGMENT_FRAMES = 8


class VideoError(KganError, RuntimeError):
    """A video that cannot be read or written (the message has ffmpeg's reason)."""


class VideoNotFoundError(KganError, FileNotFoundError):
    """The input video does not exist."""


class VideoDependencyError(KganError, ImportError):
    """The optional video dependency (imageio-ffmpeg) is not installed."""


def is_video_path(path):
    """True when ``path``'s extension is a video container's (``VIDEO_EXTENSIONS``)."""
    return os.path.splitext(str(path))[1].lower() in VIDEO_EXTENSIONS


def ffmpeg_exe():
    """Path of the ffmpeg binary bundled with imageio-ffmpeg.

    Raises:
        VideoDependencyError: imageio-ffmpeg is missing (names the ``video`` extra).
    """
    try:
        import imageio_ffmpeg
    except ImportError as e:
        raise VideoDependencyError(
            "video needs the optional imageio-ffmpeg package (it ships ffmpeg): "
            "pip install -e \".[video]\" (or pip install imageio-ffmpeg)") from e
    return imageio_ffmpeg.get_ffmpeg_exe()


@dataclasses.dataclass
class VideoInfo:
    """What ``probe`` found in a video file.

    Attributes:
        path: the file.
        width, height: frame size as decoded (after the rotation ffmpeg applies).
        fps: frame rate as an exact fraction (e.g. Fraction(30000, 1001)).
        frame_count: number of video packets (frames).
        video_codec: e.g. ``"h264"``.
        audio_codec: codec of the first audio stream, None when there is no audio.
    """
    path: str
    width: int
    height: int
    fps: fractions.Fraction
    frame_count: int
    video_codec: str
    audio_codec: object = None

    @property
    def has_audio(self):
        return self.audio_codec is not None


def _run_ffmpeg(args, what):
    """Runs ffmpeg with ``args``; returns (stdout bytes, stderr text) or raises VideoError."""
    proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-nostats"] + args,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, check=False)
    stderr = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        tail = " | ".join(stderr.strip().splitlines()[-3:])
        raise VideoError(f"{what} failed (ffmpeg exit {proc.returncode}): {tail}")
    return proc.stdout, stderr


def _frame_rate(pts, durations, time_base, stderr):
    """Exact frame rate from packet timestamps (in ``time_base`` units).

    Evenly spaced timestamps give it exactly (mp4, mov, ts); a millisecond time base
    (Matroska, WebM) only approximates rates such as 30000/1001, so the mean rate is snapped to
    the nearest common rate within 0.2 %.
    """
    pts = sorted(pts)
    steps = set(b - a for a, b in zip(pts, pts[1:]))
    if len(steps) == 1 and min(steps) > 0:
        return 1 / (steps.pop() * time_base)
    if len(pts) >= 2 and pts[-1] > pts[0]:
        rate = (len(pts) - 1) / ((pts[-1] - pts[0]) * time_base)
    elif durations and durations[0] > 0:
        rate = 1 / (durations[0] * time_base)
    else:
        match = re.search(r"Video:.*?([\d.]+) fps", stderr)
        if not match:
            raise VideoError("could not find the video's frame rate")
        rate = fractions.Fraction(match.group(1))
    for common in COMMON_RATES:
        if abs(rate / common - 1) < 2e-3:
            return common
    return rate.limit_denominator(1001)


def probe(path):
    """Reads a video's size, exact frame rate, frame count and audio codec.

    It lists the packets of the first video and audio streams with ``ffmpeg -c copy -f
    framecrc`` (no decoding): the time base and per-packet durations give the rational frame
    rate exactly, the packet count the frame count.

    Args:
        path: a video file in any container ffmpeg reads.

    Returns:
        A ``VideoInfo``.
    """
    if not os.path.isfile(path):
        raise VideoNotFoundError(f"no such video: {path}")
    out, stderr = _run_ffmpeg(["-i", path, "-map", "0:v:0", "-map", "0:a:0?", "-c", "copy",
                               "-f", "framecrc", "-"], f"reading {path}")
    header, pts, durations = {}, [], []
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("#"):
            key, _, value = line[1:].partition(":")
            header[key.strip()] = value.strip()
        elif line.startswith("0,"):
            fields = line.split(",")
            pts.append(int(fields[2]))
            durations.append(int(fields[3]))
    if header.get("media_type 0") != "video":
        raise VideoError(f"{path} has no video stream")
    width, height = (int(v) for v in header["dimensions 0"].split("x"))
    rotation = re.search(r"rotation of (-?[\d.]+) degrees", stderr)
    if rotation and round(abs(float(rotation.group(1)))) % 180 == 90:
        width, height = height, width  # ffmpeg decodes rotated clips upright
    time_base = fractions.Fraction(header["tb 0"])
    audio = header.get("codec_id 1") if header.get("media_type 1") == "audio" else None
    return VideoInfo(path=path, width=width, height=height,
                     fps=_frame_rate(pts, durations, time_base, stderr),
                     frame_count=len(pts), video_codec=header.get("codec_id 0", "?"),
                     audio_codec=audio)


def read_frames(path, start_frame=0, info=None):
    """Streams a video's frames as HxWx3 uint8 RGB arrays, one at a time.

    Args:
        path: the video file.
        start_frame: index of the first frame to yield (earlier ones are decoded and dropped
            inside ffmpeg, so frame numbers stay exact).
        info: its ``VideoInfo`` if already probed.

    Yields:
        HxWx3 uint8 arrays, every frame once (no frame rate conversion).
    """
    info = info or probe(path)
    args = [ffmpeg_exe(), "-nostdin", "-v", "error", "-i", path, "-map", "0:v:0"]
    if start_frame:
        args += ["-vf", f"select=gte(n\\,{int(start_frame)})"]
    args += ["-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    frame_bytes = info.width * info.height * 3
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=errors)
        try:
            while True:
                data = proc.stdout.read(frame_bytes)
                if len(data) < frame_bytes:
                    break
                yield np.frombuffer(data, np.uint8).reshape(info.height, info.width, 3)
        finally:
            proc.stdout.close()
            if proc.poll() is None and len(data) == frame_bytes:  # closed early by the caller
                proc.kill()
            code = proc.wait()
        if code != 0 and len(data) < frame_bytes:
            errors.seek(0)
            raise VideoError(f"decoding {path} failed: "
                             f"{errors.read().decode('utf-8', 'replace').strip()[-500:]}")


class FrameWriter:
    """Encodes uint8 RGB frames to an H.264 yuv420p file through an ffmpeg pipe.

    Odd widths or heights are padded to even by repeating the last column or row (4:2:0 needs
    even sizes). The frame rate goes to ffmpeg as the exact fraction. The output is tagged and
    converted as BT.709 (limited range).
    """

    def __init__(self, path, width, height, fps, crf=17, preset="medium", container="mp4"):
        """Args:
            path: output file (no audio).
            width, height: size of the frames that ``write`` gets.
            fps: frame rate, a Fraction (or anything Fraction accepts).
            crf: x264 constant rate factor (17 = DeOldify's, visually lossless).
            preset: x264 preset (speed against size).
            container: ffmpeg muxer name.
        """
        self.path, self.width, self.height = path, width, height
        self.frames = 0
        fps = fractions.Fraction(fps)
        self._pad = (height % 2, width % 2)
        args = [ffmpeg_exe(), "-nostdin", "-v", "error", "-y", "-f", "rawvideo",
                "-pix_fmt", "rgb24", "-s", f"{width + self._pad[1]}x{height + self._pad[0]}",
                "-framerate", f"{fps.numerator}/{fps.denominator}", "-i", "-", "-an",
                "-vf", "scale=out_color_matrix=bt709:out_range=tv,setparams=colorspace=bt709"
                ":color_primaries=bt709:color_trc=bt709:range=tv", "-c:v", "libx264",
                "-preset", preset, "-crf", str(crf), "-pix_fmt", "yuv420p",
                "-fps_mode", "passthrough", "-f", container, path]
        self._errors = tempfile.TemporaryFile()
        self._proc = subprocess.Popen(args, stdin=subprocess.PIPE, stderr=self._errors)

    def write(self, frame):
        """Appends one HxWx3 uint8 RGB frame."""
        frame = np.asarray(frame)
        if frame.shape != (self.height, self.width, 3) or frame.dtype != np.uint8:
            raise VideoError(f"frame {self.frames}: expected a {self.height}x{self.width}x3 "
                             f"uint8 frame, got {frame.shape} {frame.dtype}")
        if any(self._pad):
            frame = np.pad(frame, ((0, self._pad[0]), (0, self._pad[1]), (0, 0)), mode="edge")
        try:
            self._proc.stdin.write(np.ascontiguousarray(frame).tobytes())
        except BrokenPipeError:
            self.close()  # raises with ffmpeg's message
        self.frames += 1

    def close(self):
        """Finishes the file; raises VideoError if ffmpeg failed."""
        if self._proc.stdin and not self._proc.stdin.closed:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass
        code = self._proc.wait()
        self._errors.seek(0)
        message = self._errors.read().decode("utf-8", "replace").strip()
        self._errors.close()
        if code != 0:
            raise VideoError(f"encoding {self.path} failed (ffmpeg exit {code}): "
                             f"{message[-500:]}")

    def abort(self):
        """Stops ffmpeg and deletes the unfinished file."""
        self._proc.kill()
        self._proc.wait()
        self._errors.close()
        if os.path.exists(self.path):
            os.remove(self.path)


def _write_json_atomic(path, value):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f, indent=1)
    os.replace(tmp, path)


def _save_npz_atomic(path, arrays):
    tmp = path + ".tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _work_state(info, settings, chunk_frames):
    source = os.path.abspath(info.path)
    stat = os.stat(source)
    return {"version": STATE_VERSION, "source": source, "source_size": stat.st_size,
            "source_mtime_ns": stat.st_mtime_ns, "chunk_frames": chunk_frames,
            "settings": json.loads(json.dumps(settings)), "segments": [], "complete": False}


def _load_state(parts, fresh):
    """The saved state if it belongs to the same run (same source, settings), else None."""
    path = os.path.join(parts, "state.json")
    try:
        with open(path) as f:
            saved = json.load(f)
    except (OSError, ValueError):
        return None
    keys = ("version", "source", "source_size", "source_mtime_ns", "chunk_frames", "settings")
    if any(saved.get(k) != fresh[k] for k in keys):
        return None
    if not all(os.path.isfile(os.path.join(parts, s["file"])) for s in saved["segments"]):
        return None
    return saved


def _join(parts, segments, source, output, has_audio):
    """Concatenates the segments without re-encoding and muxes the source's audio."""
    listing = os.path.join(parts, "segments.txt")
    with open(listing, "w") as f:
        f.writelines(f"file '{s['file']}'\n" for s in segments)
    head, tail = os.path.split(os.path.abspath(output))
    stem, ext = os.path.splitext(tail)
    tmp = os.path.join(head, f".{stem}.joining{ext}")
    args = ["-y", "-f", "concat", "-safe", "0", "-i", listing]
    if has_audio:
        args += ["-i", source, "-map", "0:v:0", "-map", "1:a"]
    else:
        args += ["-map", "0:v:0"]
    args += ["-c", "copy"]
    if ext.lower() in (".mp4", ".mov", ".m4v"):
        args += ["-movflags", "+faststart"]
    try:
        _run_ffmpeg(args + [tmp], f"writing {output}")
    except VideoError as e:
        if os.path.exists(tmp):
            os.remove(tmp)
        if has_audio:
            raise VideoError(f"{e}. If the audio codec does not fit this container, write a "
                             f".mkv output instead") from e
        raise
    os.replace(tmp, output)


def process_video(input_path, output_path, frame_fn, stabilizer=None, resume=True,
                  progress=True, chunk_frames=300, crf=17, preset="medium", settings=None):
    """Runs ``frame_fn`` on every frame of a video and writes the result with the audio.

    Args:
        input_path: source video (any container and codec ffmpeg reads).
        output_path: the video to write (its extension picks the container, e.g. .mp4, .mkv).
        frame_fn: function HxWx3 uint8 RGB -> HxWx3 uint8 RGB of the same size.
        stabilizer: a ``kgan.stabilize.TemporalStabilizer`` applied to ``frame_fn``'s outputs
            (guided by the source frames), or None for plain per-frame output.
        resume: continue an interrupted run of the same call (same source and settings) from
            its last finished segment; False starts over.
        progress: show a progress line with ETA on stderr.
        chunk_frames: frames per resumable segment (each starts with a key frame).
        crf, preset: x264 quality and speed.
        settings: a JSON-able description of ``frame_fn`` (e.g. model path and render factor);
            a saved run is resumed only if it matches.

    Returns:
        The output's ``VideoInfo``.
    """
    if chunk_frames < MIN_SEGMENT_FRAMES:
        raise ValueError(f"chunk_frames must be at least {MIN_SEGMENT_FRAMES}")
    info = probe(input_path)
    if info.frame_count == 0:
        raise VideoError(f"{input_path} has no video frames")
    all_settings = {"frame_fn": settings, "crf": crf, "preset": preset,
                    "stabilizer": stabilizer.settings() if stabilizer is not None else None}
    head, tail = os.path.split(os.path.abspath(output_path))
    parts = os.path.join(head, f".{tail}.parts")
    fresh = _work_state(info, all_settings, chunk_frames)
    state = _load_state(parts, fresh) if resume else None
    if state is None:
        shutil.rmtree(parts, ignore_errors=True)
        os.makedirs(parts)
        state = fresh
        _write_json_atomic(os.path.join(parts, "state.json"), state)
    done = sum(s["frames"] for s in state["segments"])
    if stabilizer is not None:
        stabilizer.reset()
        if state["segments"]:
            with np.load(os.path.join(parts, state["segments"][-1]["stabilizer"])) as saved:
                stabilizer.set_state({k: saved[k] for k in saved.files})
    bar = Progress(info.frame_count, done, enabled=progress)
    writer = None
    frames = read_frames(input_path, start_frame=done, info=info) \
        if not state["complete"] else iter(())
    try:
        for frame in frames:
            if writer is None:
                index = len(state["segments"])
                name = f"seg_{index:05d}.mp4"
                writer = FrameWriter(os.path.join(parts, name + ".tmp"), info.width,
                                     info.height, info.fps, crf=crf, preset=preset)
                limit = _segment_length(done, chunk_frames, info.frame_count)
            out = np.asarray(frame_fn(frame))
            if out.shape != frame.shape or out.dtype != np.uint8:
                raise VideoError(f"frame_fn gave a {out.shape} {out.dtype} array for frame "
                                 f"{done}; expected a {frame.shape[0]}x{frame.shape[1]}x3 "
                                 "uint8 frame like its input")
            if stabilizer is not None:
                out = stabilizer(out, guide=frame)
            writer.write(out)
            bar.update()
            done += 1
            if writer.frames == limit:
                _finish_segment(parts, state, writer, name, stabilizer)
                writer = None
        if writer is not None:
            _finish_segment(parts, state, writer, name, stabilizer)
            writer = None
    except BaseException:
        if writer is not None:
            writer.abort()
        if hasattr(frames, "close"):
            frames.close()  # stops the decoding ffmpeg
        if progress:
            sys.stderr.write("\n")
        raise
    state["complete"] = True
    _write_json_atomic(os.path.join(parts, "state.json"), state)
    bar.finish()
    _join(parts, state["segments"], input_path, output_path, info.has_audio)
    shutil.rmtree(parts, ignore_errors=True)
    result = probe(output_path)
    if result.frame_count != done or result.fps != info.fps:
        logging.warning("%s has %d frames at %s fps; the source gave %d frames at %s fps",
                        output_path, result.frame_count, result.fps, done, info.fps)
    return result


def _segment_length(start, chunk_frames, total):
    """Frames in the segment starting at frame ``start``: ``chunk_frames``, or more so that
    no segment shorter than MIN_SEGMENT_FRAMES is left at the end."""
    left_after = total - start - chunk_frames
    return chunk_frames + left_after if 0 < left_after < MIN_SEGMENT_FRAMES else chunk_frames


def _finish_segment(parts, state, writer, name, stabilizer):
    """Closes a segment, renames it into place and commits it (and the stabiliser's state)."""
    writer.close()
    os.replace(writer.path, os.path.join(parts, name))
    entry = {"file": name, "frames": writer.frames}
    if stabilizer is not None:
        entry["stabilizer"] = name + ".state.npz"
        _save_npz_atomic(os.path.join(parts, entry["stabilizer"]), stabilizer.get_state())
    state["segments"].append(entry)
    _write_json_atomic(os.path.join(parts, "state.json"), state)
