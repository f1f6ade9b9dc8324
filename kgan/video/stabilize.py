"""Temporal stabilisation of per-frame colourisation (blind temporal consistency, after Bonneel
et al., SIGGRAPH Asia 2015, written from the paper; their code is GPL and not used).

A colouriser run frame by frame flickers: each frame's hue and saturation swing a little
(DeOldify #343, #476). ``TemporalStabilizer`` keeps the luma of every frame untouched and, per
frame t, replaces the chroma P_t of the per-frame output by the solution S of the screened
Poisson problem

    min_S  sum |grad S - grad P_t|^2  +  w_t |S - warp(S_{t-1})|^2  +  v_t |S - P_t|^2,
    w_t = strength * (1 - renew) * trust_t,  v_t = strength - w_t (NEW_PIXEL_WEIGHT without a past),
    trust_t = exp(-(Y_t - warp(Y_{t-1}))^2 / (2 sigma^2)) where the pixel has a past, else 0,

for U and V separately: S keeps the chroma edges of this frame and takes its low frequencies
(the global hue swings) from the motion-compensated previous output wherever the input's luma
says the warp is right. Motion comes from the luma (optical flow or one global shift); a shot
cut (a jump of the luma histogram) resets it.

Two departures from the paper's formulation, both measured on a pan (issue 24,
``tests/video/test_stabilize.py::PanTest``):

- Pixels without a trustworthy past (their source leaves the previous frame or fails the
  forward-backward flow check: newly revealed or occluded) are pulled to this frame's own
  chroma instead of being left free. Left free (w_t = 0), the solve extends the neighbours'
  correction into the strip where new scene enters; the next frame trusts that strip as its
  past, so the invented colour compounds through the shot. Wherever the trust is below 1 the
  rest of the weight also pulls towards this frame's chroma.
- ``renew`` of this frame's chroma is blended in where the past is trusted, so the broad
  colours are a moving average of the per-frame outputs along the motion. Kept for good, they
  would be the colours a thing had when first seen, which on a pan is at the frame border,
  where a colouriser has the least context and is least saturated.

The problem is solved for the correction D = S - P on a 2x pyramid (coarse solution as the
start) with Jacobi-preconditioned conjugate gradients, at most ``max_side`` pixels on the
longest side; the correction is smooth, so it is computed small and scaled up to the frame.

Called by ``kgan.video.pipeline.process_video`` (through ``frame_fn`` results) and the colourisation
CLI; ``benchmarks/video_stability.py`` measures it.
"""

import dataclasses

import numpy as np

from kgan.core.frame_ops import (
    MOTIONS,
    estimate_motion,
    occlusion_mask,
    resize_plane,
    rgb_to_yuv,
    warp,
    yuv_to_rgb_uint8,
)

HIST_BINS = 32
# Screening weight pulling newly revealed pixels to this frame's chroma: strong enough that
# the seam to the stabilised neighbours falls on pixels that have a past.
NEW_PIXEL_WEIGHT = 10.0


@dataclasses.dataclass
class StabilizerConfig:
    """Settings of ``TemporalStabilizer``.

    Attributes:
        strength: lambda, how much the previous frame is trusted where the luma agrees; larger
            is steadier (and slower to follow a real colour change).
        sigma: luma difference (0-1 scale) at which the trust falls to exp(-1/2).
        motion: ``"flow"`` (optical flow), ``"shift"`` (one global translation, fastest) or
            ``"none"`` (a static camera).
        max_side: longest side the chroma correction is solved at.
        cut_threshold: half the L1 distance of consecutive luma histograms (0-1) above which a
            frame starts a new shot (the stabiliser resets).
        max_iterations: conjugate-gradient iterations per pyramid level at most.
        tolerance: relative residual at which the solver stops.
        renew: share of this frame's own chroma taken in per frame where the past is trusted,
            so the broad colours are a moving average of the per-frame outputs along the
            motion (time constant about 1 / renew frames); 0 keeps the colours a thing had when
            it was first seen for the whole shot (Bonneel et al.).
    """
    strength: float = 1.0
    sigma: float = 0.05
    motion: str = "flow"
    max_side: int = 512
    cut_threshold: float = 0.4
    max_iterations: int = 40
    tolerance: float = 1e-3
    renew: float = 0.2

    def __post_init__(self):
        if self.motion not in MOTIONS:
            raise ValueError(f"motion must be one of {MOTIONS}, not {self.motion!r}")
        if self.strength < 0 or self.sigma <= 0 or self.max_side < 8:
            raise ValueError("strength must be >= 0, sigma > 0 and max_side >= 8")
        if not 0 <= self.renew <= 1:
            raise ValueError(f"renew must be in [0, 1], not {self.renew}")


def _laplacian(x):
    """Graph Laplacian (4-neighbour, Neumann borders) of a CxHxW array: deg*x - neighbours."""
    out = np.zeros_like(x)
    d = x[:, 1:] - x[:, :-1]
    out[:, 1:] += d
    out[:, :-1] -= d
    d = x[:, :, 1:] - x[:, :, :-1]
    out[:, :, 1:] += d
    out[:, :, :-1] -= d
    return out


def _degree(height, width):
    deg = np.full((1, height, width), 4.0, np.float32)
    deg[:, 0] -= 1
    deg[:, -1] -= 1
    deg[:, :, 0] -= 1
    deg[:, :, -1] -= 1
    return deg


def _dot(a, b):
    """Per-channel dot products of two CxHxW arrays, shaped Cx1x1."""
    return np.einsum("chw,chw->c", a, b)[:, None, None]


def _pcg(b, weight, x, max_iterations, tolerance):
    """Solves (L + diag(weight)) x = b per channel with Jacobi-preconditioned CG from ``x``.

    Arrays are HxWxC (weight HxWx1); the work is done channel-first for contiguous sums.
    """
    b = np.ascontiguousarray(np.moveaxis(b, -1, 0))
    weight = np.ascontiguousarray(np.moveaxis(weight, -1, 0))
    x = np.ascontiguousarray(np.moveaxis(x, -1, 0))
    inv_diag = 1.0 / (_degree(*b.shape[1:]) + weight)
    r = b - (_laplacian(x) + weight * x)
    limit = (tolerance ** 2) * _dot(b, b)
    z = r * inv_diag
    p = z.copy()
    rz = _dot(r, z)
    for _ in range(max_iterations):
        if np.all(_dot(r, r) <= limit):
            break
        ap = _laplacian(p)
        ap += weight * p
        alpha = rz / np.maximum(_dot(p, ap), 1e-30)
        x += alpha * p
        r -= alpha * ap
        np.multiply(r, inv_diag, out=z)
        rz_new = _dot(r, z)
        p *= rz_new / np.maximum(rz, 1e-30)
        p += z
        rz = rz_new
    return np.moveaxis(x, 0, -1)


def solve_screened_poisson(b, weight, max_iterations=40, tolerance=1e-3, min_side=16):
    """Solves (L + diag(weight)) x = b, L the grid Laplacian, coarse to fine.

    The coarse problem on a grid of half the size is (L_c + 4 W_c) x_c = 4 b_c (the Laplacian
    of a grid twice as coarse is four times weaker per pixel); its scaled-up solution starts the
    conjugate gradients at the finer level.

    Args:
        b: HxWxC float32 right-hand side.
        weight: HxWx1 float32 screening weights (>= 0).
        max_iterations: CG iterations per level at most.
        tolerance: relative residual to stop at.
        min_side: coarsest grid's shorter side.

    Returns:
        HxWxC float32 solution.
    """
    height, width = b.shape[:2]
    if min(height, width) >= 2 * min_side:
        small_h, small_w = (height + 1) // 2, (width + 1) // 2
        coarse = solve_screened_poisson(4.0 * resize_plane(b, small_h, small_w),
                                        4.0 * resize_plane(weight, small_h, small_w),
                                        max_iterations, tolerance, min_side)
        x = resize_plane(coarse, height, width)
    else:
        x = np.zeros_like(b)
    return _pcg(b, weight, x, max_iterations, tolerance)


def luma_histogram_distance(luma_a, luma_b):
    """Half the L1 distance of two luma histograms (0 = same, 1 = disjoint)."""
    ha, _ = np.histogram(luma_a, bins=HIST_BINS, range=(0.0, 1.0))
    hb, _ = np.histogram(luma_b, bins=HIST_BINS, range=(0.0, 1.0))
    return 0.5 * float(np.abs(ha / max(ha.sum(), 1) - hb / max(hb.sum(), 1)).sum())


class TemporalStabilizer:
    """Stabilises the chroma of a stream of per-frame outputs; call it once per frame, in order.

    Example::

        stabilizer = TemporalStabilizer()
        for frame in frames:
            out = stabilizer(colorize(frame), guide=frame)

    ``get_state``/``set_state`` carry what the next frame needs across a resumed run.
    """

    def __init__(self, config=None, **overrides):
        """Args:
            config: a ``StabilizerConfig`` (default settings when None).
            **overrides: fields of ``StabilizerConfig`` to change.
        """
        config = config or StabilizerConfig()
        self.config = dataclasses.replace(config, **overrides) if overrides else config
        self.cuts = 0  # shot cuts seen (resets after the first frame)
        self.reset()

    def reset(self):
        """Forgets the previous frame: the next output equals its per-frame input."""
        self._prev_luma = None
        self._prev_chroma = None

    def settings(self):
        """The settings as a plain dict (part of a resumable run's fingerprint)."""
        return dataclasses.asdict(self.config)

    def get_state(self):
        """What the next frame needs: {} before the first frame, else two float32 arrays."""
        if self._prev_luma is None:
            return {}
        return {"luma": self._prev_luma.copy(), "chroma": self._prev_chroma.copy()}

    def set_state(self, state):
        """Restores ``get_state()``'s result (an empty dict resets)."""
        if not state:
            self.reset()
            return
        self._prev_luma = np.asarray(state["luma"], np.float32)
        self._prev_chroma = np.asarray(state["chroma"], np.float32)

    def _work_size(self, height, width):
        side = self.config.max_side
        if max(height, width) <= side:
            return height, width
        scale = side / max(height, width)
        return max(8, round(height * scale)), max(8, round(width * scale))

    def past_trust(self, luma, prev_luma):
        """How far each pixel's motion-compensated past can be trusted, and that past.

        A pixel has a past when its source lies inside the previous frame and the flow back
        from there returns to it (forward-backward check, ``frame_ops.occlusion_mask``);
        newly revealed and occluded pixels have none. Where it has one, the trust is
        exp(-(Y_t - warp(Y_{t-1}))^2 / (2 sigma^2)).

        Args:
            luma: HxW float32 luma of this frame (work size).
            prev_luma: HxW float32 luma of the previous frame.

        Returns:
            (HxW float32 trust in [0, 1], HxW bool has-a-past mask, 2xHxW flow to the past).
        """
        motion = self.config.motion
        flow = estimate_motion(luma, prev_luma, motion)
        prev_luma_w, inside = warp(prev_luma, flow)
        has_past = inside
        if motion != "none":
            has_past = inside & occlusion_mask(flow, estimate_motion(prev_luma, luma, motion))
        trust = np.exp(-(luma - prev_luma_w) ** 2 / (2.0 * self.config.sigma ** 2)) * has_past
        return trust.astype(np.float32), has_past, flow

    def _correction(self, luma_small, chroma_small):
        """D = S - P at work size: the screened Poisson solve with two data terms.

        Each pixel is pulled towards the warped previous output with weight
        strength * trust * (1 - renew) and towards this frame's own chroma (D = 0) with the
        rest of ``strength`` (``NEW_PIXEL_WEIGHT`` on pixels with no past at all). Without the second term
        (Bonneel et al.'s weight 0) the solve extends the neighbours' correction into newly
        revealed pixels, and on a pan that correction compounds frame after frame.
        """
        strength = self.config.strength
        trust, has_past, flow = self.past_trust(luma_small, self._prev_luma)
        prev_chroma_w, _ = warp(self._prev_chroma, flow)
        past_weight = (strength * (1.0 - self.config.renew) * trust)[..., None]
        now_weight = np.where(has_past, strength - past_weight[..., 0],
                              max(strength, NEW_PIXEL_WEIGHT))[..., None]
        return solve_screened_poisson(past_weight * (prev_chroma_w - chroma_small),
                                      (past_weight + now_weight).astype(np.float32),
                                      self.config.max_iterations, self.config.tolerance)

    def stabilize_yuv(self, yuv, guide_luma=None):
        """Stabilises one frame given as float YUV.

        Args:
            yuv: HxWx3 float YUV (``kgan.core.frame_ops.rgb_to_yuv``) of the per-frame output.
            guide_luma: HxW luma of the source frame for motion and trust; the output's own Y
                when None.

        Returns:
            HxWx3 float32 YUV whose Y channel is ``yuv``'s, unchanged.
        """
        yuv = np.asarray(yuv, np.float32)
        height, width = yuv.shape[:2]
        guide = yuv[..., 0] if guide_luma is None else np.asarray(guide_luma, np.float32)
        small_h, small_w = self._work_size(height, width)
        luma_small = resize_plane(guide, small_h, small_w)
        chroma_small = resize_plane(yuv[..., 1:], small_h, small_w)
        prev_ok = (self._prev_luma is not None and self._prev_luma.shape == luma_small.shape)
        if prev_ok and luma_histogram_distance(luma_small, self._prev_luma) > \
                self.config.cut_threshold:
            self.cuts += 1
            prev_ok = False
        if not prev_ok or self.config.strength == 0:
            correction = np.zeros_like(chroma_small)
        else:
            correction = self._correction(luma_small, chroma_small)
        self._prev_luma = luma_small
        self._prev_chroma = (chroma_small + correction).astype(np.float32)
        out = yuv.copy()
        out[..., 1:] += resize_plane(correction, height, width)
        return out

    def __call__(self, frame, guide=None):
        """Stabilises one uint8 RGB per-frame output.

        Args:
            frame: HxWx3 uint8 RGB output of the per-frame model for this frame.
            guide: the source frame (HxWx3 uint8 RGB or HxW luma) for motion; ``frame`` when
                None.

        Returns:
            HxWx3 uint8 RGB with ``frame``'s luma (to rounding) and stabilised chroma.
        """
        guide_luma = None
        if guide is not None:
            guide = np.asarray(guide)
            guide_luma = rgb_to_yuv(guide)[..., 0] if guide.ndim == 3 else guide
        return yuv_to_rgb_uint8(self.stabilize_yuv(rgb_to_yuv(frame), guide_luma))
