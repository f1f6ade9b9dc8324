"""What the colourisation GAN phase does, over seeds: the quickstart run per seed, plus a
control that reruns the GAN phase on the same pretraining without the adversarial term.

For each seed this runs ``configs/colorize_quickstart.cfg`` with ``--seed=S`` (no export), then
copies its ``pretrain_g/`` and ``pretrain_d/`` into a control folder and reruns ``--phase=gan``
with ``--weights_gen=0,W`` (W: the config's content weight), so the control differs from the
run only by the critic's term. Each generator is scored on the held-out colour photos at the
recipe's render factor (``benchmarks/colorize_phases.py``'s ``score``): after pretrain_g, after
the GAN phase (last step and the colour-score pick), and the control's last step and pick.

Prints every seed's rows and the mean and standard deviation over seeds of each row's
saturation ratio (mean C* out / mean C* truth), CIEDE2000, colourfulness and colour score, and
the mean change the GAN phase makes against the control (with its seed spread). A run whose
folders already hold the weights is not trained again (delete the folder to retrain).

Not a test (about 2 minutes per seed on 2 quiet CPU cores). Example (the figures in
docs/colorization.md)::

    PYTHONPATH=. python benchmarks/colorize_gan_seeds.py --seeds=0,1,2,3,4 --output_dir=runs/gan_seeds
"""

import argparse
import json
import os
import shutil
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "configs", "colorize_quickstart.cfg")
METRICS = ("saturation_ratio", "ciede2000", "colourfulness", "colour_score", "psnr")
ROWS = (("after pretrain_g", "run", "pretrain_g", "generator"),
        ("GAN phase, last step", "run", "gan", "generator"),
        ("GAN phase, colour-score pick", "run", "gan", "generator_best"),
        ("control (no critic term), last", "control", "gan", "generator"),
        ("control, colour-score pick", "control", "gan", "generator_best"))


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--output_dir", default="runs/gan_seeds")
    parser.add_argument("--content_weight", type=float, default=None,
                        help="the control's content weight (default: the config's second "
                             "weights_gen value)")
    parser.add_argument("--extra_flags", default="",
                        help="more kgan.train flags for every run (space-separated)")
    parser.add_argument("--output_json", default=None)
    return parser.parse_args(argv)


def config_content_weight():
    for line in open(CONFIG, encoding="utf-8"):
        if line.startswith("--weights_gen="):
            return float(line.split("=", 1)[1].split(",")[1])
    raise ValueError(f"{CONFIG} sets no --weights_gen")


def train(*flags):
    command = [sys.executable, "-m", "kgan.train", f"--flagfile={CONFIG}", "--export_dir=",
               "--verbose=0", *flags]
    print("$", " ".join(command[1:]), flush=True)
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed:\n{result.stderr[-3000:]}")


def run_seed(seed, output_dir, content_weight, extra):
    run = os.path.join(output_dir, f"seed{seed}")
    control = os.path.join(output_dir, f"seed{seed}_control")
    if not os.path.exists(os.path.join(run, "gan", "generator.weights.h5")):
        train(f"--seed={seed}", f"--output_dir={run}", *extra)
    if not os.path.exists(os.path.join(control, "gan", "generator.weights.h5")):
        shutil.rmtree(control, ignore_errors=True)
        os.makedirs(control)
        for phase in ("pretrain_g", "pretrain_d"):
            shutil.copytree(os.path.join(run, phase), os.path.join(control, phase))
        train(f"--seed={seed}", f"--output_dir={control}", "--phase=gan",
              f"--weights_gen=0,{content_weight:g}", *extra)
    return {"run": run, "control": control}


def score_seed(folders, truths, train_uv, render_factor):
    from colorize_phases import score  # this folder, on sys.path when run as a script

    from kgan.colorization.colorizer import Colorizer, as_translator
    from kgan.serving.runs import load_generator

    from kgan.serving.precision import with_precision

    # float32 (a copy for a bf16-trained run) so that the weights loaded below are the ones
    # the translator runs (KerasTranslator would convert a bf16 model once, before the loads).
    generator = with_precision(load_generator(
        os.path.join(folders["run"], "generators", "generator.keras")), "float32")
    translator = as_translator(generator)
    scores = {}
    for label, which, phase, name in ROWS:
        generator.load_weights(os.path.join(folders[which], phase, name + ".weights.h5"))
        metrics, _ = score(Colorizer(translator, render_factor), truths, train_uv)
        scores[label] = {key: float(metrics[key]) for key in METRICS}
    return scores


def summary_lines(per_seed):
    """Mean ± standard deviation over seeds for each row, and the GAN phase's effect."""
    lines = [f"{'over ' + str(len(per_seed)) + ' seeds':<34}" + "".join(
        f"{key:>22}" for key in METRICS)]
    for label, *_ in ROWS:
        values = {key: [s[label][key] for s in per_seed.values()] for key in METRICS}
        lines.append(f"{label:<34}" + "".join(
            f"{np.mean(v):>13.3f} ± {np.std(v):<6.3f}" for v in values.values()))
    for run_row, control_row in ((ROWS[1][0], ROWS[3][0]), (ROWS[2][0], ROWS[4][0])):
        effect = {key: [s[run_row][key] - s[control_row][key] for s in per_seed.values()]
                  for key in METRICS}
        lines.append(f"{'critic effect: ' + run_row.split(', ')[1]:<34}" + "".join(
            f"{np.mean(v):>+13.3f} ± {np.std(v):<6.3f}" for v in effect.values()))
    return lines


def main(argv=None):
    args = parse_args(argv)
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from kgan.colorization.scoring import load_color_photos
    from kgan.data.samples import sample_color_photos
    from kgan.metrics import color as color_metrics

    content_weight = args.content_weight or config_content_weight()
    extra = args.extra_flags.split()
    truths = load_color_photos(None)
    train_uv = color_metrics.mean_uv(sample_color_photos("train"))
    per_seed = {}
    for seed in (int(s) for s in args.seeds.split(",")):
        folders = run_seed(seed, args.output_dir, content_weight, extra)
        per_seed[seed] = score_seed(folders, truths, train_uv, render_factor=16)
        print(f"seed {seed}:")
        for label, *_ in ROWS:
            print(f"  {label:<32}" + " ".join(
                f"{key}={per_seed[seed][label][key]:.3f}" for key in METRICS), flush=True)
    print("\n".join(summary_lines(per_seed)))
    if args.output_json:
        with open(args.output_json, "w", encoding="utf-8") as handle:
            json.dump(per_seed, handle, indent=2)


if __name__ == "__main__":
    main()
