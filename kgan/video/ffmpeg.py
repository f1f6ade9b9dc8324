"""ffmpeg plumbing for kgan.video.pipeline: finding the bundled ffmpeg (``imageio-ffmpeg``), probing
a clip (size, exact rational frame rate, frame count, audio), streaming its frames out as uint8 RGB,
and streaming frames into an H.264 yuv420p encoder at an exact rational rate.

Called by kgan.video.pipeline (process_video) and the colourisation CLI (``is_video_path``).
"""

import dataclasses
import fractions
import os
import re
import subprocess
import tempfile

import numpy as np

from kgan.core.errors import KganError

COMMON_RATES = [fractions.Fraction(n, d) for n, d in (
    (24000, 1001), (24, 1), (25, 1), (30000, 1001), (30, 1), (48, 1), (50, 1),
    (60000, 1001), (60, 1), (120, 1))]
# Extensions a CLI can route to process_video instead of the photo path.
VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts",
                    ".mts", ".m2ts", ".flv", ".wmv", ".ogv", ".3gp")


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
