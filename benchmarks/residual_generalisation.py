"""Does ``--residual`` generalise? kgan's residual CycleGAN against a plain Keras CycleGAN
whose generator outputs ``clip(input + correction, -1, 1)``, on an unpaired colour task,
scored on a photo neither saw (issue 24).

Task (scikit-image photos, ``kgan.data.samples``, nothing downloaded):

- domain A: 64² tiles of two training photos (astronaut, rocket); a fixed fifth of the tiles
  is held out ("unseen patches of the training photos");
- domain B: the same training tiles under a hidden mapping ``hidden_mapping`` (per-channel
  gamma, gain and offset: a gamma + tint, no channel permutation), drawn independently of A
  (unpaired);
- scored: the mean PSNR of G_A(a) against hidden_mapping(a) over the 64² tiles of a new
  photo (chelsea) and over the held-out tiles, minus the identity's (PSNR(a,
  hidden_mapping(a))): the gain in dB.

Both CycleGANs train on the same (a, b) stream with the same budget: resnet_6blocks, ngf/ndf
16, batch 1, LSGAN, cycle 10, identity 0.5, Adam(2e-4, beta_1=0.5) with the reference's
linear decay over the second half. kgan trains through ``build_cyclegan(residual=True)`` and
``fit``; the peer is ``peer_keras_io.py``'s keras-io CycleGAN (networks and ``train_step``,
no image pool, Keras' own Adam) with ngf/ndf 16, 6 blocks and the residual head of
``peer_keras_io.get_resnet_generator(residual=True)`` (a normal, Glorot-initialised final
conv with a bias, no tanh, ``clip(input + correction)``).

Implementations (``--impls``), for the ablation of what separates the two:

- ``kgan``: ``build_cyclegan(residual=True)`` as the library builds it (the final conv
  initialised to zero: the identity at step 0);
- ``kgan_glorot_out``: the same with the peer's final conv initialisation (Glorot uniform
  kernel, zero bias) put in after building, so not the identity at step 0;
- ``kgan_nopool``: kgan with ``pool_size=0`` (the peer has no image pool);
- ``peer``: the plain Keras CycleGAN above; ``peer_zero_out``: the same with kgan's zero
  final conv.

The task's figures are in docs/ablation.md (``--residual``). Run (3-5 min a run, 2 threads
on a 2-core AMD EPYC; 3 seeds of kgan and the peer about 20 min)::

    python benchmarks/residual_generalisation.py --impls=kgan,peer --seeds=0,1,2
    python benchmarks/residual_generalisation.py --impls=kgan_glorot_out,peer_zero_out

Each run appends one JSON line to ``--output`` (default
``runs/residual_generalisation.jsonl``); a run already in that file is not trained again, and
the table covers every run in it.
"""

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.dirname(HERE))

TRAIN_PHOTOS = ("astronaut", "rocket")
NEW_PHOTO = "chelsea"
TILE = 64
# hidden_mapping: in [0, 1], channel c -> clip(gain[c] * x ** gamma[c] + offset[c]), with
# the parameters moved towards the identity's (1, 1, 0) by --strength (1: these).
FULL_GAMMA = np.float32([1.3, 1.0, 0.75])
FULL_GAIN = np.float32([0.95, 0.9, 0.85])
FULL_OFFSET = np.float32([0.0, 0.06, 0.12])
GAMMA, GAIN, OFFSET = FULL_GAMMA, FULL_GAIN, FULL_OFFSET


def set_strength(strength):
    """Sets the hidden mapping's parameters: ``strength`` of the way from the identity."""
    global GAMMA, GAIN, OFFSET
    GAMMA = np.float32(1.0 + strength * (FULL_GAMMA - 1.0))
    GAIN = np.float32(1.0 + strength * (FULL_GAIN - 1.0))
    OFFSET = np.float32(strength * FULL_OFFSET)
IMPLS = ("kgan", "kgan_glorot_out", "kgan_nopool", "peer", "peer_zero_out")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--impls", default="kgan,peer", help="Comma-separated: " +
                        ", ".join(IMPLS))
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=1200,
                        help="Training steps (batch 1); the second half decays the lr.")
    parser.add_argument("--strength", type=float, default=0.5,
                        help="How far the hidden mapping is from the identity (0 to 1).")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default="runs/residual_generalisation.jsonl")
    parser.add_argument("--table_only", action="store_true")
    return parser.parse_args(argv)


# ----------------------------------------------------------------------------- data


def hidden_mapping(images):
    """The hidden gamma + tint (domain A -> B) on float [-1, 1] arrays."""
    unit = np.clip((np.asarray(images, np.float32) + 1.0) / 2.0, 0.0, 1.0)
    return (np.clip(GAIN * unit ** GAMMA + OFFSET, 0.0, 1.0) * 2.0 - 1.0).astype(np.float32)


def _tiles(photo):
    h, w = photo.shape[:2]
    return [photo[y:y + TILE, x:x + TILE] for y in range(0, h - TILE + 1, TILE)
            for x in range(0, w - TILE + 1, TILE)]


def build_data():
    """Returns (train_a, train_b, unseen_a, new_a) as float32 (N, 64, 64, 3) in [-1, 1]."""
    from kgan.data import samples

    tiles = np.stack([t for name in TRAIN_PHOTOS for t in _tiles(samples._load_photo(name))])
    order = np.random.RandomState(1234).permutation(len(tiles))  # fixed, whatever the seed
    n_unseen = len(tiles) // 5
    tiles = tiles.astype(np.float32) / 127.5 - 1.0
    unseen, train = tiles[order[:n_unseen]], tiles[order[n_unseen:]]
    new = np.stack(_tiles(samples._load_photo(NEW_PHOTO))).astype(np.float32) / 127.5 - 1.0
    return train, hidden_mapping(train), unseen, new


def pair_stream(train_a, train_b, steps, seed):
    """The (a, b) batches of one run: independent random draws (unpaired), random flips."""
    import tensorflow as tf

    rng = np.random.RandomState(seed)
    ia, ib = rng.randint(len(train_a), size=steps), rng.randint(len(train_b), size=steps)
    fa, fb = rng.randint(2, size=steps), rng.randint(2, size=steps)
    a = np.where(fa[:, None, None, None] == 1, train_a[ia, :, ::-1], train_a[ia])
    b = np.where(fb[:, None, None, None] == 1, train_b[ib, :, ::-1], train_b[ib])
    return tf.data.Dataset.from_tensor_slices((a, b)).batch(1, drop_remainder=True)


def gains(generator, unseen, new):
    """{"new_photo": dB, "unseen_patches": dB}: mean PSNR to the mapping minus identity's."""
    import tensorflow as tf

    out = {}
    for key, a in (("new_photo", new), ("unseen_patches", unseen)):
        target = hidden_mapping(a)
        fake = np.concatenate([np.asarray(generator(a[i:i + 32], training=False))
                               for i in range(0, len(a), 32)])
        psnr = lambda x: float(np.mean(tf.image.psnr(x, target, max_val=2.0)))  # noqa: E731
        out[key] = psnr(np.clip(fake, -1, 1)) - psnr(a)
        out[key + "_identity_db"] = psnr(a)
    return out


# ----------------------------------------------------------------------------- training


def _zero_out(generator, name):
    layer = generator.get_layer(name)
    layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])


def _glorot_out(generator, name):
    import keras

    layer = generator.get_layer(name)
    kernel, bias = layer.get_weights()
    kernel = keras.initializers.GlorotUniform()(kernel.shape).numpy()
    layer.set_weights([kernel, np.zeros_like(bias)])


def train_kgan(stream, steps, out_init, pool_size=50):
    from kgan.training.trainers.cyclegan import build_cyclegan

    half = steps // 2
    trainer = build_cyclegan(generator="resnet_6blocks", ngf=16, ndf=16, lambda_identity=0.5,
                             epochs=1, epochs_decay=1, steps_per_epoch=half, crop_size=TILE,
                             residual=True, pool_size=pool_size)
    if out_init == "glorot":
        for generator in (trainer.generator_ab, trainer.generator_ba):
            _glorot_out(generator, "out")
    trainer.fit(stream, epochs=2, steps_per_epoch=half, verbose=0)
    return trainer.generator_ab


def train_peer(stream, steps, zero_out):
    import keras
    import tensorflow as tf

    import peer_keras_io as peer
    from kgan.training.schedules import LinearDecay

    gens = [peer.get_resnet_generator(TILE, filters=16, num_residual_blocks=6, residual=True,
                                      name=n) for n in ("generator_G", "generator_F")]
    discs = [peer.get_discriminator(TILE, filters=16, name=n)
             for n in ("discriminator_X", "discriminator_Y")]
    if zero_out:
        for generator in gens:
            last_conv = [layer for layer in generator.layers
                         if isinstance(layer, keras.layers.Conv2D)][-1]
            _zero_out(generator, last_conv.name)
    model = peer.CycleGan(*gens, *discs)
    half = steps // 2
    adam = lambda: keras.optimizers.Adam(LinearDecay(2e-4, 1, 1, half), beta_1=0.5)  # noqa
    model.gen_G_optimizer, model.gen_F_optimizer = adam(), adam()
    model.disc_X_optimizer, model.disc_Y_optimizer = adam(), adam()
    model.build_optimizers()
    step = tf.function(model.train_step)
    for batch in stream:
        step(batch)
    return gens[0]


def run_one(impl, seed, args, data):
    import keras

    train_a, train_b, unseen, new = data
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    stream = pair_stream(train_a, train_b, args.steps, seed)
    start = time.time()
    if impl.startswith("kgan"):
        generator = train_kgan(stream, args.steps,
                               out_init="glorot" if impl == "kgan_glorot_out" else None,
                               pool_size=0 if impl == "kgan_nopool" else 50)
    else:
        generator = train_peer(stream, args.steps, zero_out=impl == "peer_zero_out")
    return {"impl": impl, "seed": seed, "steps": args.steps, "strength": args.strength,
            "seconds": round(time.time() - start, 1), **gains(generator, unseen, new)}


# ----------------------------------------------------------------------------- table


def format_table(rows):
    lines = ["| implementation | seed | steps | new photo (dB) | unseen patches (dB) |",
             "|---|---|---|---|---|"]
    for impl in IMPLS:
        for steps in sorted({r["steps"] for r in rows if r["impl"] == impl}):
            runs = sorted((r for r in rows if r["impl"] == impl and r["steps"] == steps),
                          key=lambda r: r["seed"])
            for r in runs:
                lines.append(f"| {impl} | {r['seed']} | {steps} | {r['new_photo']:+.2f} | "
                             f"{r['unseen_patches']:+.2f} |")
            if len(runs) > 1:
                new = np.array([r["new_photo"] for r in runs])
                unseen = np.array([r["unseen_patches"] for r in runs])
                lines.append(f"| **{impl}** | mean ± sd ({len(runs)}) | {steps} | "
                             f"**{new.mean():+.2f} ± {new.std(ddof=1):.2f}** | "
                             f"{unseen.mean():+.2f} ± {unseen.std(ddof=1):.2f} |")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    unknown = sorted(set(impls) - set(IMPLS))
    if unknown:
        sys.exit(f"Unknown implementation(s) {unknown}; use any of {', '.join(IMPLS)}.")
    rows = []
    if os.path.isfile(args.output):
        with open(args.output) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    set_strength(args.strength)
    rows = [r for r in rows if r.get("strength", 1.0) == args.strength]
    if not args.table_only:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(args.threads)
        tf.config.threading.set_inter_op_parallelism_threads(args.threads)
        tf.get_logger().setLevel("ERROR")
        data = build_data()
        print(f"{len(data[0])} training tiles, {len(data[2])} unseen, {len(data[3])} of "
              f"{NEW_PHOTO}", flush=True)
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        for seed in [int(s) for s in args.seeds.split(",")]:
            for impl in impls:
                done = [r for r in rows if (r["impl"], r["seed"], r["steps"]) ==
                        (impl, seed, args.steps)]
                if done:
                    continue
                row = run_one(impl, seed, args, data)
                print(json.dumps(row), flush=True)
                rows.append(row)
                with open(args.output, "a") as f:
                    f.write(json.dumps(row) + "\n")
    if rows:
        print(f"identity PSNR: new photo {rows[0]['new_photo_identity_db']:.2f} dB, unseen "
              f"patches {rows[0]['unseen_patches_identity_db']:.2f} dB")
    print(format_table(rows))


if __name__ == "__main__":
    main()
