"""Training quality in bfloat16: the colourisation quickstart trained in float32 and in
mixed_bfloat16 with the same seed, both scored on the held-out colour photos.

For each seed and precision this runs ``configs/colorize_quickstart.cfg`` with ``--seed=S
--mixed_precision=P`` (no export) and scores the generator after pretrain_g and at the GAN
phase's colour-score pick (``colorize_gan_seeds.py``'s runner and scorer), then prints each
seed's rows, the bf16 − fp32 differences and their mean over seeds. A run whose folder already
holds its weights is not trained again.

Not a test (about 2–4 minutes per run on 2 CPU cores). Example (the figures in
docs/speed.md)::

    PYTHONPATH=. python benchmarks/colorize_bf16_quality.py --seeds=0,1,2 \
        --output_dir=runs/bf16_quality
"""

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from colorize_gan_seeds import METRICS, train  # noqa: E402  (this folder)

PRECISIONS = ("float32", "mixed_bfloat16")
ROWS = (("after pretrain_g", "pretrain_g", "generator"),
        ("GAN phase, colour-score pick", "gan", "generator_best"))


def score_run(run, truths, train_uv, render_factor=16):
    from colorize_phases import score

    from kgan.colorization.colorizer import Colorizer, as_translator
    from kgan.serving.runs import load_generator

    from kgan.serving.precision import with_precision

    # float32 (a copy for a bf16-trained run) so that the weights loaded below are the ones
    # the translator runs (KerasTranslator would convert a bf16 model once, before the loads).
    generator = with_precision(load_generator(
        os.path.join(run, "generators", "generator.keras")), "float32")
    translator = as_translator(generator)
    scores = {}
    for label, phase, name in ROWS:
        generator.load_weights(os.path.join(run, phase, name + ".weights.h5"))
        metrics, _ = score(Colorizer(translator, render_factor), truths, train_uv)
        scores[label] = {key: float(metrics[key]) for key in METRICS}
    return scores


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--output_dir", default="runs/bf16_quality")
    parser.add_argument("--output_json", default=None)
    args = parser.parse_args(argv)
    from kgan.colorization.scoring import load_color_photos
    from kgan.data.samples import sample_color_photos
    from kgan.metrics import color as color_metrics

    truths = load_color_photos(None)
    train_uv = color_metrics.mean_uv(sample_color_photos("train"))
    results = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        for precision in PRECISIONS:
            run = os.path.join(args.output_dir, f"seed{seed}_{precision}")
            if not os.path.exists(os.path.join(run, "gan", "generator_best.weights.h5")):
                train(f"--seed={seed}", f"--output_dir={run}",
                      f"--mixed_precision={precision}")
            results[f"{seed}/{precision}"] = score_run(run, truths, train_uv)
            for label, *_ in ROWS:
                print(f"seed {seed} {precision:15s} {label:<30}" + " ".join(
                    f"{key}={results[f'{seed}/{precision}'][label][key]:.3f}"
                    for key in METRICS), flush=True)
    seeds = sorted({key.split("/")[0] for key in results})
    print(f"\nbf16 - fp32, mean over {len(seeds)} seeds (per seed in brackets)")
    for label, *_ in ROWS:
        cells = []
        for key in METRICS:
            deltas = [results[f"{s}/mixed_bfloat16"][label][key]
                      - results[f"{s}/float32"][label][key] for s in seeds]
            cells.append(f"{key} {np.mean(deltas):+.3f} [" +
                         ", ".join(f"{d:+.3f}" for d in deltas) + "]")
        print(f"  {label:<30} " + "; ".join(cells))
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
