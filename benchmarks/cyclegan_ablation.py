"""The CycleGAN paper's loss ablation (Zhu et al. 2017, Table 4 / Figure 7) on kgan's offline
sample task, plus kgan's ``--residual`` generator option.

The sample task maps photos to the same photos under a fixed, known colour transform
(``kgan.data.sample_mapping``), shuffled so the pairs are not aligned. Because the mapping is
known, every variant can be scored exactly on the held-out photos:

- ``psnr_AtoB`` / ``psnr_BtoA``: PSNR (dB) of G_A(a) against sample_mapping(a), and of G_B(b)
  against a, where b = sample_mapping(a);
- ``cycle_A`` / ``cycle_B``: mean |G_B(G_A(a)) - a| and |G_A(G_B(b)) - b| in [0, 1] units;
- ``diversity_AtoB`` / ``diversity_BtoA``: mean pairwise L1 distance between the outputs for
  different held-out inputs, divided by the same distance between the correct outputs. 1 means
  the outputs differ as much as they should; near 0 means mode collapse (one output for every
  input). A variant is flagged ``collapsed`` when the ratio is below ``COLLAPSE_RATIO``.

Each variant trains through kgan's own trainer (``build_cyclegan`` + ``fit`` with kgan's
TensorBoard callback), writes a run folder (``logs/``, ``generators/AtoB.keras`` and
``BtoA.keras``, ``metrics.json``, ``report.html``), and the script writes one comparison page
of all runs (``OUTPUT_DIR/comparison.html``) and prints the table. A variant whose run folder
already holds its generators is not trained again (delete the folder to retrain).

``configs/ablation_<variant>.cfg`` are the same variants as ``kgan.train`` flagfiles.

Run (about 15 minutes on 2 busy CPU cores)::

    python benchmarks/cyclegan_ablation.py --output_dir=runs/ablation
    python benchmarks/cyclegan_ablation.py --output_dir=runs/ablation --variants=full,gan_only
"""

import argparse
import json
import os
import sys
import time

import numpy as np

# Variant -> trainer options. The paper's ablation has no identity loss (lambda_identity 0).
VARIANTS = {
    "gan_only": dict(lambda_gan=1.0, lambda_a=0.0, lambda_b=0.0),
    "cycle_only": dict(lambda_gan=0.0, lambda_a=10.0, lambda_b=10.0),
    "gan_forward": dict(lambda_gan=1.0, lambda_a=10.0, lambda_b=0.0),
    "gan_backward": dict(lambda_gan=1.0, lambda_a=0.0, lambda_b=10.0),
    "full": dict(lambda_gan=1.0, lambda_a=10.0, lambda_b=10.0),
    "full_residual": dict(lambda_gan=1.0, lambda_a=10.0, lambda_b=10.0, residual=True),
}
LABELS = {
    "gan_only": "GAN alone",
    "cycle_only": "Cycle alone",
    "gan_forward": "GAN + forward cycle",
    "gan_backward": "GAN + backward cycle",
    "full": "CycleGAN (GAN + both cycles)",
    "full_residual": "CycleGAN + --residual",
}
COLLAPSE_RATIO = 0.3


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", default="runs/ablation")
    parser.add_argument("--variants", default=",".join(VARIANTS),
                        help="Comma-separated subset of " + ", ".join(VARIANTS))
    parser.add_argument("--generator", default="resnet_6blocks")
    parser.add_argument("--ngf", type=int, default=16)
    parser.add_argument("--ndf", type=int, default=16)
    parser.add_argument("--load_size", type=int, default=72)
    parser.add_argument("--crop_size", type=int, default=64)
    parser.add_argument("--steps_per_epoch", type=int, default=100)
    parser.add_argument("--epochs", type=int, default=6, help="Epochs at the constant lr.")
    parser.add_argument("--epochs_decay", type=int, default=6, help="Epochs of linear decay.")
    parser.add_argument("--print_freq", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no_report", action="store_true", help="Train and score only.")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- held-out data


def _resize(image, height, width):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def heldout_inputs(size):
    """The held-out domain-A inputs scored for every variant: each held-out photo resized to
    ``size``² (the training scale) and the four quadrants of it resized to ``2 * size``², so
    10 different inputs. Returns float32 (10, size, size, 3) in [-1, 1]."""
    from kgan.data import sample_photos

    images = []
    for photo in sample_photos("test"):
        images.append(_resize(photo, size, size))
        big = _resize(photo, 2 * size, 2 * size)
        images += [big[y:y + size, x:x + size] for y in (0, size) for x in (0, size)]
    return np.stack(images).astype(np.float32) / 127.5 - 1.0


def _mean_pairwise_l1(images):
    flat = images.reshape(len(images), -1)
    distances = [np.abs(flat[i] - flat[j]).mean() for i in range(len(flat))
                 for j in range(i + 1, len(flat))]
    return float(np.mean(distances))


def score(generator_ab, generator_ba, real_a):
    """The ablation's held-out figures (see the module docstring) for one trained pair."""
    import tensorflow as tf

    from kgan.data import sample_mapping
    from kgan.evaluation.evaluate import run_generator
    from kgan.metrics import image as metrics

    real_b = sample_mapping(real_a)
    fake_b = run_generator(generator_ab, real_a).numpy()
    fake_a = run_generator(generator_ba, real_b).numpy()
    rec_a = run_generator(generator_ba, fake_b).numpy()
    rec_b = run_generator(generator_ab, fake_a).numpy()
    psnr = lambda x, y: float(tf.reduce_mean(metrics.psnr(x, y)))
    return {
        "psnr_AtoB": psnr(fake_b, real_b),
        "psnr_BtoA": psnr(fake_a, real_a),
        "cycle_A": float(np.abs(rec_a - real_a).mean() / 2.0),
        "cycle_B": float(np.abs(rec_b - real_b).mean() / 2.0),
        "diversity_AtoB": _mean_pairwise_l1(fake_b) / _mean_pairwise_l1(real_b),
        "diversity_BtoA": _mean_pairwise_l1(fake_a) / _mean_pairwise_l1(real_a),
    }


def identity_baseline(real_a):
    """The figures of G_A = G_B = identity (the input unchanged), for scale."""
    from kgan.data import sample_mapping
    from kgan.metrics import image as metrics

    real_b = sample_mapping(real_a)
    ratio = _mean_pairwise_l1(real_a) / _mean_pairwise_l1(real_b)
    return {"psnr_AtoB": float(np.mean(metrics.psnr(real_a, real_b))),
            "psnr_BtoA": float(np.mean(metrics.psnr(real_b, real_a))),
            "cycle_A": 0.0, "cycle_B": 0.0, "diversity_AtoB": ratio,
            "diversity_BtoA": 1.0 / ratio}


# ----------------------------------------------------------------------------- training


def train_variant(name, options, args, run_dir):
    """Trains one variant into ``run_dir`` (logs, generators); returns (G_A, G_B, seconds)."""
    import keras

    from kgan.data import unpaired_dataset
    from kgan.training import callbacks as kcallbacks
    from kgan.training.trainers.cyclegan import build_cyclegan

    keras.utils.set_random_seed(args.seed)
    dataset, _ = unpaired_dataset(load_size=args.load_size, crop_size=args.crop_size,
                                  batch_size=1, seed=args.seed)
    trainer = build_cyclegan(generator=args.generator, ngf=args.ngf, ndf=args.ndf,
                             lambda_identity=0.0, epochs=args.epochs,
                             epochs_decay=args.epochs_decay,
                             steps_per_epoch=args.steps_per_epoch, crop_size=args.crop_size,
                             **options)
    sample = [t[:1] for t in next(iter(dataset.take(1)))]
    steps = (args.epochs + args.epochs_decay) * args.steps_per_epoch
    logger = kcallbacks.TensorBoardLogger(os.path.join(run_dir, "logs"), 1, args.print_freq,
                                          steps, sample)
    start = time.time()
    trainer.fit(dataset, epochs=args.epochs + args.epochs_decay,
                steps_per_epoch=args.steps_per_epoch, verbose=0,
                callbacks=[kcallbacks.NaNGuard(), logger])
    seconds = time.time() - start
    folder = os.path.join(run_dir, "generators")
    os.makedirs(folder, exist_ok=True)
    for direction, model in trainer.generators().items():
        model.save(os.path.join(folder, direction + ".keras"))
    print(f"{name}: {steps} steps in {seconds:.0f} s", flush=True)
    return trainer.generator_ab, trainer.generator_ba, seconds


def load_variant(run_dir):
    from kgan.serving.runs import load_generator

    folder = os.path.join(run_dir, "generators")
    return (load_generator(os.path.join(folder, "AtoB.keras")),
            load_generator(os.path.join(folder, "BtoA.keras")))


# ----------------------------------------------------------------------------- reports


def report_examples(generator_ab, generator_ba):
    """Full-size held-out photos for the pages: A -> B and B -> A, with the known target."""
    from kgan.data import TEST_PHOTOS, sample_mapping, sample_photos
    from kgan.evaluation.evaluate import run_generator

    def u8(x):
        return np.clip(np.round((np.asarray(x) + 1.0) * 127.5), 0, 255).astype(np.uint8)

    examples = []
    for name, photo in zip(TEST_PHOTOS, sample_photos("test")):
        a = photo[None].astype(np.float32) / 127.5 - 1.0
        b = sample_mapping(a)
        examples.append((f"{name} A→B", photo, u8(run_generator(generator_ab, a)[0]),
                         u8(b[0])))
        examples.append((f"{name} B→A", u8(b[0]), u8(run_generator(generator_ba, b)[0]),
                         photo))
    return examples


def format_table(rows):
    """The markdown table of ``{variant: figures}`` (README-ready)."""
    lines = ["| variant | λ_GAN | λ_A | λ_B | PSNR A→B (dB) | PSNR B→A (dB) | cycle A | cycle B "
             "| diversity A→B | diversity B→A | collapsed |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        options = VARIANTS.get(name, {})
        weights = [f"{options[k]:g}" if k in options else "–"
                   for k in ("lambda_gan", "lambda_a", "lambda_b")]
        collapsed = r["diversity_AtoB"] < COLLAPSE_RATIO or r["diversity_BtoA"] < COLLAPSE_RATIO
        label = LABELS.get(name, name)
        lines.append(f"| {label} | " + " | ".join(weights) +
                     f" | {r['psnr_AtoB']:.2f} | {r['psnr_BtoA']:.2f} | {r['cycle_A']:.4f} | "
                     f"{r['cycle_B']:.4f} | {r['diversity_AtoB']:.2f} | "
                     f"{r['diversity_BtoA']:.2f} | {'yes' if collapsed else 'no'} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    names = [n.strip() for n in args.variants.split(",") if n.strip()]
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        sys.exit(f"Unknown variant(s) {unknown}; use any of {', '.join(VARIANTS)}.")
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    real_a = heldout_inputs(args.load_size)
    rows = {"identity (input unchanged)": identity_baseline(real_a)}
    runs = []
    for name in names:
        run_dir = os.path.join(args.output_dir, name)
        if os.path.isfile(os.path.join(run_dir, "generators", "BtoA.keras")):
            generator_ab, generator_ba = load_variant(run_dir)
            seconds = None
            print(f"{name}: already trained in {run_dir}", flush=True)
        else:
            generator_ab, generator_ba, seconds = train_variant(name, VARIANTS[name], args,
                                                                run_dir)
        figures = score(generator_ab, generator_ba, real_a)
        figures["train_seconds"] = seconds
        rows[name] = figures
        with open(os.path.join(run_dir, "metrics.json"), "w") as f:
            json.dump({"variant": name, "options": VARIANTS[name], "figures": figures,
                       "settings": vars(args)}, f, indent=2)
        if not args.no_report:
            from kgan.evaluation import report

            examples = report_examples(generator_ab, generator_ba)
            shown = {k: v for k, v in figures.items() if k != "train_seconds"}
            report.write_run_report(run_dir, examples, {"held-out (ablation)": shown},
                                    title=f"CycleGAN ablation: {LABELS[name]}")
            runs.append(report.RunSummary(LABELS[name], run_dir, examples,
                                          {"held-out (ablation)": shown}))
    if runs:
        from kgan.evaluation import report

        path = report.write_comparison_report(os.path.join(args.output_dir, "comparison.html"),
                                              runs, title="CycleGAN loss ablation "
                                              "(offline sample task)")
        print(f"comparison page: {path}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
