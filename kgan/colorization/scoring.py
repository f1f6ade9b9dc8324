"""Scores colourisation models on held-out colour photos and picks the GAN checkpoint by colour.

PSNR picks the grayest GAN checkpoint (a desaturated guess is never far off), so checkpoints are
ranked by ``kgan.metrics.color.colour_score`` (mean CIEDE2000 plus a penalty on the log ratio of
colourfulness to the truth's); PSNR is printed beside it. Called by the colourisation recipe
(after its GAN phase), ``kgan.evaluate --data=colorize`` and the benchmarks.
"""

import os

import numpy as np
import tensorflow as tf

from kgan.colorization.colorizer import Colorizer
from kgan.data.images import list_images, load_image
from kgan.data.samples import sample_color_photos
from kgan.metrics import color as color_metrics
from kgan.serving.precision import computes_in_float32, with_precision


def load_color_photos(dataroot=None, max_images=None):
    """Colour photos to score on: the image files of ``dataroot`` (``dataroot/test/`` when it
    exists; unreadable files skipped), or the held-out built-in colour photos.

    Returns:
        A list of uint8 (H, W, 3) arrays.
    """

    if not dataroot:
        return sample_color_photos("test")[:max_images]
    folder = os.path.join(dataroot, "test")
    folder = folder if os.path.isdir(folder) else dataroot
    photos = []
    for path in list_images(folder)[:max_images]:
        try:
            photos.append(load_image(path))
        except Exception:  # noqa: BLE001 - a bad file is skipped, as everywhere in kgan.data
            continue
    if not photos:
        raise FileNotFoundError(f"{folder} holds no readable colour photos.")
    return photos


def evaluate_colorization_model(model, truths=None, render_factor=16, fit="stretch",
                                train_uv=None):
    """Colour metrics (``color_metrics.evaluate_colorization``) of a model on colour photos.

    Args:
        model: a ``keras.Model``, translator or ``Colorizer``.
        truths: uint8 RGB photos; default the held-out built-in colour photos.
        render_factor: as ``Colorizer``.
        fit: as ``Colorizer``.
        train_uv: the mean-chroma baseline's (U, V); default the mean over the built-in colour
            training photos when ``truths`` is None, else over ``truths``.

    Returns:
        The results dict, with ``render_factor`` added.
    """

    if truths is None:
        truths = sample_color_photos("test")
        if train_uv is None:
            train_uv = color_metrics.mean_uv(sample_color_photos("train"))
    colorizer = model if isinstance(model, Colorizer) else Colorizer(model, render_factor, fit)
    inputs = [color_metrics.gray_baseline(t) for t in truths]
    outputs = [colorizer.colorize(g) for g in inputs]
    results = color_metrics.evaluate_colorization(outputs, truths, inputs, train_uv)
    results["render_factor"] = render_factor
    return results


def _psnr(outputs, truths):
    errors = [np.mean((o.astype(np.float64) - t.astype(np.float64)) ** 2)
              for o, t in zip(outputs, truths)]
    return float(np.mean([10 * np.log10(255.0 ** 2 / max(e, 1e-10)) for e in errors]))


def score_outputs(outputs, truths):
    """{"colour_score", "psnr"} of uint8 outputs against truths (PSNR in dB, RGB)."""
    return {"colour_score": color_metrics.colour_score(outputs, truths),
            "psnr": _psnr(outputs, truths)}


def pick_best_colour_checkpoint(trainer, run_dir, truths=None, render_factor=16,
                                weights_name="generator_best"):
    """Scores every kept checkpoint of a GAN phase by ``color_metrics.colour_score`` on
    held-out photos and keeps the best generator (PSNR would favour the grayest one).

    Args:
        trainer: the trainer whose checkpoints ``run_dir/checkpoints`` holds (its
            ``generator`` is restored in place).
        run_dir: the phase's run directory.
        truths: uint8 RGB photos; default the held-out built-in colour photos.
        render_factor: render factor of the scoring.
        weights_name: the best generator's weights go to ``run_dir/<weights_name>.weights.h5``.

    Returns:
        ``(best path, {path: {"colour_score": ..., "psnr": ...}})``; ``(None, {})`` when there
        are no checkpoints.
    """

    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths:
        return None, {}
    truths = sample_color_photos("test") if truths is None else truths
    inputs = [color_metrics.gray_baseline(t) for t in truths]
    # A generator trained under mixed_bfloat16 is scored through a float32 copy, made once
    # (one traced function) and given each restored checkpoint's weights: a Colorizer on the
    # bf16 generator itself would convert it once, here, and score every checkpoint alike.
    generator = trainer.generator
    scored = generator if computes_in_float32(generator) else with_precision(generator,
                                                                              "float32")
    colorizer = Colorizer(scored, render_factor)
    scores = {}
    for path in paths:
        tf.train.Checkpoint(trainer=trainer).restore(path).expect_partial()
        if scored is not generator:
            scored.set_weights(generator.get_weights())
        scores[path] = score_outputs([colorizer.colorize(g) for g in inputs], truths)
    best = min(scores, key=lambda p: scores[p]["colour_score"])
    by_psnr = max(scores, key=lambda p: scores[p]["psnr"])
    tf.train.Checkpoint(trainer=trainer).restore(best).expect_partial()
    for path, score in scores.items():
        print(f"kgan: GAN checkpoint {os.path.basename(path)}: colour score "
              f"{score['colour_score']:.2f}, PSNR {score['psnr']:.2f} dB"
              + ("  <- best" if path == best else "")
              + ("  (PSNR's pick)" if path == by_psnr and by_psnr != best else ""))
    trainer.generator.save_weights(os.path.join(run_dir, weights_name + ".weights.h5"))
    return best, scores
