"""Peer quality: kgan against the PyTorch reference (junyanz/pytorch-CycleGAN-and-pix2pix),
trained on the same image folders with the same settings and steps, scored on held-out photos.

Tasks (both built from scikit-image's photos, ``kgan.data.samples``, nothing downloaded):

- ``cyclegan``: A = tiles of the six training photos (each photo whole and its four quadrants,
  30 images), B = the same tiles under ``kgan.data.sample_mapping`` (a hidden colour mapping:
  channel permutation + gammas), unpaired. Held out: the two test photos at ``load_size``² and
  the quadrants of them at twice that (10 inputs); scored are PSNR / SSIM of G_A(a) against
  sample_mapping(a) (A→B, the headline) and of G_B(b) against a (B→A).
- ``pix2pix``: colourisation, A|B side-by-side images (A = grey, B = colour) of tiles of the
  four natural colour training photos (20 pairs); held out: the two colour test photos, at
  ``crop_size``² and quadrants of twice that; PSNR, SSIM and mean CIEDE2000 (ΔE00) of the
  colourised output against the photo.

Each run trains in its own process, kgan and the reference alternating seed by seed (so both
see the same machine load): kgan through ``build_cyclegan`` / the pix2pix recipe's parts and
``fit``, the reference through ``peer_quality_torch.py`` (the reference's networks,
``optimize_parameters``, data transforms, Adam and linear schedule rebuilt in PyTorch; see
its docstring). A run whose outputs exist in ``--output_dir`` is not trained again. Each
implementation scores with its own default inference (kgan: ``training=False``; the
reference: ``test.py`` without ``--eval``, i.e. train-mode BatchNorm/dropout for pix2pix).

Run (CycleGAN: 3–16 min per run on 2 shared cores, one thread each, two at a time, so 20–50
min for 3 seeds of both; docs/results.md has the table)::

    python benchmarks/peer_quality.py --task=cyclegan --threads=1 --jobs=2 \
        --output_dir=runs/peer_quality
    python benchmarks/peer_quality.py --task=pix2pix --threads=1 --jobs=2 \
        --output_dir=runs/peer_quality

On a small CPU, ``--threads=1`` matters: two 2-thread processes on 2 busy cores ran the
reference's step 5x slower than one thread each.

Ablation flags (to find what separates the two): ``--kgan_adam_eps=keras`` gives kgan back
Keras' epsilon form (1e-7 added before Adam's bias correction; kgan's default is now torch's,
1e-8 after it); ``--reference_adam_eps=keras`` / ``--reference_b_draw=pass`` give the reference
kgan's old epsilon / a shuffled pass of B per epoch instead of a random B per step. Variant runs
get their own folder names.
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

TASKS = {
    # generator, ngf, ndf, load_size, crop_size, n_epochs, n_epochs_decay (epoch = one pass)
    "cyclegan": {"generator": "resnet_6blocks", "ngf": 16, "ndf": 16, "load_size": 72,
                 "crop_size": 64, "n_epochs": 20, "n_epochs_decay": 20},
    "pix2pix": {"generator": "unet_128", "ngf": 32, "ndf": 32, "load_size": 143,
                "crop_size": 128, "n_epochs": 15, "n_epochs_decay": 15},
}


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--task", choices=list(TASKS), default="cyclegan")
    parser.add_argument("--output_dir", default="runs/peer_quality")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--impls", default="kgan,reference")
    parser.add_argument("--jobs", type=int, default=1, help="Training processes at once.")
    parser.add_argument("--threads", type=int, default=0,
                        help="Threads per training process (0: the library's default).")
    parser.add_argument("--n_epochs", type=int, default=None)
    parser.add_argument("--n_epochs_decay", type=int, default=None)
    parser.add_argument("--kgan_adam_eps", choices=["torch", "keras"], default="torch")
    parser.add_argument("--reference_adam_eps", choices=["torch", "keras"], default="torch")
    parser.add_argument("--reference_b_draw", choices=["random", "pass"], default="random")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--output", default="", help=argparse.SUPPRESS)
    parser.add_argument("--data_dir", default="", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def settings(args):
    task = dict(TASKS[args.task])
    for key in ("n_epochs", "n_epochs_decay"):
        if getattr(args, key) is not None:
            task[key] = getattr(args, key)
    return task


# ----------------------------------------------------------------------------- data


def _resize(image, height, width):
    from PIL import Image

    return np.asarray(Image.fromarray(image).resize((width, height), Image.BICUBIC))


def _tiles(photo):
    """The photo whole and its four quadrants."""
    h, w = photo.shape[:2]
    return [photo] + [photo[y:y + h // 2, x:x + w // 2] for y in (0, h // 2) for x in (0, w // 2)]


def _grey(photo):
    """Rec. 601 luma as three equal channels (uint8)."""
    luma = photo.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])
    return np.repeat(np.clip(np.round(luma), 0, 255).astype(np.uint8)[..., None], 3, -1)


def _heldout(photos, size):
    images = []
    for photo in photos:
        images.append(_resize(photo, size, size))
        big = _resize(photo, 2 * size, 2 * size)
        images += [big[y:y + size, x:x + size] for y in (0, size) for x in (0, size)]
    return np.stack(images)


def build_data(task, data_dir, options):
    """Writes the task's training folders and ``heldout.npz`` (float32 in [-1, 1]) once."""
    if os.path.isfile(os.path.join(data_dir, "heldout.npz")):
        return
    from PIL import Image

    from kgan.data import sample_mapping, samples

    to_float = lambda x: x.astype(np.float32) / 127.5 - 1.0
    to_u8 = lambda x: np.clip(np.round((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
    if task == "cyclegan":
        tiles = [t for p in samples.sample_photos("train") for t in _tiles(p)]
        for side in "AB":
            os.makedirs(os.path.join(data_dir, "train" + side), exist_ok=True)
        for i, tile in enumerate(tiles):
            Image.fromarray(tile).save(os.path.join(data_dir, "trainA", f"{i:03d}.png"))
            mapped = to_u8(sample_mapping(to_float(tile)))
            Image.fromarray(mapped).save(os.path.join(data_dir, "trainB", f"{i:03d}.png"))
        held_a = to_float(_heldout(samples.sample_photos("test"), options["load_size"]))
        np.savez(os.path.join(data_dir, "heldout.npz"), A=held_a, B=sample_mapping(held_a))
    else:
        tiles = [t for p in samples.sample_color_photos("train") for t in _tiles(p)]
        os.makedirs(os.path.join(data_dir, "train"), exist_ok=True)
        for i, tile in enumerate(tiles):
            pair = np.concatenate([_grey(tile), tile], axis=1)
            Image.fromarray(pair).save(os.path.join(data_dir, "train", f"{i:03d}.png"))
        held = _heldout(samples.sample_color_photos("test"), options["crop_size"])
        np.savez(os.path.join(data_dir, "heldout.npz"),
                 A=to_float(np.stack([_grey(h) for h in held])), target=to_float(held))


# ----------------------------------------------------------------------------- kgan worker


def _keras_epsilon_adam():
    """Restores the old fused update (Keras' epsilon form) for the ablation."""
    import tensorflow as tf

    from kgan.training.trainers import base

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        step = tf.cast(self.iterations + 1, tf.float32)
        b1, b2 = tf.cast(self.beta_1, tf.float32), tf.cast(self.beta_2, tf.float32)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=self._momentums[index].value.handle,
            v=self._velocities[index].value.handle, beta1_power=tf.pow(b1, step),
            beta2_power=tf.pow(b2, step), lr=tf.cast(learning_rate, tf.float32), beta1=b1,
            beta2=b2, epsilon=tf.constant(1e-7, tf.float32), grad=tf.cast(gradient, tf.float32),
            use_locking=False, use_nesterov=False)

    base.Adam.update_step = update_step


def kgan_worker(args):
    if args.threads:
        os.environ["TF_NUM_INTRAOP_THREADS"] = str(args.threads)
        os.environ["TF_NUM_INTEROP_THREADS"] = "1"
    import keras
    import tensorflow as tf

    tf.get_logger().setLevel("ERROR")
    if args.kgan_adam_eps == "keras":
        _keras_epsilon_adam()
    from kgan.evaluation.evaluate import run_generator

    options = settings(args)
    epochs = options["n_epochs"] + options["n_epochs_decay"]
    keras.utils.set_random_seed(args.seed)
    common = {"dataroot": args.data_dir, "load_size": options["load_size"],
              "crop_size": options["crop_size"], "batch_size": 1, "seed": args.seed}
    if args.task == "cyclegan":
        from kgan.data import unpaired_dataset
        from kgan.training.trainers.cyclegan import build_cyclegan

        dataset, info = unpaired_dataset(**common)
        trainer = build_cyclegan(generator=options["generator"], ngf=options["ngf"],
                                 ndf=options["ndf"], epochs=options["n_epochs"],
                                 epochs_decay=options["n_epochs_decay"],
                                 steps_per_epoch=info.steps_per_epoch,
                                 crop_size=options["crop_size"])
    else:
        from kgan.data import paired_dataset
        from kgan.models import build_discriminator, build_generator
        from kgan.training.schedules import LinearDecay
        from kgan.training.trainers.base import adam
        from kgan.training.trainers.pix2pix import Pix2Pix

        dataset, info = paired_dataset(**common)
        generator = build_generator(options["generator"], ngf=options["ngf"], norm="batch",
                                    use_dropout=True)
        discriminator = build_discriminator("basic", 6, options["ndf"], 3, "batch")
        trainer = Pix2Pix(generator, discriminator)
        schedule = lambda: LinearDecay(2e-4, options["n_epochs"], options["n_epochs_decay"],
                                       info.steps_per_epoch)
        trainer.compile(g_optimizer=adam(schedule()), d_optimizer=adam(schedule()))
    start = time.time()
    trainer.fit(dataset, epochs=epochs, steps_per_epoch=info.steps_per_epoch, verbose=0)
    seconds = time.time() - start
    held = np.load(os.path.join(args.data_dir, "heldout.npz"))
    if args.task == "cyclegan":
        arrays = {"AtoB": run_generator(trainer.generator_ab, held["A"]).numpy(),
                  "BtoA": run_generator(trainer.generator_ba, held["B"]).numpy()}
    else:
        arrays = {"AtoB": run_generator(trainer.generator, held["A"]).numpy()}
    np.savez(args.output, **arrays)
    with open(os.path.splitext(args.output)[0] + ".json", "w") as f:
        json.dump({"steps": epochs * info.steps_per_epoch, "seconds": seconds,
                   "tensorflow": tf.__version__, "settings": vars(args)}, f, indent=2)
    print(f"kgan {args.task} seed {args.seed}: {epochs * info.steps_per_epoch} steps in "
          f"{seconds:.0f} s", flush=True)


# ----------------------------------------------------------------------------- scoring


def score(task, held, outputs):
    """Mean held-out figures of one run."""
    from skimage.color import deltaE_ciede2000, rgb2lab
    from skimage.metrics import structural_similarity

    unit = lambda x: np.clip((np.asarray(x, np.float64) + 1.0) / 2.0, 0.0, 1.0)

    def psnr(x, y):
        mse = np.mean((unit(x) - unit(y)) ** 2, axis=(1, 2, 3))
        return float(np.mean(10.0 * np.log10(1.0 / np.maximum(mse, 1e-12))))

    def ssim(x, y):
        return float(np.mean([structural_similarity(unit(a), unit(b), channel_axis=-1,
                                                    data_range=1.0)
                              for a, b in zip(x, y)]))

    if task == "cyclegan":
        return {"psnr_AtoB": psnr(outputs["AtoB"], held["B"]),
                "ssim_AtoB": ssim(outputs["AtoB"], held["B"]),
                "psnr_BtoA": psnr(outputs["BtoA"], held["A"]),
                "ssim_BtoA": ssim(outputs["BtoA"], held["A"])}
    out, target = outputs["AtoB"], held["target"]
    delta = np.mean([deltaE_ciede2000(rgb2lab(unit(a)), rgb2lab(unit(b))).mean()
                     for a, b in zip(out, target)])
    return {"psnr": psnr(out, target), "ssim": ssim(out, target), "delta_e00": float(delta)}


# ----------------------------------------------------------------------------- driver


def run_name(impl, seed, args):
    tags = []
    if impl == "kgan" and args.kgan_adam_eps != "torch":
        tags.append("eps_" + args.kgan_adam_eps)
    if impl == "reference":
        if args.reference_adam_eps != "torch":
            tags.append("eps_" + args.reference_adam_eps)
        if args.reference_b_draw != "random":
            tags.append("b_" + args.reference_b_draw)
    return "_".join([impl] + tags + [f"seed{seed}"])


def command(impl, seed, args, data_dir, output):
    options = settings(args)
    if impl == "kgan":
        cmd = [sys.executable, os.path.abspath(__file__), "--worker", f"--task={args.task}",
               f"--seed={seed}", f"--data_dir={data_dir}", f"--output={output}",
               f"--threads={args.threads}", f"--kgan_adam_eps={args.kgan_adam_eps}",
               f"--n_epochs={options['n_epochs']}",
               f"--n_epochs_decay={options['n_epochs_decay']}"]
    else:
        cmd = [sys.executable, os.path.join(HERE, "peer_quality_torch.py"), f"--task={args.task}",
               f"--seed={seed}", f"--data_dir={data_dir}", f"--output={output}",
               f"--threads={args.threads}", f"--adam_eps={args.reference_adam_eps}",
               f"--b_draw={args.reference_b_draw}"]
        cmd += [f"--{k}={options[k]}" for k in ("ngf", "ndf", "load_size", "crop_size",
                                                 "n_epochs", "n_epochs_decay")]
        if args.task == "pix2pix":
            cmd.append(f"--num_downs={int(np.log2(int(options['generator'].split('_')[1])))}")
        else:
            cmd.append(f"--n_blocks={int(options['generator'].split('_')[1][0])}")
    return cmd


def format_table(task, rows):
    keys = (["psnr_AtoB", "ssim_AtoB", "psnr_BtoA", "ssim_BtoA"] if task == "cyclegan"
            else ["psnr", "ssim", "delta_e00"])
    lines = ["| run | seeds | " + " | ".join(keys) + " | s/step |",
             "|---" * (len(keys) + 3) + "|"]
    for name, runs in rows.items():
        cells = []
        for key in keys:
            values = [r[key] for r in runs]
            cells.append(f"{np.mean(values):.3f} (" + ", ".join(f"{v:.2f}" for v in values) + ")")
        per_step = np.mean([r["seconds"] / r["steps"] for r in runs])
        lines.append(f"| {name} | {len(runs)} | " + " | ".join(cells) + f" | {per_step:.3f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.worker:
        return kgan_worker(args)
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    data_dir = os.path.abspath(os.path.join(args.output_dir, args.task, "data"))
    build_data(args.task, data_dir, settings(args))
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    pending = [(impl, seed) for seed in seeds for impl in impls]
    running = []
    while pending or running:
        while pending and len(running) < max(1, args.jobs):
            impl, seed = pending.pop(0)
            output = os.path.join(args.output_dir, args.task, run_name(impl, seed, args) + ".npz")
            if os.path.isfile(output):
                continue
            running.append(subprocess.Popen(command(impl, seed, args, data_dir,
                                                    os.path.abspath(output)), env=env))
        for process in list(running):
            if process.poll() is not None:
                running.remove(process)
                if process.returncode:
                    sys.exit(f"A training process failed: {' '.join(process.args)}")
        time.sleep(1)
    held = dict(np.load(os.path.join(data_dir, "heldout.npz")))
    rows = {}
    for impl in impls:
        for seed in seeds:
            name = run_name(impl, seed, args)
            output = os.path.join(args.output_dir, args.task, name + ".npz")
            with open(os.path.splitext(output)[0] + ".json") as f:
                info = json.load(f)
            figures = {**score(args.task, held, dict(np.load(output))),
                       "steps": info["steps"], "seconds": info["seconds"]}
            rows.setdefault(name.rsplit("_seed", 1)[0], []).append(figures)
    with open(os.path.join(args.output_dir, args.task, "table.json"), "w") as f:
        json.dump(rows, f, indent=2)
    print(format_table(args.task, rows))


if __name__ == "__main__":
    main()
