"""Temporal-consistency metrics of a colourised video, on the chroma (BT.601 U and V on the 0-1
scale of ``kgan.core.frame_ops.rgb_to_yuv``):

- ``chroma_warping_error``: Lai et al. (ECCV 2018) warping error,
  E = 1/(T-1) sum_t sum_i M_t(i) |C_t(i) - warp(C_{t+1})(i)|^2 / sum_i M_t(i), with the flow
  computed on the INPUT frames (or given exactly, e.g. for a synthetic pan) and M masking
  pixels whose source leaves the frame or fails the forward-backward flow check (occlusions).
- ``static_chroma_flicker``: mean |C_t - C_{t+1}| (Euclidean over U, V) at pixels whose input
  luma did not change; flow-free.
- ``mean_chroma_change``: mean |mean(C_t) - mean(C_{t+1})| over consecutive frames; flow-free,
  measures global hue swings.
- ``invented_chroma``: per frame, the worst 8x8 block's departure of a stabilised output's
  chroma from both its own motion-compensated past and this frame's per-frame output (the
  segment between them, or the per-frame output alone where nothing was seen before):
  colour that neither the history nor the colouriser asked for.
- ``colourfulness``: Hasler & Suesstrunk (2003) on sRGB 0-255, the signed version (rg and yb
  not taken absolute).

Every function streams: frames may be any iterables of HxWx3 uint8 RGB (e.g. the generator of
``kgan.video.pipeline.read_frames``), so a long video is never held in memory. Called by
``benchmarks/video_stability.py`` and the colourisation evaluation.
"""

import itertools

import numpy as np

from kgan.core.frame_ops import estimate_motion, luma, occlusion_mask, rgb_to_yuv, warp


def chroma(frame):
    """HxWx2 float32 (U, V) of an HxWx3 uint8 RGB frame."""
    return rgb_to_yuv(frame)[..., 1:]


def colourfulness(rgb):
    """Hasler-Suesstrunk colourfulness M of an HxWx3 RGB image on the 0-255 scale.

    rg = R - G, yb = (R + G) / 2 - B, M = sqrt(var rg + var yb) + 0.3 sqrt(mean rg^2 + mean yb^2)
    (the signed means, as in the paper; the widely copied |rg|, |yb| variant gives other
    numbers).
    """
    rgb = np.asarray(rgb, np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.sqrt(rg.var() + yb.var()) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def mean_colourfulness(frames):
    """Mean ``colourfulness`` over the frames of a video."""
    values = [colourfulness(f) for f in frames]
    if not values:
        raise ValueError("no frames")
    return float(np.mean(values))


def _flows(flows):
    """An iterator of per-pair flows from a single 2xHxW array (reused) or an iterable."""
    if flows is None:
        return itertools.repeat(None)
    if isinstance(flows, np.ndarray) and flows.ndim == 3:
        return itertools.repeat(flows)
    return iter(flows)


def _frame_streams(metric, inputs, flows):
    """(input frame iterator, flow iterator) of a flow-based metric; the flow is estimated on
    the inputs where no exact flow is given, so one of the two is needed."""
    if inputs is None and flows is None:
        raise ValueError(f"{metric} needs the input frames or exact flows")
    input_iter = iter(inputs) if inputs is not None else itertools.repeat(None)
    return input_iter, _flows(flows)


def _warp_checked(image, flow, from_y, to_y, motion, max_side, occlusion=True):
    """``warp(image, flow)`` and its inside-the-frame mask; with no exact flow, the flow is
    estimated from luma ``from_y`` to ``to_y`` and (``occlusion``) pixels failing the
    forward-backward check are masked too."""
    if flow is not None:
        return warp(image, flow)
    flow = estimate_motion(from_y, to_y, motion, max_side)
    warped, mask = warp(image, flow)
    if occlusion:
        mask &= occlusion_mask(flow, estimate_motion(to_y, from_y, motion, max_side))
    return warped, mask


def chroma_warping_error(outputs, inputs=None, flows=None, motion="flow", occlusion=True,
                         max_side=256):
    """Lai et al.'s warping error of the outputs' chroma.

    Args:
        outputs: iterable of HxWx3 uint8 RGB output frames.
        inputs: iterable of the input frames (RGB or gray HxWx3 uint8) the flow is computed on;
            needed unless ``flows`` is given.
        flows: exact flows instead of estimated ones: one 2xHxW array used for every pair (a
            constant pan, ``kgan.core.frame_ops.constant_flow``) or an iterable of T-1 arrays; flow
            t maps frame t to t+1 (``frame_{t+1}(x + f(x)) = frame_t(x)``). Only the
            inside-the-frame mask applies then.
        motion: ``estimate_motion`` method when the flow is estimated.
        occlusion: with estimated flow, also mask pixels failing the forward-backward check.
        max_side: size the optical flow is estimated at.

    Returns:
        The mean over consecutive pairs of the masked mean squared chroma difference.
    """
    input_iter, flow_iter = _frame_streams("chroma_warping_error", inputs, flows)
    errors = []
    prev_out = prev_in = None
    for out, inp in zip(outputs, input_iter):
        cur_c = chroma(out)
        cur_y = luma(inp) if inp is not None else None
        if prev_out is not None:
            warped, mask = _warp_checked(cur_c, next(flow_iter), prev_in, cur_y, motion,
                                         max_side, occlusion)
            if mask.any():
                errors.append(float((((prev_out - warped) ** 2).sum(-1))[mask].mean()))
        prev_out, prev_in = cur_c, cur_y
    if not errors:
        raise ValueError("the warping error needs at least two frames with overlap")
    return float(np.mean(errors))


def static_chroma_flicker(outputs, inputs=None, luma_threshold=1.0 / 255):
    """Mean chroma change at pixels whose input luma stayed within ``luma_threshold``.

    Args:
        outputs: iterable of HxWx3 uint8 RGB output frames.
        inputs: iterable of input frames whose luma decides which pixels are static; the
            outputs' own luma when None.
        luma_threshold: largest |Y_t - Y_{t+1}| (0-1 scale) of a static pixel.

    Returns:
        Mean over consecutive pairs of the mean Euclidean (U, V) change at static pixels.
    """
    input_iter = iter(inputs) if inputs is not None else itertools.repeat(None)
    values = []
    prev_c = prev_y = None
    for out, inp in zip(outputs, input_iter):
        cur_c = chroma(out)
        cur_y = luma(out if inp is None else inp)
        if prev_c is not None:
            static = np.abs(cur_y - prev_y) <= luma_threshold
            if static.any():
                values.append(float(np.sqrt(((cur_c - prev_c) ** 2).sum(-1))[static].mean()))
        prev_c, prev_y = cur_c, cur_y
    if not values:
        raise ValueError("no static pixels between consecutive frames")
    return float(np.mean(values))


def mean_chroma_change(outputs):
    """Mean over consecutive frames of the Euclidean change of the mean (U, V)."""
    means = [chroma(out).reshape(-1, 2).mean(axis=0) for out in outputs]
    if len(means) < 2:
        raise ValueError("mean_chroma_change needs at least two frames")
    return float(np.mean(np.linalg.norm(np.diff(np.array(means), axis=0), axis=1)))


def _to_segment(point, start, end):
    """Distance of Nx2 points to the segments [start, end] (Nx2 each)."""
    span = end - start
    length2 = (span ** 2).sum(-1)
    along = np.clip(((point - start) * span).sum(-1) / np.maximum(length2, 1e-12), 0.0, 1.0)
    return np.linalg.norm(point - (start + along[:, None] * span), axis=-1)


def _block_means(values, mask, block):
    """Per block x block tile: (sum of mask, mean of values over the mask) of HxWxC values."""
    height, width = mask.shape
    rows, cols = height // block, width // block
    m = mask[:rows * block, :cols * block].reshape(rows, block, cols, block).astype(np.float64)
    v = values[:rows * block, :cols * block].reshape(rows, block, cols, block, -1)
    count = m.sum(axis=(1, 3))
    total = (v * m[..., None]).sum(axis=(1, 3))
    return count.ravel(), (total / np.maximum(count, 1)[..., None]).reshape(-1, values.shape[-1])


def invented_chroma(outputs, per_frame, inputs=None, flows=None, motion="flow", block=8,
                    min_pixels=8, max_side=256):
    """How far a stabilised output's chroma departs from both its past and the per-frame output.

    For frame t >= 1 the pixels are split by whether they have a past: their source
    x + f(x) in frame t-1 lies inside it (and, with estimated flow, passes the
    forward-backward check). Per ``block`` x ``block`` tile and per group with at least
    ``min_pixels`` pixels, the mean output chroma S is compared with the mean per-frame chroma
    P (no past: distance to P) or with the segment from the mean warped previous output
    warp(S_{t-1}) to P (a past: any blend of the two is allowed). A stabiliser that smears the
    neighbours' correction into newly revealed pixels, or pulls colours towards gray, departs
    from both.

    Args:
        outputs: iterable of HxWx3 uint8 RGB stabilised frames.
        per_frame: iterable of the per-frame outputs they were made from.
        inputs: input frames the flow is estimated on (when ``flows`` is None).
        flows: exact backward flows: one 2xHxW array for every pair or an iterable of T-1;
            flow t maps frame t to t-1 (``frame_{t-1}(x + f(x)) = frame_t(x)``).
        motion: ``estimate_motion`` method when the flow is estimated.
        block: tile side in pixels.
        min_pixels: smallest group of a tile that is scored.
        max_side: size the optical flow is estimated at.

    Returns:
        float64 array of T-1 values: per frame the largest tile departure (U, V, 0-1 scale;
        multiply by 255 for 8-bit levels).
    """
    input_iter, flow_iter = _frame_streams("invented_chroma", inputs, flows)
    worst = []
    prev_s = prev_y = None
    for out, per, inp in zip(outputs, per_frame, input_iter):
        cur_s, cur_p = chroma(out), chroma(per)
        cur_y = luma(inp) if inp is not None else None
        if prev_s is not None:
            past, has_past = _warp_checked(prev_s, next(flow_iter), cur_y, prev_y, motion,
                                           max_side)
            stacked = np.concatenate([cur_s, cur_p, past], axis=-1)
            values = [0.0]
            for seen, group in ((True, has_past), (False, ~has_past)):
                count, means = _block_means(stacked, group, block)
                keep = count >= min_pixels
                s, p, q = means[keep, :2], means[keep, 2:4], means[keep, 4:]
                gap = _to_segment(s, q, p) if seen else np.linalg.norm(s - p, axis=-1)
                values.extend(gap.tolist())
            worst.append(max(values))
        prev_s, prev_y = cur_s, cur_y
    if not worst:
        raise ValueError("invented_chroma needs at least two frames")
    return np.asarray(worst)
