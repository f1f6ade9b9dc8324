"""Video in and out for per-frame models: probe a clip, stream its frames, and write the
processed frames as H.264 with the source's exact frame rate and its audio copied unchanged,
resumably.

``process_video(input, output, frame_fn)`` reads any container ffmpeg reads, passes each frame
(HxWx3 uint8 RGB) through ``frame_fn`` (and an optional
``kgan.video.stabilize.TemporalStabilizer``), and writes ``output``: H.264 yuv420p (BT.709, CRF 17),
the same number of frames at the same rational frame rate (e.g. 30000/1001), the audio streams
copied bit-exact. Frames are streamed through pipes, never stored as images or held all at once. The
video is written in segments of ``chunk_frames`` frames inside a hidden folder next to the output
(``.out.mp4.parts/``); each finished segment is committed atomically in a small JSON state, so
running the same call again after an interruption skips the finished segments. At the end the
segments are joined without re-encoding (ffmpeg's concat demuxer) and the source's audio is muxed
in.

ffmpeg comes from the optional ``imageio-ffmpeg`` package (``pip install -e ".[video]"``),
whose wheel ships a static binary, so no system ffmpeg is needed. Called by the colourisation
CLI (``kgan.cli.colorize``) and ``benchmarks/video_stability.py``.
"""

import json
import os
import shutil
import sys

import numpy as np
from absl import logging

from kgan.core.atomic import write_json
from kgan.core.progress import Progress
from kgan.video.ffmpeg import FrameWriter, VideoError, _run_ffmpeg, probe, read_frames

STATE_VERSION = 1
# Shortest segment: x264 gives clips of 1-2 frames no B-frame decode delay, and a segment whose
# delay differs from the others' breaks the joined file's timestamps, so a short tail is
# absorbed into the segment before it.
MIN_SEGMENT_FRAMES = 8



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
        stabilizer: a ``kgan.video.stabilize.TemporalStabilizer`` applied to ``frame_fn``'s outputs
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
        write_json(os.path.join(parts, "state.json"), state)
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
    write_json(os.path.join(parts, "state.json"), state)
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
    write_json(os.path.join(parts, "state.json"), state)
