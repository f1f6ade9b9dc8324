"""Scores a generator against ground truth, beside simple baselines.

PSNR and SSIM (see ``kgan.metrics.image`` for the protocol: RGB, full image, no border crop, [-1, 1]
mapped to [0, 1]) of three methods on the same (input, target) pairs:

- ``model``: the generator's output (inputs reflect-padded to its size multiple, cropped back);
- ``degraded_input``: the input itself, unchanged;
- ``bicubic``: the input downscaled by ``bicubic_factor`` (antialiased) and upscaled back
  bicubically: the classic super-resolution baseline applied to what the model sees (it also
  smooths JPEG blocking, so it is a fair "cheap filter" baseline for restoration).

``check_quality`` turns a result dict into a pass/fail check: the model must beat a baseline
(the degraded input by default) by a stated margin, else ``QualityError``. CI runs
``python -m kgan.evaluate --checkpoint_dir=runs/quickstart --require_gain_db=0.5``.

FID and KID (``evaluate_sets_fid_kid``) compare the set of generated images with the set of
targets (and the inputs with the targets as a baseline); they also work for unpaired data,
e.g. G(A) against real B for CycleGAN.

Called by kgan.cli.evaluate (``python -m kgan.evaluate`` runs it) and by the restoration and
colourisation recipes at the end of training. CLI::

    python -m kgan.evaluate --checkpoint_dir=RUN            # the run's own held-out evaluation
    python -m kgan.evaluate --model=saved_models/x.keras --dataroot=photos/ \\
        --degradations=downscale,jpeg --seed=0 --output_json=eval.json
    python -m kgan.evaluate --checkpoint_dir=RUN --data=paired --dataroot=facades
    python -m kgan.evaluate --checkpoint_dir=RUN --data=unpaired --dataroot=horse2zebra \\
        --metrics=fid,kid --inception_weights=imagenet
"""

import numpy as np
import tensorflow as tf

import kgan.data as data_lib
from kgan.core.errors import KganError, UsageError
from kgan.core.tf_import import native_lines_dropped
from kgan.metrics import image as metrics
from kgan.models import size_multiple
from kgan.serving.translators import reflect_pad_to_multiple

METHODS = ("model", "degraded_input", "bicubic")
PAIR_METRICS = ("psnr", "ssim")
SET_METRICS = ("fid", "kid")
# Metrics where a smaller value is better (every other metric: larger is better).
LOWER_IS_BETTER = ("fid", "kid", "ciede2000", "chroma_error", "ab_error", "zombie_share",
                   "colour_score")
PROTOCOL = ("RGB, each scored image whole, no border crop; images in [-1, 1] mapped to [0, 1]; "
            "SSIM with an 11x11 Gaussian window (sigma 1.5); means over images")


class QualityError(KganError, RuntimeError):
    """A model that does not beat its baseline by the required margin (``check_quality``)."""


def check_quality(results, margin, metric="psnr", baseline="degraded_input"):
    """Checks that the model beats ``baseline`` on ``metric`` by at least ``margin``.

    Args:
        results: a result dict with ``results["model"][metric]`` and
            ``results[baseline][metric]``: ``evaluate_pairs`` / ``evaluate`` (a run's
            ``evaluation.json``), or ``kgan.metrics.color.evaluate_colorization`` with
            ``metric="colour_score", baseline="gray_input"``.
        margin: the smallest gain that passes, in the metric's units (dB for PSNR).
        metric: the metric to compare; for ``LOWER_IS_BETTER`` metrics the gain is
            baseline - model, otherwise model - baseline.
        baseline: the method to beat (``degraded_input``, ``bicubic``, ``gray_input``, ...).

    Returns:
        The gain (positive: the model is better), when it is at least ``margin``.

    Raises:
        QualityError: the gain is below ``margin`` (or not a number).
        UsageError: ``results`` lacks the model's or the baseline's ``metric``.

    Example:
        >>> results = {"model": {"psnr": 24.97}, "degraded_input": {"psnr": 24.12}}
        >>> round(check_quality(results, 0.5), 2)
        0.85
    """
    values = {}
    for method in ("model", baseline):
        value = results.get(method, {}).get(metric) if isinstance(results.get(method),
                                                                  dict) else None
        if value is None:
            raise UsageError(f"The results have no {metric!r} for {method!r}; they hold "
                             f"{sorted(k for k, v in results.items() if isinstance(v, dict))}.")
        values[method] = float(value)
    gain = values["model"] - values[baseline]
    if metric in LOWER_IS_BETTER:
        gain = -gain
    if not gain >= margin:  # also refuses NaN
        raise QualityError(
            f"the model's {metric} {values['model']:.4g} beats {baseline}'s "
            f"{values[baseline]:.4g} by {gain:+.4g}, below the required {margin:g}.")
    return gain


def run_generator(generator, images, multiple=None):
    """Runs a generator on images of any size: reflect-pad to its size multiple, crop back.

    Args:
        generator: a kgan generator (float [-1, 1] in and out).
        images: float32 (N, H, W, 3) in [-1, 1].
        multiple: the size multiple; default ``kgan.models.size_multiple(generator)``.

    Returns:
        float32 (N, H, W, 3) outputs, clipped to [-1, 1].
    """

    multiple = int(multiple or size_multiple(generator))
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    if height % multiple or width % multiple:
        padded, top, left = reflect_pad_to_multiple(images, multiple)
        outputs = generator(padded, training=False)[:, top:top + height, left:left + width]
    else:
        outputs = generator(images, training=False)
    return tf.clip_by_value(tf.cast(outputs, tf.float32), -1.0, 1.0)


def bicubic_baseline(images, factor=2.0):
    """Downscales by ``factor`` (antialiased bilinear) and upscales back bicubically.

    Args:
        images: float32 (N, H, W, 3) in [-1, 1].
        factor: the downscale factor (> 1).

    Returns:
        float32 (N, H, W, 3) in [-1, 1].
    """
    if factor <= 1:
        raise ValueError(f"bicubic_factor must be > 1, got {factor}.")
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    small = (max(1, round(height / factor)), max(1, round(width / factor)))
    x = tf.image.resize(images, small, method="bilinear", antialias=True)
    x = tf.image.resize(x, (height, width), method="bicubic")
    return tf.clip_by_value(x, -1.0, 1.0)


def _pairs(dataset, max_images):
    """Yields (inputs, targets) float32 batches, cut at ``max_images`` images in total."""
    seen = 0
    for element in dataset:
        if not isinstance(element, (tuple, list)) or len(element) != 2:
            raise ValueError("evaluate takes a dataset of (input, target) image batches.")
        inputs, targets = (tf.convert_to_tensor(x, tf.float32) for x in element)
        if inputs.shape.rank == 3:
            inputs, targets = inputs[tf.newaxis], targets[tf.newaxis]
        if inputs.shape != targets.shape:
            raise ValueError(f"Input and target shapes differ: {inputs.shape} vs "
                             f"{targets.shape}.")
        if max_images is not None:
            left = max_images - seen
            if left <= 0:
                return
            inputs, targets = inputs[:left], targets[:left]
        seen += int(inputs.shape[0])
        yield inputs, targets


def _outputs(generator, inputs, bicubic_factor, methods):
    outputs = {}
    if "model" in methods:
        outputs["model"] = run_generator(generator, inputs)
    if "degraded_input" in methods:
        outputs["degraded_input"] = inputs
    if "bicubic" in methods:
        outputs["bicubic"] = bicubic_baseline(inputs, bicubic_factor)
    return outputs


def _methods(generator):
    return METHODS if generator is not None else METHODS[1:]


def evaluate_pairs(generator, dataset, max_images=None, bicubic_factor=2.0, what="images"):
    """Mean PSNR and SSIM of the generator and the baselines on (input, target) pairs.

    Args:
        generator: a kgan generator, or None to score the baselines only.
        dataset: a tf.data.Dataset (or iterable) of ``(input, target)`` float32 batches in
            [-1, 1], e.g. ``kgan.data.restoration_dataset(phase="test", repeat=False)``.
            It must be finite.
        max_images: score at most this many images.
        bicubic_factor: the bicubic baseline's downscale factor.
        what: what the scored images are, for the table (``tiles`` for restoration's test
            data, which cuts each photo into tiles).

    Returns:
        ``{"model": {"psnr": dB, "ssim": s}, "degraded_input": {...}, "bicubic": {...},
        "num_images": N, "scored": "N tiles of 256x256 px", "protocol": text}`` (no
        ``"model"`` when ``generator`` is None).

    Raises:
        ValueError: an empty dataset, or mismatched input and target shapes.
    """
    methods = _methods(generator)
    sums = {m: {"psnr": 0.0, "ssim": 0.0} for m in methods}
    count, sizes = 0, set()
    # The held-out tiles' pipeline makes TensorFlow print "oneDNN supports DT_UINT8 only on
    # platforms with AVX-512" once per process, on AVX-512 machines too: a notice, not an error.
    with native_lines_dropped("oneDNN supports DT_UINT8 only"):
        for inputs, targets in _pairs(dataset, max_images):
            sizes.add(tuple(int(d) for d in inputs.shape[1:3]))
            for method, outputs in _outputs(generator, inputs, bicubic_factor, methods).items():
                sums[method]["psnr"] += float(tf.reduce_sum(metrics.psnr(outputs, targets)))
                sums[method]["ssim"] += float(tf.reduce_sum(metrics.ssim(outputs, targets)))
            count += int(inputs.shape[0])
    if count == 0:
        raise ValueError("The evaluation dataset is empty: nothing to score.")
    results = {m: {k: v / count for k, v in sums[m].items()} for m in methods}
    size = ""
    if len(sizes) == 1:
        height, width = sizes.pop()
        size = f" of {width}x{height} px"
    results.update({"num_images": count, "scored": f"{count} {what}{size}",
                    "bicubic_factor": bicubic_factor, "protocol": PROTOCOL})
    return results


def evaluate_sets_fid_kid(generator, dataset, feature_fn=None, inception_weights="imagenet",
                          max_images=None, bicubic_factor=2.0, kid_subsets=100,
                          kid_subset_size=1000, max_kid_features=10000):
    """FID and KID of the generated set (and the baselines' sets) against the target set.

    Works for paired data (restoration, pix2pix) and for unpaired data (CycleGAN: inputs from
    domain A, "targets" a set of real domain-B images). One streaming pass over the dataset.

    Args:
        generator: a kgan generator, or None to score the baselines only.
        dataset: finite (input, target) float32 batches in [-1, 1].
        feature_fn: the feature function (default InceptionV3 pool features); injectable.
        inception_weights: ``imagenet``, a path, or ``none`` (random; tests only).
        max_images: use at most this many images of each set.
        bicubic_factor: the bicubic baseline's factor.
        kid_subsets, kid_subset_size, max_kid_features: KID's estimator (``kgan.metrics.image``).

    Returns:
        ``{"model": {"fid", "kid", "kid_std"}, "degraded_input": {...}, "bicubic": {...},
        "num_images": N}``.
    """
    if feature_fn is None:
        feature_fn = metrics.inception_feature_extractor(inception_weights)
    methods = _methods(generator)
    stats = {name: metrics.FeatureStatistics(max_kid_features) for name in ("target",) + methods}

    def features(images):
        value = feature_fn(images)
        return value.numpy() if hasattr(value, "numpy") else np.asarray(value)

    for inputs, targets in _pairs(dataset, max_images):
        stats["target"].update(features(targets))
        for method, outputs in _outputs(generator, inputs, bicubic_factor, methods).items():
            stats[method].update(features(outputs))
    if stats["target"].count < 2:
        raise ValueError(f"FID/KID need at least 2 images, got {stats['target'].count}.")
    results = {}
    for method in methods:
        scores = metrics.fid_kid_from_statistics(stats["target"], stats[method], kid_subsets,
                                                 kid_subset_size)
        results[method] = {k: scores[k] for k in ("fid", "kid", "kid_std")}
    results["num_images"] = stats["target"].count
    return results


def merge_results(*results):
    """Merges result dicts of ``evaluate_pairs`` and ``evaluate_sets_fid_kid`` per method."""
    merged = {}
    for result in results:
        for key, value in result.items():
            if isinstance(value, dict):
                merged.setdefault(key, {}).update(value)
            else:
                merged[key] = value
    return merged


def format_table(results):
    """Renders evaluation results as a plain-text table, one row per method.

    Args:
        results: the dict of ``evaluate_pairs`` / ``evaluate_sets_fid_kid`` / ``merge_results``.

    Returns:
        The table as a string.
    """
    methods = [m for m in METHODS if m in results]
    columns = [c for c in ("psnr", "ssim", "fid", "kid")
               if any(c in results[m] for m in methods)]
    labels = {"psnr": "PSNR (dB)", "ssim": "SSIM", "fid": "FID", "kid": "KID"}
    digits = {"psnr": 2, "ssim": 4, "fid": 2, "kid": 4}
    rows = [["method"] + [labels[c] for c in columns]]
    for method in methods:
        row = [method]
        for column in columns:
            value = results[method].get(column)
            row.append("n/a" if value is None else f"{value:.{digits[column]}f}")
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                       for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    if "model" in results and "psnr" in results["model"] and "degraded_input" in results:
        gain = results["model"]["psnr"] - results["degraded_input"]["psnr"]
        lines.append(f"model vs degraded input: {gain:+.2f} dB PSNR")
    scored = results.get("scored") or f"{results.get('num_images', '?')} images"
    lines.append(f"{scored}; {PROTOCOL}")
    return "\n".join(lines)


def make_dataset(data="restoration", dataroot=None, degradations="downscale,jpeg",
                 crop_size=128, seed=0, batch_size=1, direction="AtoB", max_images=None):
    """The evaluation data as finite (input, target) batches.

    Args:
        data: ``restoration`` (clean images crappified with ``degradations``; the built-in
            held-out photos when ``dataroot`` is None), ``paired`` (``kgan.data.paired_dataset``
            test split, resized to ``crop_size``) or ``unpaired`` (``testA``/``testB``; FID/KID
            only).
        dataroot, degradations, seed, direction: as the training flags.
        crop_size: restoration tile size, or the paired/unpaired resize size.
        batch_size: images per batch.
        max_images: read at most this many source images (a restoration image gives
            several tiles).

    Returns:
        A tf.data.Dataset of (input, target) float32 batches in [-1, 1].
    """

    if data == "restoration":
        ds, _ = data_lib.restoration_dataset(dataroot=dataroot, phase="test",
                                             degradations=degradations, crop_size=crop_size,
                                             batch_size=batch_size, seed=seed, repeat=False,
                                             max_dataset_size=max_images)
    elif data == "paired":
        ds, _ = data_lib.paired_dataset(dataroot=dataroot, phase="test", direction=direction,
                                        load_size=crop_size, crop_size=crop_size, no_flip=True,
                                        serial_batches=True, batch_size=batch_size, seed=seed,
                                        repeat=False, max_dataset_size=max_images)
    elif data == "unpaired":
        ds, _ = data_lib.unpaired_dataset(dataroot=dataroot, phase="test", load_size=crop_size,
                                          crop_size=crop_size, no_flip=True,
                                          serial_batches=True, batch_size=batch_size, seed=seed,
                                          repeat=False, max_dataset_size=max_images)
        if direction == "BtoA":
            ds = ds.map(lambda a, b: (b, a))
    else:
        raise UsageError(f"Unknown --data={data!r}; use restoration, paired or unpaired.")
    return ds


def parse_metrics(text, data):
    """Validates ``--metrics`` (comma-separated psnr, ssim, fid, kid) for the data kind."""
    names = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in names if m not in PAIR_METRICS + SET_METRICS]
    if unknown or not names:
        raise UsageError(f"--metrics takes a comma-separated subset of "
                         f"{', '.join(PAIR_METRICS + SET_METRICS)}; got {text!r}.")
    if data == "unpaired" and any(m in PAIR_METRICS for m in names):
        raise UsageError("PSNR/SSIM need ground truth; with --data=unpaired use "
                         "--metrics=fid,kid.")
    return names


def evaluate(generator, dataset, metric_names=PAIR_METRICS, inception_weights="imagenet",
             max_images=None, bicubic_factor=2.0, feature_fn=None, what="images"):
    """Runs the requested metrics and merges them into one result dict."""
    parts = []
    if any(m in PAIR_METRICS for m in metric_names):
        parts.append(evaluate_pairs(generator, dataset, max_images, bicubic_factor, what))
    if any(m in SET_METRICS for m in metric_names):
        parts.append(evaluate_sets_fid_kid(generator, dataset, feature_fn, inception_weights,
                                           max_images, bicubic_factor))
    results = merge_results(*parts)
    for method in METHODS:
        if method in results:
            results[method] = {k: v for k, v in results[method].items()
                               if k in metric_names or k == "kid_std" and "kid" in metric_names}
    return results
