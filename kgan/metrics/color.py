"""Colour metrics for colourisation, a checkpoint-selection score, and their table.

PSNR favours gray outputs (a desaturated guess is never far off), so colourisation is scored in
CIELAB (scikit-image's ``rgb2lab``, sRGB D65) and by how colourful the output is:

- ``colourfulness``: Hasler & Suesstrunk (2003) on sRGB 0..255 with the SIGNED opponent
  channels rg = R - G, yb = (R + G) / 2 - B:
  M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 * sqrt(mean(rg)^2 + mean(yb)^2).
  (A widely copied version takes |rg| and |yb| first, which gives other numbers.)
- ``ciede2000``: mean CIEDE2000 colour difference to the truth (``deltaE_ciede2000``).
- ``chroma_error``: mean |C*_out - C*_truth|, C* = sqrt(a*^2 + b*^2); ``ab_error``: mean
  Euclidean distance in the (a*, b*) plane.
- ``saturation_ratio``: mean C*_out / mean C*_truth (1 is right, 0 is gray).
- ``zombie_share``: share of pixels coloured in the truth (C* > 15) but gray in the output
  (C* < 5): DeOldify's gray-skin "zombies".

Each metric is computed per image and averaged over images. ``evaluate_colorization`` puts the
model beside two baselines: the gray input itself, and the gray input with one constant chroma
(the mean U, V of the truths, or of training photos when given), merged luma-preserving.

``colour_score`` is the checkpoint-selection criterion (lower is better):
mean over images of CIEDE2000 + ``COLOURFULNESS_WEIGHT`` * |ln((M_out + 1) / (M_truth + 1))|.
The first term rewards the right colours; the second punishes both gray outputs (which
CIEDE2000 alone forgives when the truth is muted) and over-saturated ones. With weight 10, an
output half as colourful as the truth pays 6.9 units, about one just-noticeable-difference
step of CIEDE2000 per 0.1 of log ratio.

Called by ``kgan.colorization.colorizer`` (evaluation, checkpoint selection),
``kgan.evaluation.evaluate`` (``--data=colorize``) and the colourisation benchmarks. Needs only
NumPy and scikit-image.
"""

import numpy as np

COLOURFULNESS_WEIGHT = 10.0
ZOMBIE_TRUTH_CHROMA = 15.0
ZOMBIE_OUTPUT_CHROMA = 5.0
METRICS = ("ciede2000", "chroma_error", "ab_error", "colourfulness", "saturation_ratio",
           "zombie_share", "colour_score")
METHODS = ("model", "gray_input", "mean_chroma", "ground_truth")
# BT.601 as tf.image.rgb_to_yuv (NumPy copy, so this module needs no TensorFlow).
_RGB_TO_YUV = np.array([[0.299, -0.14714119, 0.61497538],
                        [0.587, -0.28886916, -0.51496512],
                        [0.114, 0.43601035, -0.10001026]])


def _rgb(image):
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[-1] != 3:
        raise ValueError(f"Colour metrics take (H, W, 3) RGB images, got shape {image.shape}.")
    if image.dtype != np.uint8:
        raise ValueError(f"Colour metrics take uint8 images, got {image.dtype}.")
    return image


def colourfulness(image):
    """Hasler-Suesstrunk colourfulness of a uint8 RGB image (signed rg / yb; 0 for gray)."""
    rgb = _rgb(image).astype(np.float64)
    rg = rgb[..., 0] - rgb[..., 1]
    yb = 0.5 * (rgb[..., 0] + rgb[..., 1]) - rgb[..., 2]
    return float(np.sqrt(rg.std() ** 2 + yb.std() ** 2)
                 + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2))


def to_lab(image):
    """uint8 RGB -> CIELAB (D65), float64 (H, W, 3)."""
    from skimage.color import (
        rgb2lab,  # Imported lazily: only the colour metrics need it.
    )

    return rgb2lab(_rgb(image).astype(np.float64) / 255.0)


def lab_chroma(lab):
    """C* = sqrt(a*^2 + b*^2) of a CIELAB image, (H, W)."""
    return np.hypot(lab[..., 1], lab[..., 2])


def image_metrics(output, truth):
    """Every colour metric of one output against its truth (both uint8 RGB, same shape).

    Returns:
        ``{metric: value}`` for ``METRICS`` (``colour_score`` is this image's term).
    """
    from skimage.color import deltaE_ciede2000

    output, truth = _rgb(output), _rgb(truth)
    if output.shape != truth.shape:
        raise ValueError(f"Output and truth shapes differ: {output.shape} vs {truth.shape}.")
    lab_out, lab_truth = to_lab(output), to_lab(truth)
    c_out, c_truth = lab_chroma(lab_out), lab_chroma(lab_truth)
    m_out, m_truth = colourfulness(output), colourfulness(truth)
    delta_e = float(np.mean(deltaE_ciede2000(lab_truth, lab_out)))
    mean_truth_chroma = float(c_truth.mean())
    return {
        "ciede2000": delta_e,
        "chroma_error": float(np.mean(np.abs(c_out - c_truth))),
        "ab_error": float(np.mean(np.hypot(lab_out[..., 1] - lab_truth[..., 1],
                                           lab_out[..., 2] - lab_truth[..., 2]))),
        "colourfulness": m_out,
        "saturation_ratio": float(c_out.mean() / mean_truth_chroma) if mean_truth_chroma > 0
        else float("nan"),
        "zombie_share": float(np.mean((c_truth > ZOMBIE_TRUTH_CHROMA)
                                      & (c_out < ZOMBIE_OUTPUT_CHROMA))),
        "colour_score": delta_e + COLOURFULNESS_WEIGHT * abs(np.log((m_out + 1.0)
                                                                    / (m_truth + 1.0))),
    }


def mean_metrics(outputs, truths):
    """``image_metrics`` averaged over pairs of uint8 RGB images."""
    outputs, truths = list(outputs), list(truths)
    if not outputs or len(outputs) != len(truths):
        raise ValueError(f"Need as many outputs as truths (at least one); got {len(outputs)} "
                         f"and {len(truths)}.")
    rows = [image_metrics(o, t) for o, t in zip(outputs, truths)]
    return {name: float(np.mean([row[name] for row in rows])) for name in METRICS}


def colour_score(outputs, truths):
    """The checkpoint-selection criterion (lower is better): mean over images of CIEDE2000 +
    ``COLOURFULNESS_WEIGHT`` * |ln((M_out + 1) / (M_truth + 1))| (see the module docstring)."""
    return mean_metrics(outputs, truths)["colour_score"]


def rgb_luma(image):
    """BT.601 luma (float64, 0..255) of a uint8 RGB image, as ``tf.image.rgb_to_yuv``."""
    return np.asarray(image, np.float64) @ _RGB_TO_YUV[:, 0]


def gray_baseline(truth):
    """The gray input a colouriser sees: the truth's luma, rounded, copied to 3 channels."""
    y = np.clip(np.round(rgb_luma(_rgb(truth))), 0, 255).astype(np.uint8)
    return np.repeat(y[..., None], 3, axis=-1)


def mean_uv(images):
    """Mean BT.601 (U, V) over the pixels of uint8 RGB images, in 0..1 units."""
    sums, count = np.zeros(2), 0
    for image in images:
        yuv = np.asarray(_rgb(image), np.float64).reshape(-1, 3) / 255.0 @ _RGB_TO_YUV
        sums += yuv[:, 1:].sum(axis=0)
        count += yuv.shape[0]
    return sums / max(count, 1)


def constant_chroma_baseline(gray, uv):
    """``gray``'s luma with one constant chroma ``uv`` (0..1 units), fitted into the RGB cube by
    reducing the chroma where needed (as ``kgan.models.colorize.merge_luma_chroma``)."""
    y = rgb_luma(_rgb(gray))[..., None] / 255.0
    direction = np.array([0.0, *uv]) @ np.linalg.inv(_RGB_TO_YUV)
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(direction > 0, 1.0 - y, y)
        limits = np.where(np.abs(direction) > 1e-6, room / np.abs(direction), 1.0)
    scale = np.clip(limits.min(axis=-1, keepdims=True), 0.0, 1.0)
    rgb = (y + scale * direction) * 255.0
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def evaluate_colorization(outputs, truths, inputs=None, train_uv=None):
    """Colour metrics of a colouriser's outputs beside the gray and mean-chroma baselines.

    Args:
        outputs: uint8 RGB outputs, one per truth.
        truths: the uint8 RGB ground-truth photos.
        inputs: the gray inputs the model saw (default ``gray_baseline(truth)``).
        train_uv: the constant (U, V) of the mean-chroma baseline, e.g. ``mean_uv`` of the
            training photos; default the mean over the truths (an optimistic constant).

    Returns:
        ``{"model": {...}, "gray_input": {...}, "mean_chroma": {...}, "ground_truth":
        {"colourfulness": ...}, "num_images": n, "mean_chroma_uv": [u, v]}``.
    """
    truths = [_rgb(t) for t in truths]
    inputs = [gray_baseline(t) for t in truths] if inputs is None else list(inputs)
    uv = mean_uv(truths) if train_uv is None else np.asarray(train_uv, np.float64)
    return {
        "model": mean_metrics(outputs, truths),
        "gray_input": mean_metrics(inputs, truths),
        "mean_chroma": mean_metrics([constant_chroma_baseline(g, uv) for g in inputs], truths),
        "ground_truth": {"colourfulness": float(np.mean([colourfulness(t) for t in truths]))},
        "num_images": len(truths),
        "mean_chroma_uv": [float(uv[0]), float(uv[1])],
    }


def format_color_table(results):
    """Renders ``evaluate_colorization`` results as a plain-text table, one row per method."""
    labels = {"ciede2000": "dE2000", "chroma_error": "|dC*|", "ab_error": "d(ab)",
              "colourfulness": "colourful", "saturation_ratio": "sat ratio",
              "zombie_share": "zombie %", "colour_score": "score"}
    rows = [["method"] + [labels[m] for m in METRICS]]
    for method in METHODS:
        if method not in results:
            continue
        row = [method]
        for metric in METRICS:
            value = results[method].get(metric)
            if value is None:
                row.append("")
            elif metric == "zombie_share":
                row.append(f"{100 * value:.1f}")
            else:
                row.append(f"{value:.3f}" if metric == "saturation_ratio" else f"{value:.2f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.append(f"{results.get('num_images', '?')} images; CIELAB D65 (skimage), colourfulness "
                 "Hasler-Suesstrunk (signed rg/yb); score = dE2000 + "
                 f"{COLOURFULNESS_WEIGHT:g}*|ln((M+1)/(M_truth+1))|, lower is better")
    return "\n".join(lines)
