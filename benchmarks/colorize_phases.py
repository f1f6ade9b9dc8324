"""What the GAN phase of a colourisation run changes, and how the render factor matters.

Loads the weights a ``--model=colorize`` run saved after each phase (``kgan.serving.runs``:
``RUN/pretrain_g/generator.weights.h5``, ``RUN/gan/generator.weights.h5`` = the last GAN step,
``RUN/gan/generator_best.weights.h5`` = the checkpoint the colour score picked) into the run's
own generator architecture (``RUN/generators/generator.keras``) and scores each on the held-out
colour photos (``kgan.colorization.scoring``; default the built-in ones) with the colour
metrics: mean CIEDE2000, colourfulness, saturation ratio, zombie share, colour score and PSNR.
Then, for the picked generator, compares fixed render factors with ``render_factor="auto"``.

Not a test (it takes about a minute). Example, after the quickstart (the figures in docs/colorization.md)::

    python -m kgan.train --flagfile=configs/colorize_quickstart.cfg
    PYTHONPATH=. python benchmarks/colorize_phases.py --run_dir=runs/colorize_quickstart
"""

import argparse
import json
import os

from kgan.colorization.colorizer import AUTO_FACTORS, Colorizer, as_translator
from kgan.colorization.scoring import _psnr, load_color_photos
from kgan.metrics import color as color_metrics
from kgan.serving.precision import with_precision

PHASE_WEIGHTS = (("after pretrain_g", "pretrain_g", "generator"),
                 ("after GAN, last step", "gan", "generator"),
                 ("after GAN, colour-score pick", "gan", "generator_best"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run_dir", default="runs/colorize_quickstart")
    parser.add_argument("--dataroot", default=None,
                        help="colour photos to score on (default: the built-in held-out ones)")
    parser.add_argument("--render_factor", type=int, default=16,
                        help="render factor of the phase comparison (the recipe's eval_size/16)")
    parser.add_argument("--factors", default="16,21,35",
                        help="fixed render factors compared with auto on the picked generator")
    parser.add_argument("--output_json", default=None)
    return parser.parse_args(argv)


def score(colorizer, truths, train_uv):
    """Colour metrics and PSNR of ``colorizer`` on ``truths``; also the chosen factors."""
    inputs = [color_metrics.gray_baseline(t) for t in truths]
    outputs, chosen = [], []
    for gray in inputs:
        outputs.append(colorizer.colorize(gray))
        chosen.append(colorizer.last_render_factor)
    results = color_metrics.evaluate_colorization(outputs, truths, inputs, train_uv)
    return {**results["model"], "psnr": _psnr(outputs, truths), "chosen": chosen}, results


def row(label, metrics):
    return (f"{label:<30} {metrics['ciede2000']:7.2f} {metrics['colourfulness']:9.2f} "
            f"{metrics['saturation_ratio']:9.3f} {100 * metrics['zombie_share']:7.1f} "
            f"{metrics['colour_score']:7.2f} {metrics['psnr']:7.2f}")


def main(argv=None):
    args = parse_args(argv)
    from kgan.data.samples import sample_color_photos
    from kgan.serving.runs import load_generator

    truths = load_color_photos(args.dataroot)
    train_uv = None if args.dataroot else color_metrics.mean_uv(sample_color_photos("train"))
    # A float32 generator (a copy for a bf16-trained run), so that the translator below runs
    # this very model and the weights loaded into it count (KerasTranslator would otherwise
    # convert a bf16 model once, before the loads).
    generator = with_precision(load_generator(
        os.path.join(args.run_dir, "generators", "generator.keras")), "float32")
    translator = as_translator(generator)  # one traced function for all the weights below
    header = (f"{'weights':<30} {'dE2000':>7} {'colourful':>9} {'sat ratio':>9} {'zombie%':>7} "
              f"{'score':>7} {'PSNR':>7}")
    report = {"render_factor": args.render_factor, "phases": {}, "factors": {}}
    print(f"Held-out colour photos ({len(truths)}), render factor {args.render_factor} "
          f"({16 * args.render_factor} px):")
    print(header)
    baselines = None
    for label, phase, name in PHASE_WEIGHTS:
        path = os.path.join(args.run_dir, phase, name + ".weights.h5")
        if not os.path.exists(path):
            print(f"{label:<30} (no {path})")
            continue
        generator.load_weights(path)
        metrics, baselines = score(Colorizer(translator, args.render_factor), truths, train_uv)
        report["phases"][label] = metrics
        print(row(label, metrics))
    for method in ("gray_input", "mean_chroma"):
        print(row(method, {**baselines[method], "psnr": float("nan")}))
    print(f"{'ground truth colourfulness':<30} {'':7} "
          f"{baselines['ground_truth']['colourfulness']:9.2f}")

    # The render factor, on the generator the recipe kept (its last weights loaded above).
    print(f"\nRender factor, {PHASE_WEIGHTS[-1][0]}:")
    print(header)
    factors = [int(f) for f in args.factors.split(",")]
    for factor in factors:
        metrics, _ = score(Colorizer(translator, factor), truths, train_uv)
        report["factors"][str(factor)] = metrics
        print(row(f"fixed {factor} ({16 * factor} px)", metrics))
    metrics, _ = score(Colorizer(translator, "auto"), truths, train_uv)
    report["factors"]["auto"] = metrics
    print(row(f"auto {list(AUTO_FACTORS)}", metrics) + f"  chose {metrics['chosen']}")
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=2)


if __name__ == "__main__":
    main()
