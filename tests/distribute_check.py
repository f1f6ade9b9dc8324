"""Runs one train step of a kgan trainer under several strategies/drivers and reports how far
the updated weights are from a one-device reference, as JSON on the last stdout line.

Run in a fresh process (the logical CPU devices must be configured before TensorFlow starts):

    python tests/distribute_check.py '{"trainers": ["cyclegan"], "runs": ["mirrored/loop"]}'

Every run starts from the reference's initial weights and sees the same global batch.
Optimizers are plain SGD so the weight update is proportional to the gradient: Adam's first
step is ~lr * sign(gradient) and would hide a wrong loss scale (e.g. dividing by the local
instead of the global batch).
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

tf.config.set_logical_device_configuration(
    tf.config.list_physical_devices("CPU")[0],
    [tf.config.LogicalDeviceConfiguration()] * 2)

import keras  # noqa: E402
from helpers import randomise_batch_norms  # noqa: E402

from kgan.models import (  # noqa: E402
    build_discriminator,
    build_generator,
    unet_generator,  # noqa: E402
)
from kgan.models import critic as build_critic  # noqa: E402
from kgan.training import distribute, losses  # noqa: E402
from kgan.training.trainers.base import adam  # noqa: E402
from kgan.training.trainers.critic import CriticPretrainer  # noqa: E402
from kgan.training.trainers.cyclegan import CycleGAN  # noqa: E402
from kgan.training.trainers.nogan import NoGANTrainer  # noqa: E402
from kgan.training.trainers.pix2pix import Pix2Pix  # noqa: E402
from kgan.training.trainers.pretrain import GeneratorPretrainer  # noqa: E402

SIZE = 32
GLOBAL_BATCH = 4
LR = 0.5


def sgd():
    return keras.optimizers.SGD(LR)


def _unet():
    # Instance norm: per-image statistics, identical whatever the replica split (batch norm
    # would use per-replica statistics). No dropout.
    return unet_generator(num_downs=5, ngf=4, norm="instance", use_dropout=False)


def build(name):
    """Builds and compiles trainer ``name`` in the current strategy scope."""
    if name == "cyclegan":
        generator = lambda: build_generator("resnet_6blocks", ngf=4)
        discriminator = lambda: build_discriminator("n_layers", 3, 4, 2)
        trainer = CycleGAN(generator(), generator(), discriminator(), discriminator(),
                           pool_size=4, image_shape=(SIZE, SIZE, 3))
        trainer.compile(g_optimizer=sgd(), d_optimizer=sgd())
    elif name == "pix2pix":
        trainer = Pix2Pix(_unet(), build_discriminator("n_layers", 6, 4, 2))
        trainer.compile(g_optimizer=sgd(), d_optimizer=sgd())
    elif name == "pretrain":
        trainer = GeneratorPretrainer(_unet(), losses.PixelContentLoss())
        trainer.compile(sgd())
    elif name == "critic":
        trainer = CriticPretrainer(_unet(), build_critic(nf=4, n_blocks=1, dropout=0.0))
        trainer.compile(sgd())
    elif name == "nogan":
        # A threshold above any loss: the switcher trains the critic, then the generator.
        trainer = NoGANTrainer(_unet(), build_critic(nf=4, n_blocks=1, dropout=0.0),
                               losses.PixelContentLoss(), critic_thresh=100.0)
        trainer.compile(g_optimizer=sgd(), d_optimizer=sgd())
    else:
        raise ValueError(name)
    return trainer


def batch():
    rng = np.random.RandomState(0)
    return tuple(rng.uniform(-1, 1, (GLOBAL_BATCH, SIZE, SIZE, 3)).astype("float32")
                 for _ in range(2))


def dataset():
    return tf.data.Dataset.from_tensor_slices(batch()).batch(
        GLOBAL_BATCH, drop_remainder=True).repeat()


STRATEGIES = {}


def strategy_for(kind):
    # One MirroredStrategy per process: a second one reuses collective instance keys.
    if kind == "default":
        return tf.distribute.get_strategy()
    if kind not in STRATEGIES:
        STRATEGIES[kind] = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    return STRATEGIES[kind]


def train(name, run, initial, steps):
    """Trains ``steps`` steps of trainer ``name`` under ``run`` ("strategy/driver") from the
    weights ``initial`` (None: keep the fresh ones). Returns (weights before, after, logs)."""
    kind, driver = run.split("/")
    strategy = strategy_for(kind)
    with strategy.scope():
        trainer = build(name)
    if initial is not None:
        for variable, value in zip(trainer.weights, initial):
            variable.assign(value)
    before = [v.numpy() for v in trainer.weights]
    if driver == "fit":
        history = trainer.fit(dataset(), epochs=1, steps_per_epoch=steps, verbose=0)
        logs = {k: float(v[-1]) for k, v in history.history.items()}
    else:
        loop = distribute.CustomLoop(trainer, strategy)
        logs = loop.run(dataset(), 0, steps, steps, verbose=0)
    after = [v.numpy() for v in trainer.weights]
    extra = {}
    if name == "nogan":
        extra = {"generator_mode": bool(trainer.generator_mode.numpy()),
                 "g_iterations": int(trainer.g_optimizer.iterations.numpy()),
                 "d_iterations": int(trainer.d_optimizer.iterations.numpy())}
    return before, after, logs, extra


def compare(name, runs):
    """Reference: default strategy, CustomLoop. Returns {run: report} for each other run."""
    steps = 2 if name == "nogan" else 1
    before, reference, ref_logs, ref_extra = train(name, "default/loop", None, steps)
    ref_delta = [r - b for r, b in zip(reference, before)]
    scale = max(float(np.max(np.abs(d))) for d in ref_delta)
    moved = sum(int(np.any(d != 0)) for d in ref_delta)
    out = {"reference": {"logs": ref_logs, "max_update": scale, "moved": moved,
                         "variables": len(before), **ref_extra}}
    for run in runs:
        _, after, logs, extra = train(name, run, before, steps)
        # Worst difference of the updated weights, relative to the largest update.
        error = max(float(np.max(np.abs(a - r))) for a, r in zip(after, reference))
        out[run] = {"relative_error": error / scale, "logs": logs, **extra}
    return out


def overflow_on_one_replica():
    """mixed_float16 under MirroredStrategy, where only the second replica's shard makes the
    gradients non-finite: the step must be skipped on both replicas."""
    keras.mixed_precision.set_global_policy("mixed_float16")
    strategy = strategy_for("mirrored")
    with strategy.scope():
        trainer = GeneratorPretrainer(_unet(), losses.PixelContentLoss(ssim_weight=0.0))
        trainer.compile(adam(1e-3))
    degraded, clean = batch()
    degraded[-1] = np.inf  # the last image lands on the second replica
    data = tf.data.Dataset.from_tensors((degraded, clean)).repeat()
    before = [v.numpy() for v in trainer.generator.weights]
    scale = float(trainer.g_optimizer.dynamic_scale.numpy())
    distribute.CustomLoop(trainer, strategy).run(data, 0, 1, 1, verbose=0)
    after = [v.numpy() for v in trainer.generator.weights]
    keras.mixed_precision.set_global_policy("float32")
    return {"unchanged": all(bool(np.array_equal(a, b)) for a, b in zip(after, before)),
            "scale_before": scale,
            "scale_after": float(trainer.g_optimizer.dynamic_scale.numpy()),
            "iterations": int(trainer.g_optimizer.iterations.numpy())}


def critic_copy_mirrored():
    """The critic phase under mixed_bfloat16 and MirroredStrategy: the generator's inference
    copy made in scope (as ``train_loop`` does) serves both replicas' steps."""
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    strategy = strategy_for("mirrored")
    with strategy.scope():
        generator = unet_generator(num_downs=5, ngf=4, norm="batch", use_dropout=False)
        randomise_batch_norms(generator, seed=1, affine=False)  # a real fold
        trainer = CriticPretrainer(generator, build_critic(nf=4, n_blocks=1, dropout=0.0))
        trainer.compile(sgd())
        trainer.on_train_start()
    copy = trainer._frozen.generator
    degraded, _ = batch()
    difference = float(np.max(np.abs(
        np.asarray(copy(degraded), np.float32)
        - np.asarray(generator(degraded, training=False), np.float32))))
    calls = []  # traced calls: the steps under strategy.run call the copy
    trainer._frozen.generator = lambda x, **kwargs: calls.append(1) or copy(x, **kwargs)
    before = [v.numpy() for v in trainer.critic.weights]
    distribute.CustomLoop(trainer, strategy).run(dataset(), 0, 1, 1, verbose=0)
    history = trainer.fit(dataset(), epochs=1, steps_per_epoch=1, verbose=0, shuffle=False)
    after = [v.numpy() for v in trainer.critic.weights]
    keras.mixed_precision.set_global_policy("float32")
    return {"copy": copy is not None, "copy_calls": len(calls),
            "distributed": all("Mirrored" in type(v.value).__name__ for v in copy.weights),
            "difference": difference,
            "moved": sum(int(np.any(a != b)) for a, b in zip(after, before)),
            "finite": all(bool(np.all(np.isfinite(a))) for a in after),
            "critic_loss": float(history.history["critic"][-1])}


def main():
    spec = json.loads(sys.argv[1])
    result = {name: compare(name, spec["runs"]) for name in spec.get("trainers", ())}
    if spec.get("overflow"):
        result["overflow"] = overflow_on_one_replica()
    if spec.get("critic_copy"):
        result["critic_copy"] = critic_copy_mirrored()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
