"""Tests for kgan.video.stabilize: on a synthetic pan with known motion and a flickering colouriser
the stabiliser lowers the chroma warping error and keeps the colourfulness; the luma stays
untouched; a shot cut resets it; the screened Poisson solver matches a direct sparse solve; the
saved state continues a run exactly. Also kgan.core.frame_ops (YUV, warp, motion)."""

import numpy as np
import tensorflow as tf
from scipy import sparse
from scipy.sparse import linalg as sparse_linalg

from kgan.core import frame_ops
from kgan.metrics.video import chroma_warping_error, mean_colourfulness
from kgan.video.stabilize import (
    StabilizerConfig,
    TemporalStabilizer,
    solve_screened_poisson,
)

DY, DX = 0, 2  # the window moves by whole, even pixels per frame


def _photo(name="astronaut", size=128):
    import skimage.data
    from PIL import Image

    return np.asarray(Image.fromarray(getattr(skimage.data, name)()).resize((size, size),
                                                                           Image.BILINEAR))


def _pan(photo, frames=10, height=40, width=48):
    return [photo[20 + DY * t:20 + DY * t + height, 10 + DX * t:10 + DX * t + width]
            for t in range(frames)]


def _flicker(frames, seed=0):
    """True chroma turned by a random hue angle and scaled per frame, plus noise; true luma.

    The first frame keeps the true hue and saturation: the stabiliser carries the first frame's
    low-frequency colours through the shot, so this makes the colourfulness comparable.
    """
    rng = np.random.default_rng(seed)
    out = []
    for t, frame in enumerate(frames):
        yuv = frame_ops.rgb_to_yuv(frame)
        angle, scale = rng.normal(0, 0.3), rng.uniform(0.7, 1.3)
        if t == 0:
            angle, scale = 0.0, 1.0
        rot = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
        yuv[..., 1:] = scale * (yuv[..., 1:] @ rot.astype(np.float32)) + \
            rng.normal(0, 0.01, yuv[..., 1:].shape).astype(np.float32)
        out.append(frame_ops.yuv_to_rgb_uint8(yuv))
    return out


class StabilizeTest(tf.test.TestCase):

    def test_lowers_warping_error_on_a_known_pan_and_keeps_colourfulness(self):
        frames = _pan(_photo())
        per_frame = _flicker(frames)
        stabilizer = TemporalStabilizer()
        stable = [stabilizer(p, guide=f) for p, f in zip(per_frame, frames)]
        flow = frame_ops.constant_flow(40, 48, -DY, -DX)
        self.assertEqual(chroma_warping_error(frames, flows=flow), 0.0)  # the flow is exact
        before = chroma_warping_error(per_frame, flows=flow)
        after = chroma_warping_error(stable, flows=flow)
        self.assertLess(after, 0.3 * before)
        self.assertEqual(stabilizer.cuts, 0)
        self.assertAllClose(mean_colourfulness(stable), mean_colourfulness(per_frame),
                            rtol=0.1)
        self.assertAllClose(mean_colourfulness(stable), mean_colourfulness(frames), rtol=0.1)

    def test_global_shift_motion_also_stabilises(self):
        frames = _pan(_photo(), frames=6)
        per_frame = _flicker(frames, seed=1)
        stabilizer = TemporalStabilizer(motion="shift")
        stable = [stabilizer(p) for p in per_frame]
        flow = frame_ops.constant_flow(40, 48, -DY, -DX)
        self.assertLess(chroma_warping_error(stable, flows=flow),
                        0.5 * chroma_warping_error(per_frame, flows=flow))

    def test_luma_untouched(self):
        frames = _pan(_photo(), frames=3)
        stabilizer = TemporalStabilizer()
        for p in _flicker(frames):
            yuv = frame_ops.rgb_to_yuv(p)
            out = stabilizer.stabilize_yuv(yuv)
            self.assertAllEqual(out[..., 0], yuv[..., 0])
        # Through uint8 only the final rounding moves the luma (half a level at most).
        stabilizer.reset()
        for p in _flicker(frames, seed=2):
            out = stabilizer(p)
            self.assertLessEqual(np.abs(frame_ops.luma(out) - frame_ops.luma(p)).max(),
                                 0.5 / 255 + 1e-6)

    def test_resets_at_a_cut(self):
        scene_a = _pan(_photo("astronaut"), frames=4)
        scene_b = _pan(_photo("coffee"), frames=2)
        per_frame = _flicker(scene_a + scene_b)
        stabilizer = TemporalStabilizer()
        outputs = [stabilizer(p) for p in per_frame]
        self.assertEqual(stabilizer.cuts, 1)
        # First frame and first frame after the cut: the per-frame output (to rounding).
        for t in (0, 4):
            self.assertLessEqual(np.abs(outputs[t].astype(int) - per_frame[t]).max(), 1)
        # Inside the shot the chroma was changed.
        self.assertGreater(np.abs(outputs[3].astype(int) - per_frame[3]).max(), 5)

    def test_state_continues_a_run_exactly(self):
        per_frame = _flicker(_pan(_photo(), frames=5))
        whole = TemporalStabilizer()
        expected = [whole(p) for p in per_frame]
        first = TemporalStabilizer()
        for p in per_frame[:3]:
            first(p)
        second = TemporalStabilizer()
        second.set_state(first.get_state())
        for p, e in zip(per_frame[3:], expected[3:]):
            self.assertAllEqual(second(p), e)
        self.assertEqual(TemporalStabilizer().get_state(), {})

    def test_solver_matches_a_direct_solve(self):
        rng = np.random.default_rng(0)
        height, width = 36, 40
        weight = rng.uniform(0, 1, (height, width, 1)).astype(np.float32)
        weight[:, :10] = 0.0  # an unconstrained region, as where the warp leaves the frame
        b = (weight * rng.normal(size=(height, width, 2))).astype(np.float32)
        got = solve_screened_poisson(b, weight, max_iterations=200, tolerance=1e-7)
        index = np.arange(height * width).reshape(height, width)
        rows, cols = [], []
        for a, c in ((index[1:], index[:-1]), (index[:, 1:], index[:, :-1])):
            rows += [a.ravel(), c.ravel()]
            cols += [c.ravel(), a.ravel()]
        adjacency = sparse.csr_matrix((np.ones(sum(len(r) for r in rows)),
                                       (np.concatenate(rows), np.concatenate(cols))),
                                      shape=(height * width,) * 2)
        laplacian = sparse.diags(np.asarray(adjacency.sum(1)).ravel()) - adjacency
        system = (laplacian + sparse.diags(weight.ravel().astype(np.float64))).tocsc()
        for c in range(2):
            want = sparse_linalg.spsolve(system, b[..., c].ravel().astype(np.float64))
            self.assertAllClose(got[..., c].ravel(), want, atol=1e-4 * np.abs(want).max())

    def test_bad_config(self):
        with self.assertRaises(ValueError):
            StabilizerConfig(motion="farneback")
        with self.assertRaises(ValueError):
            TemporalStabilizer(sigma=0.0)


class FrameOpsTest(tf.test.TestCase):

    def test_yuv_matches_tensorflow(self):
        rgb = np.random.default_rng(0).integers(0, 256, (8, 9, 3)).astype(np.uint8)
        want = tf.image.rgb_to_yuv(rgb.astype(np.float32) / 255.0).numpy()
        self.assertAllClose(frame_ops.rgb_to_yuv(rgb), want, atol=1e-6)
        self.assertAllClose(frame_ops.yuv_to_rgb(want), rgb / 255.0, atol=1e-5)

    def test_out_of_gamut_chroma_keeps_luma(self):
        yuv = np.array([[[0.5, 0.6, 0.6], [0.9, -0.4, 0.0]]], np.float32)  # far outside RGB
        rgb = frame_ops.yuv_to_rgb_uint8(yuv)
        self.assertAllClose(frame_ops.luma(rgb), yuv[..., 0], atol=0.5 / 255 + 1e-6)

    def test_warp_by_a_whole_pixel_flow(self):
        image = np.random.default_rng(1).uniform(size=(6, 7, 2)).astype(np.float32)
        warped, valid = frame_ops.warp(image, frame_ops.constant_flow(6, 7, 1, -2))
        self.assertAllClose(warped[:5, 2:], image[1:, :5])  # out(x) = image(x + flow)
        self.assertAllEqual(valid[:5, 2:], np.ones((5, 5), bool))
        self.assertFalse(valid[5].any() or valid[:, :2].any())

    def test_motion_recovers_a_known_shift(self):
        gray = frame_ops.luma(_photo(size=96))
        reference, moving = gray[10:58, 10:74], gray[10:58, 14:78]  # moving(x - 4) = ref(x)
        for method in ("flow", "shift"):
            flow = frame_ops.estimate_motion(reference, moving, method)
            self.assertAllClose(np.median(flow[1]), -4.0, atol=0.1)
            self.assertAllClose(np.median(flow[0]), 0.0, atol=0.1)
        self.assertAllEqual(frame_ops.estimate_motion(reference, moving, "none"),
                            np.zeros((2, 48, 64)))


if __name__ == "__main__":
    tf.test.main()
