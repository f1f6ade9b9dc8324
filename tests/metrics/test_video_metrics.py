"""Tests for kgan.metrics.video against numpy hand computations (chroma from
tf.image.rgb_to_yuv): the warping error with exact and with estimated flow, the occlusion
mask, the static-pixel chroma flicker, the mean-chroma change, the invented chroma and the
colourfulness."""

import numpy as np
import tensorflow as tf

from kgan.core import frame_ops
from kgan.metrics import video as video_metrics


def _chroma(frame):
    return tf.image.rgb_to_yuv(frame.astype(np.float32) / 255.0).numpy()[..., 1:]


def _frames(count, height=6, width=7, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (height, width, 3)).astype(np.uint8) for _ in range(count)]


class VideoMetricsTest(tf.test.TestCase):

    def test_warping_error_with_exact_flow(self):
        frames = _frames(3)
        # Flow (0, 1): frame t+1 at x + (0, 1) is compared with frame t at x; the last column
        # has no source inside the frame.
        got = video_metrics.chroma_warping_error(
            frames, flows=frame_ops.constant_flow(6, 7, 0, 1))
        want = np.mean([((_chroma(frames[t])[:, :6] - _chroma(frames[t + 1])[:, 1:]) ** 2)
                        .sum(-1).mean() for t in range(2)])
        self.assertAllClose(got, want, rtol=1e-5)

    def test_warping_error_with_a_flow_per_pair(self):
        frames = _frames(3, seed=1)
        flows = [frame_ops.constant_flow(6, 7, 1, 0), frame_ops.constant_flow(6, 7, 0, 0)]
        got = video_metrics.chroma_warping_error(frames, flows=flows)
        want = np.mean([((_chroma(frames[0])[:5] - _chroma(frames[1])[1:]) ** 2).sum(-1).mean(),
                        ((_chroma(frames[1]) - _chroma(frames[2])) ** 2).sum(-1).mean()])
        self.assertAllClose(got, want, rtol=1e-5)

    def test_warping_error_with_flow_from_still_inputs(self):
        outputs = _frames(3, height=16, width=16, seed=2)
        still = _frames(1, height=16, width=16, seed=3) * 3  # the input does not move
        got = video_metrics.chroma_warping_error(outputs, inputs=still)
        want = np.mean([((_chroma(outputs[t]) - _chroma(outputs[t + 1])) ** 2).sum(-1).mean()
                        for t in range(2)])
        self.assertAllClose(got, want, rtol=1e-4)
        with self.assertRaises(ValueError):
            video_metrics.chroma_warping_error(outputs)

    def test_occlusion_mask(self):
        forward = frame_ops.constant_flow(5, 6, 0, 1)
        self.assertTrue(video_metrics.occlusion_mask(
            forward, frame_ops.constant_flow(5, 6, 0, -1)).all())
        # A backward flow that does not undo the forward one: |gap|^2 = 4 > 0.01 * 2 + 0.5.
        self.assertFalse(video_metrics.occlusion_mask(
            forward, frame_ops.constant_flow(5, 6, 0, 1)).any())

    def test_static_chroma_flicker(self):
        inputs = _frames(3, seed=4)
        inputs[1] = inputs[0].copy()
        inputs[1][:3] = 255 - inputs[1][:3]  # the top half changes, the bottom is static
        inputs[2] = inputs[1].copy()  # nothing changes
        outputs = _frames(3, seed=5)
        got = video_metrics.static_chroma_flicker(outputs, inputs)
        y = [tf.image.rgb_to_yuv(f.astype(np.float32) / 255.0).numpy()[..., 0] for f in inputs]
        values = []
        for t in range(2):
            static = np.abs(y[t + 1] - y[t]) <= 1.0 / 255
            diff = np.sqrt(((_chroma(outputs[t + 1]) - _chroma(outputs[t])) ** 2).sum(-1))
            values.append(diff[static].mean())
        self.assertAllClose(got, np.mean(values), rtol=1e-5)
        self.assertAllClose(video_metrics.static_chroma_flicker(outputs[1:], inputs[1:]),
                            values[1], rtol=1e-5)

    def test_mean_chroma_change(self):
        frames = _frames(4, seed=6)
        means = np.array([_chroma(f).reshape(-1, 2).mean(0) for f in frames])
        want = np.mean(np.sqrt(((means[1:] - means[:-1]) ** 2).sum(-1)))
        self.assertAllClose(video_metrics.mean_chroma_change(iter(frames)), want, rtol=1e-5)

    def test_invented_chroma(self):
        per_frame = _frames(3, height=16, width=16, seed=7)
        stable = [per_frame[0], per_frame[1].copy(), per_frame[2]]
        stable[1][:, :15] = stable[0][:, 1:]  # exactly its past (flow (0, 1): x+1 in t-1)
        stable[1][:, 15] = 128  # gray in the newly revealed column: neither past nor output
        flow = frame_ops.constant_flow(16, 16, 0, 1)
        got = video_metrics.invented_chroma(stable, per_frame, flows=flow)
        revealed = _chroma(per_frame[1])[:, 15]
        want = max(np.linalg.norm(revealed[:8].mean(0)), np.linalg.norm(revealed[8:].mean(0)))
        self.assertAllClose(got, [want, 0.0], atol=1e-5)
        # A blend of past and output is allowed; the same column as a blend is not new.
        halfway = per_frame[1].copy()
        halfway[:, :15] = ((stable[0][:, 1:].astype(int) + per_frame[1][:, :15]) // 2)
        got = video_metrics.invented_chroma([per_frame[0], halfway], per_frame[:2], flows=flow)
        self.assertLess(got[0], 1.5 / 255)
        with self.assertRaises(ValueError):
            video_metrics.invented_chroma(stable, per_frame)

    def test_colourfulness(self):
        image = np.array([[[255, 0, 0], [0, 0, 255]]], np.uint8)
        rg, yb = np.array([255.0, 0.0]), np.array([127.5, -255.0])
        want = np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
        self.assertAllClose(video_metrics.colourfulness(image), want)
        self.assertEqual(video_metrics.colourfulness(np.full((4, 4, 3), 90, np.uint8)), 0.0)
        self.assertAllClose(video_metrics.mean_colourfulness([image, image]), want)


if __name__ == "__main__":
    tf.test.main()
