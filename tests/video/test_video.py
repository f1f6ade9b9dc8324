"""Tests for kgan.video.pipeline on tiny clips made here with the bundled ffmpeg: probing (exact
rational frame rate, frame count, audio codec), streaming reads from any frame, the frame count,
frame rate and bit-exact audio of process_video's output, resuming an interrupted run (with and
without the stabiliser), odd sizes, bad frames and the missing-extra error."""

import fractions
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import numpy as np
import tensorflow as tf

from kgan.video import ffmpeg
from kgan.video import pipeline as video
from kgan.video.stabilize import TemporalStabilizer

RATE = fractions.Fraction(30000, 1001)


def _make_clip(path, frames=16, size="48x32", rate="30000/1001", audio=True, pix_fmt="yuv420p"):
    """A scrolling testsrc clip with an optional sine-wave AAC track."""
    args = [ffmpeg.ffmpeg_exe(), "-v", "error", "-y", "-f", "lavfi",
            "-i", f"testsrc=size={size}:rate={rate},scroll=horizontal=0.05"]
    if audio:
        args += ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-c:a", "aac",
                 "-t", str(float(frames / fractions.Fraction(rate)))]
    args += ["-frames:v", str(frames), "-c:v", "libx264", "-pix_fmt", pix_fmt, path]
    subprocess.run(args, check=True)


def _audio_packets(path):
    """(size, md5) of every packet of the audio stream, plus its codec header's md5."""
    out = subprocess.run([ffmpeg.ffmpeg_exe(), "-v", "error", "-i", path, "-map", "0:a:0",
                          "-c", "copy", "-f", "framemd5", "-"], check=True,
                         stdout=subprocess.PIPE).stdout.decode()
    extradata = [line for line in out.splitlines() if line.startswith("#extradata")]
    packets = [tuple(f.strip() for f in line.split(",")[4:])
               for line in out.splitlines() if line and not line.startswith("#")]
    return extradata, packets


class _FailAfter:
    """A frame_fn that inverts frames and raises after ``limit`` calls (a simulated crash)."""

    def __init__(self, limit=None):
        self.limit, self.calls = limit, 0

    def __call__(self, frame):
        if self.limit is not None and self.calls >= self.limit:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return 255 - frame


class VideoTest(tf.test.TestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        cls.clip = os.path.join(cls.tmp, "clip.mp4")
        _make_clip(cls.clip)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def _out(self, name):
        return os.path.join(self.get_temp_dir(), name)

    def test_probe(self):
        info = video.probe(self.clip)
        self.assertEqual(info.fps, RATE)
        self.assertIsInstance(info.fps, fractions.Fraction)
        self.assertEqual((info.width, info.height, info.frame_count), (48, 32, 16))
        self.assertEqual(info.audio_codec, "aac")
        self.assertTrue(info.has_audio)

    def test_probe_missing_or_unreadable_file(self):
        with self.assertRaises(ffmpeg.VideoNotFoundError):
            video.probe(self._out("nope.mp4"))
        garbage = self._out("garbage.mp4")
        with open(garbage, "wb") as f:
            f.write(b"not a video" * 10)
        with self.assertRaisesRegex(video.VideoError, "garbage.mp4"):
            video.probe(garbage)

    def test_millisecond_timestamps_snap_to_the_exact_rate(self):
        # Matroska stores 24000/1001 fps as rounded milliseconds.
        pts = [round(i * 1001 / 24) for i in range(30)]
        rate = ffmpeg._frame_rate(pts, [41] * 30, fractions.Fraction(1, 1000), "")
        self.assertEqual(rate, fractions.Fraction(24000, 1001))
        self.assertEqual(ffmpeg._frame_rate([0, 1001, 2002], [], fractions.Fraction(1, 30000),
                                           ""), RATE)

    def test_read_frames_from_any_frame(self):
        frames = list(video.read_frames(self.clip))
        self.assertLen(frames, 16)
        self.assertEqual(frames[0].shape, (32, 48, 3))
        self.assertEqual(frames[0].dtype, np.uint8)
        later = list(video.read_frames(self.clip, start_frame=11))
        self.assertLen(later, 5)
        for a, b in zip(later, frames[11:]):
            np.testing.assert_array_equal(a, b)
        # The test pattern moves, so consecutive frames differ: the offset is really checked.
        self.assertGreater(np.abs(frames[10].astype(int) - frames[11]).sum(), 0)

    def test_output_keeps_frames_rate_and_audio(self):
        out = self._out("out.mp4")
        info = video.process_video(self.clip, out, lambda f: 255 - f, chunk_frames=8,
                                   progress=False)
        self.assertEqual((info.frame_count, info.fps, info.width, info.height),
                         (16, RATE, 48, 32))
        self.assertEqual(_audio_packets(out), _audio_packets(self.clip))
        self.assertNotEmpty(_audio_packets(out)[1])
        source = list(video.read_frames(self.clip))
        result = list(video.read_frames(out))
        self.assertLen(result, 16)
        error = np.mean([np.abs(r.astype(float) - (255 - s)).mean()
                         for r, s in zip(result, source)])
        self.assertLess(error, 8.0)  # H.264 at CRF 17 on a 48x32 test pattern
        header = subprocess.run([ffmpeg.ffmpeg_exe(), "-hide_banner", "-i", out],
                                stderr=subprocess.PIPE).stderr.decode()
        self.assertIn("yuv420p", header)
        self.assertFalse(os.path.exists(os.path.join(self.get_temp_dir(), ".out.mp4.parts")))

    def test_resume_after_interruption(self):
        reference = self._out("whole.mp4")
        video.process_video(self.clip, reference, _FailAfter(), chunk_frames=8, progress=False)
        out = self._out("resumed.mp4")
        parts = os.path.join(self.get_temp_dir(), ".resumed.mp4.parts")
        with self.assertRaises(KeyboardInterrupt):
            video.process_video(self.clip, out, _FailAfter(limit=11), chunk_frames=8,
                                progress=False)
        self.assertFalse(os.path.exists(out))
        with open(os.path.join(parts, "state.json")) as f:
            self.assertEqual([s["frames"] for s in json.load(f)["segments"]], [8])
        second = _FailAfter()
        info = video.process_video(self.clip, out, second, chunk_frames=8, progress=False)
        self.assertEqual(second.calls, 8)  # only the unfinished segment is redone
        self.assertEqual((info.frame_count, info.fps), (16, RATE))
        self.assertEqual(_audio_packets(out), _audio_packets(self.clip))
        for a, b in zip(video.read_frames(out), video.read_frames(reference)):
            np.testing.assert_array_equal(a, b)
        self.assertFalse(os.path.exists(parts))

    def test_resume_with_stabilizer_matches_an_uninterrupted_run(self):
        def run(name, frame_fn):
            return video.process_video(self.clip, self._out(name), frame_fn,
                                       stabilizer=TemporalStabilizer(), chunk_frames=8,
                                       progress=False)
        run("stab_whole.mp4", _FailAfter())
        with self.assertRaises(KeyboardInterrupt):
            run("stab_resumed.mp4", _FailAfter(limit=9))
        run("stab_resumed.mp4", _FailAfter())
        for a, b in zip(video.read_frames(self._out("stab_resumed.mp4")),
                        video.read_frames(self._out("stab_whole.mp4"))):
            np.testing.assert_array_equal(a, b)

    def test_changed_settings_start_over(self):
        out = self._out("changed.mp4")
        with self.assertRaises(KeyboardInterrupt):
            video.process_video(self.clip, out, _FailAfter(limit=9), chunk_frames=8,
                                progress=False, settings={"model": "a"})
        fn = _FailAfter()
        video.process_video(self.clip, out, fn, chunk_frames=8, progress=False,
                            settings={"model": "b"})
        self.assertEqual(fn.calls, 16)

    def test_is_video_path(self):
        self.assertTrue(ffmpeg.is_video_path("a/Clip.MP4"))
        self.assertTrue(ffmpeg.is_video_path("film.mkv"))
        self.assertFalse(ffmpeg.is_video_path("photo.jpg"))

    def test_short_tail_joins_the_last_segment(self):
        self.assertEqual(video._segment_length(0, 8, 20), 8)
        self.assertEqual(video._segment_length(8, 8, 20), 12)
        self.assertEqual(video._segment_length(8, 8, 16), 8)

    def test_odd_size_is_padded_by_edge_replication(self):
        clip = self._out("odd.mkv")
        # 4:4:4 H.264 allows odd sizes; the output (4:2:0) does not.
        _make_clip(clip, frames=9, size="47x33", rate="25", audio=False, pix_fmt="yuv444p")
        info = video.probe(clip)
        self.assertEqual((info.width, info.height, info.fps, info.audio_codec),
                         (47, 33, 25, None))
        out = self._out("odd.mp4")
        result = video.process_video(clip, out, lambda f: f, chunk_frames=8, progress=False)
        self.assertEqual((result.width, result.height, result.frame_count), (48, 34, 9))
        self.assertIsNone(result.audio_codec)
        frame = next(video.read_frames(out)).astype(float)
        self.assertLess(np.abs(frame[:, -1] - frame[:, -2]).mean(), 8.0)
        self.assertLess(np.abs(frame[-1] - frame[-2]).mean(), 8.0)

    def test_wrong_frame_from_frame_fn(self):
        with self.assertRaisesRegex(video.VideoError, "expected a 32x48x3 uint8"):
            video.process_video(self.clip, self._out("bad.mp4"), lambda f: f[:16],
                                progress=False)

    def test_missing_extra_names_it(self):
        with mock.patch.dict(sys.modules, {"imageio_ffmpeg": None}):
            with self.assertRaisesRegex(ffmpeg.VideoDependencyError, r"\.\[video\]"):
                ffmpeg.ffmpeg_exe()
            with self.assertRaises(ImportError):
                video.process_video(self.clip, self._out("x.mp4"), lambda f: f)


if __name__ == "__main__":
    tf.test.main()
