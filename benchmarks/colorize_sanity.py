"""Colourisation sanity check: does the luma-preserving chroma UNet learn colour at all?

Trains ``kgan.models.colorization_generator`` (plain UNet) with ``GeneratorPretrainer`` and the
pixel content loss ``l1_ssim`` on (gray, colour) crops of the built-in natural colour photos
(astronaut, coffee, rocket), then colourises the held-out ones (chelsea, the stereo motorcycle
pair) with ``kgan.colorization.colorizer.Colorizer`` and prints the colour metrics table: model vs
the gray input vs a constant mean-chroma baseline (the training photos' mean U, V). It also reports

- several render factors, ``auto``, and the stretch / pad fits of the render square;
- the snapshots taken every ``--snapshot_every`` steps, ranked by PSNR and by
  ``color_metrics.colour_score``, to show where the two criteria disagree.

Not a test: it takes minutes. Example (docs/colorization.md)::

    PYTHONPATH=. python benchmarks/colorize_sanity.py --steps=600 --output_json=/tmp/cs.json
"""

import argparse
import json
import time

import keras
import numpy as np
import tensorflow as tf

from kgan.colorization.colorizer import (
    AUTO_FACTORS,
    PHOTO_RENDER_FACTOR,
    Colorizer,
    as_translator,
)
from kgan.colorization.scoring import score_outputs
from kgan.data.colorize import colorization_dataset
from kgan.data.samples import sample_color_photos
from kgan.metrics import color as color_metrics
from kgan.models.colorize import colorization_generator
from kgan.training import losses
from kgan.training.trainers.base import adam
from kgan.training.trainers.pretrain import GeneratorPretrainer


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--batch_size", type=int, default=8)
    parser.add_argument("--crop_size", type=int, default=64)
    parser.add_argument("--load_size", type=int, default=160,
                        help="shorter side of the training photos before cropping")
    parser.add_argument("--ngf", type=int, default=32)
    parser.add_argument("--num_downs", type=int, default=6)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--content_loss", default="l1_ssim", choices=["l1", "l1_ssim"])
    parser.add_argument("--snapshot_every", type=int, default=100)
    parser.add_argument("--render_factor", type=int, default=10,
                        help="render factor of the main table (16 x N px)")
    parser.add_argument("--factors", default="4,6,8,10,14,21,35",
                        help="render factors compared (and the auto sweep)")
    parser.add_argument("--eval_side", type=int, default=320,
                        help="held-out photos are resized so their longer side is this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_self_attention", action="store_true")
    parser.add_argument("--dropout", action="store_true", help="UNet dropout (off by default)")
    parser.add_argument("--train_photos", default=None,
                        help="comma-separated skimage names replacing the colour train split")
    parser.add_argument("--test_photos", default=None,
                        help="comma-separated skimage names replacing the colour test split")
    parser.add_argument("--output_json", default=None)
    return parser.parse_args()


def _resize_side(image, side):
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    out = tf.image.resize(image[np.newaxis].astype(np.float32), size, antialias=True)[0]
    return np.clip(np.round(out.numpy()), 0, 255).astype(np.uint8)


def main():
    args = parse_args()
    from kgan.data import (
        samples,  # an experimental split, set before any photo is loaded
    )
    if args.train_photos:
        samples.COLOR_TRAIN_PHOTOS = tuple(args.train_photos.split(","))
    if args.test_photos:
        samples.COLOR_TEST_PHOTOS = tuple(args.test_photos.split(","))
    keras.utils.set_random_seed(args.seed)
    truths = [_resize_side(p, args.eval_side) for p in sample_color_photos("test")]
    inputs = [color_metrics.gray_baseline(t) for t in truths]
    train_uv = color_metrics.mean_uv(sample_color_photos("train"))
    factors = [int(f) for f in args.factors.split(",")]

    dataset, info = colorization_dataset(phase="train", crop_size=args.crop_size,
                                         load_size=args.load_size, batch_size=args.batch_size,
                                         seed=args.seed)
    generator = colorization_generator(num_downs=args.num_downs, ngf=args.ngf, norm="batch",
                                       use_dropout=args.dropout, upsample="pixel_shuffle",
                                       self_attention=not args.no_self_attention,
                                       last_cross=True, init_type="kaiming")
    content_loss, name = losses.build_content_loss(args.content_loss)
    trainer = GeneratorPretrainer(generator, content_loss)
    trainer.compile(adam(args.lr, 0.9, 0.99))
    step = tf.function(trainer.train_step)
    print(f"data: {info.source}; model: {generator.count_params():,} parameters; loss {name}")

    translator = as_translator(generator)  # one traced function for every Colorizer below
    colorizer = Colorizer(translator, args.render_factor)
    snapshots, start = [], time.time()
    iterator = iter(dataset)
    for i in range(1, args.steps + 1):
        logs = step(next(iterator))
        if i % args.snapshot_every == 0 or i == args.steps:
            outputs = [colorizer.colorize(g) for g in inputs]
            score = score_outputs(outputs, truths)
            score["ciede2000"] = color_metrics.mean_metrics(outputs, truths)["ciede2000"]
            snapshots.append({"step": i, "loss": float(logs["content"]), **score,
                              "weights": generator.get_weights()})
            print(f"step {i}: loss {float(logs['content']):.4f}, held-out colour score "
                  f"{score['colour_score']:.2f}, dE2000 {score['ciede2000']:.2f}, PSNR {score['psnr']:.2f} dB "
                  f"({time.time() - start:.0f} s)")
    train_seconds = time.time() - start

    by_psnr = max(snapshots, key=lambda s: s["psnr"])
    by_colour = min(snapshots, key=lambda s: s["colour_score"])
    print(f"snapshot picked by PSNR: step {by_psnr['step']}; by colour score: step "
          f"{by_colour['step']}")
    generator.set_weights(snapshots[-1]["weights"])  # the tables below: the final weights

    report = {"args": vars(args), "train_seconds": train_seconds,
              "snapshots": [{k: v for k, v in s.items() if k != "weights"} for s in snapshots],
              "pick_by_psnr": by_psnr["step"], "pick_by_colour_score": by_colour["step"],
              "factors": {}, "fits": {}}
    for factor in factors:
        colorizer = Colorizer(translator, factor)
        outputs = [colorizer.colorize(g) for g in inputs]
        results = color_metrics.evaluate_colorization(outputs, truths, inputs, train_uv)
        report["factors"][factor] = results["model"]
        if factor == args.render_factor:
            print(f"\nHeld-out colour photos (longer side {args.eval_side} px), render factor "
                  f"{factor} ({16 * factor} px), after {args.steps} steps:")
            print(color_metrics.format_color_table(results))
            report["table"] = results
    for key, sweep in (("auto", factors), ("auto_default_sweep", AUTO_FACTORS)):
        auto = Colorizer(translator, "auto", auto_factors=sweep)
        outputs, chosen = [], []
        for g in inputs:
            outputs.append(auto.colorize(g))
            chosen.append(auto.last_render_factor)
        report[key] = {**color_metrics.mean_metrics(outputs, truths), "chosen": chosen,
                       "sweep": list(sweep)}
    colorizer = Colorizer(translator, PHOTO_RENDER_FACTOR)
    report["fixed_default"] = color_metrics.mean_metrics(
        [colorizer.colorize(g) for g in inputs], truths)
    for fit in ("stretch", "pad"):
        colorizer = Colorizer(translator, args.render_factor, fit=fit)
        outputs = [colorizer.colorize(g) for g in inputs]
        report["fits"][fit] = color_metrics.mean_metrics(outputs, truths)
    # The training photos: can the model colour what it has seen (is the recipe learning)?
    seen = [_resize_side(p, args.eval_side) for p in sample_color_photos("train")]
    colorizer = Colorizer(translator, args.render_factor)
    report["train_photos"] = color_metrics.evaluate_colorization(
        [colorizer.colorize(color_metrics.gray_baseline(t)) for t in seen], seen,
        train_uv=train_uv)
    print("\nTraining photos (seen in training), same render factor:")
    print(color_metrics.format_color_table(report["train_photos"]))

    print("\nrender factor  dE2000  colourful  score  (truth colourfulness "
          f"{report['table']['ground_truth']['colourfulness']:.2f})")
    for factor, row in report["factors"].items():
        print(f"{factor:>13}  {row['ciede2000']:6.2f}  {row['colourfulness']:9.2f}  "
              f"{row['colour_score']:5.2f}")
    for key in ("auto", "auto_default_sweep"):
        row = report[key]
        print(f"{'auto':>13}  {row['ciede2000']:6.2f}  {row['colourfulness']:9.2f}  "
              f"{row['colour_score']:5.2f}  (sweep {row['sweep']}, chose {row['chosen']})")
    row = report["fixed_default"]
    print(f"fixed default {PHOTO_RENDER_FACTOR}: dE2000 {row['ciede2000']:.2f}, score "
          f"{row['colour_score']:.2f}")
    for fit, row in report["fits"].items():
        print(f"fit={fit:<8} (factor {args.render_factor}): dE2000 {row['ciede2000']:.2f}, "
              f"score {row['colour_score']:.2f}")
    print(f"training: {args.steps} steps in {train_seconds:.0f} s")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2, default=float)


if __name__ == "__main__":
    main()
