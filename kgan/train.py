"""``python -m kgan.train --flagfile=configs/X.cfg``: trains CycleGAN, pix2pix or the NoGAN
restoration pipeline, with TensorBoard logs, checkpoints and automatic resume.

Rerunning the same command on the same ``--output_dir`` resumes from the latest checkpoint:
same step count, same learning-rate schedule position.
"""

import os
import sys

import keras
import tensorflow as tf
from absl import app, flags, logging

from kgan import callbacks as kcallbacks
from kgan import distribute
from kgan.flags import ALIASES, MODEL_DEFAULTS, define_flags

FLAGS = flags.FLAGS

# Errors a user can cause; they end the run with one line, not a stack trace.
USER_ERRORS = (ValueError, FileNotFoundError, kcallbacks.TrainingDivergedError)


def apply_model_defaults(flag_values):
    """Gives per-model defaults (e.g. pix2pix: unet_256, batch norm) to flags not set."""
    for name, value in MODEL_DEFAULTS[flag_values.model].items():
        if not flag_values[name].present:
            flag_values[name].value = value


def validate_flags(f):
    """Raises one clear ValueError for inconsistent flags."""
    if f.dataroot and f.tfds_name:
        raise ValueError("Give --dataroot or --tfds_name, not both.")
    if f.dataroot and not os.path.isdir(f.dataroot):
        raise ValueError(f"--dataroot={f.dataroot} is not a folder. Point it at the dataset "
                         "root (with trainA/ and trainB/ for cycle_gan, train/ for pix2pix).")
    if (f.preprocess in ("resize_and_crop", "scale_width_and_crop") and f.load_size
            and f.crop_size > f.load_size):
        raise ValueError(f"--crop_size={f.crop_size} is larger than --load_size={f.load_size}; "
                         f"use --crop_size <= --load_size.")
    if f.batch_size < 1:
        raise ValueError("--batch_size must be at least 1.")
    for name in ("save_freq", "display_freq", "print_freq"):
        if f[name].value < 1:
            raise ValueError(f"--{name} must be at least 1.")
    if f.max_steps is not None and f.max_steps < 1:
        raise ValueError("--max_steps must be at least 1.")


def write_flagfile(path, flag_values):
    """Writes the effective flags of kgan.flags as a flagfile that reproduces the run."""
    aliases = {alias for alias, _ in ALIASES}
    lines = sorted({flag.serialize() for flag in flag_values.get_flags_for_module("kgan.flags")
                    if flag.name not in aliases and flag.value is not None})
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write("\n".join(lines) + "\n")


def plan_fit_segments(start, end, steps_per_epoch):
    """Splits steps [start, end) into fit() calls that keep epochs aligned with steps.

    Returns:
        A list of (initial_epoch, epochs, steps_per_epoch) for ``fit``.
    """
    segments, step = [], start
    while step < end:
        epoch, offset = divmod(step, steps_per_epoch)
        if offset or end - step < steps_per_epoch:
            steps = min(steps_per_epoch - offset, end - step)
            segments.append((epoch, epoch + 1, steps))
            step += steps
        else:
            full = (end - step) // steps_per_epoch
            segments.append((epoch, epoch + full, steps_per_epoch))
            step += full * steps_per_epoch
    return segments


def train_loop(trainer, dataset, strategy, run_dir, steps_per_epoch, end_step,
               sample_batch=None, batch_size=1, driver="auto", max_to_keep=-1):
    """Restores the latest checkpoint in ``run_dir/checkpoints`` and trains to ``end_step``.

    Args:
        trainer: a compiled kgan trainer built in ``strategy``'s scope.
        dataset: a repeating, batched ``tf.data.Dataset`` (global batch).
        strategy: the distribution strategy.
        run_dir: where checkpoints/ and logs/ go.
        steps_per_epoch: steps in one epoch.
        end_step: total steps (absolute, across resumes).
        sample_batch: fixed batch for TensorBoard image grids.
        batch_size: global batch, for images/s.
        driver: ``fit``, ``loop`` or ``auto``.
        max_to_keep: checkpoints kept (-1: --keep_checkpoints; None: all).

    Returns:
        The step count reached.
    """
    checkpoint = tf.train.Checkpoint(trainer=trainer)
    manager = tf.train.CheckpointManager(
        checkpoint, distribute.worker_dir(os.path.join(run_dir, "checkpoints"), strategy),
        max_to_keep=FLAGS.keep_checkpoints if max_to_keep == -1 else max_to_keep)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        logging.info("Resumed from %s", manager.latest_checkpoint)
    start = int(trainer.step_counter.numpy())
    if start >= end_step:
        logging.info("%s already trained to step %d (>= %d).", run_dir, start, end_step)
        return start
    logging.info("Training %s from step %d to %d (%d steps/epoch).", run_dir, start, end_step,
                 steps_per_epoch)
    callbacks = [kcallbacks.NaNGuard(),
                 kcallbacks.CheckpointSaver(manager, FLAGS.save_freq)]
    if distribute.is_chief(strategy):
        callbacks.append(kcallbacks.TensorBoardLogger(
            os.path.join(run_dir, "logs"), batch_size, FLAGS.print_freq, FLAGS.display_freq,
            sample_batch))
    use_loop = driver == "loop" or (driver == "auto" and FLAGS.distribution == "multi_worker")
    if use_loop:
        loop = distribute.CustomLoop(trainer, strategy, FLAGS.jit_compile)
        loop.run(dataset, start, end_step, steps_per_epoch, callbacks, FLAGS.verbose)
    else:
        for initial_epoch, epochs, steps in plan_fit_segments(start, end_step, steps_per_epoch):
            trainer.fit(dataset, initial_epoch=initial_epoch, epochs=epochs,
                        steps_per_epoch=steps, callbacks=callbacks, verbose=FLAGS.verbose)
            if trainer.stop_training:
                break
    return int(trainer.step_counter.numpy())


def end_step_for(steps_per_epoch, epochs, max_steps):
    """Total steps of a run: epochs * steps_per_epoch, capped by --max_steps."""
    total = max(epochs, 1) * steps_per_epoch
    return min(total, max_steps) if max_steps else total


def save_generators(generators, output_dir):
    """Saves each generator as ``output_dir/generators/<name>.keras`` (what kgan.export and
    kgan.translate read)."""
    folder = os.path.join(output_dir, "generators")
    os.makedirs(folder, exist_ok=True)
    paths = {}
    for name, model in generators.items():
        paths[name] = os.path.join(folder, name + ".keras")
        model.save(paths[name])
    logging.info("Saved generators: %s", ", ".join(paths.values()))
    return paths


def export_generators(generators, export_dir):
    """Exports each generator with kgan.export (SavedModel + verified TFLite)."""
    from kgan import export as kexport
    manifests = {}
    for name, model in generators.items():
        # The same layout as `python -m kgan.export`: EXPORT_DIR/<AtoB|BtoA|generator>/.
        target = os.path.join(export_dir, name)
        manifests[name] = kexport.export_generator(model, os.path.abspath(target),
                                                   overwrite=True)
        logging.info("Exported %s to %s", name, target)
    return manifests


def data_options(f):
    """The data flags shared by every dataset builder."""
    return dict(preprocess=f.preprocess, load_size=f.load_size, crop_size=f.crop_size,
                no_flip=f.no_flip, max_dataset_size=f.max_dataset_size,
                serial_batches=f.serial_batches, batch_size=f.batch_size, seed=f.seed)


def run_cyclegan(f, strategy):
    from kgan.data import unpaired_dataset
    from kgan.trainers.cyclegan import build_cyclegan

    dataset, info = unpaired_dataset(dataroot=f.dataroot, tfds_name=f.tfds_name,
                                     tfds_data_dir=f.tfds_data_dir, **data_options(f))
    logging.info("Data: %s (A: %d, B: %d images, %d skipped)", info.source, info.num_a,
                 info.num_b, info.skipped)
    steps_per_epoch = f.steps_per_epoch or info.steps_per_epoch
    lambda_a = f.lambda_A if f.lambda_A is not None else f.lambda_cycle
    lambda_b = f.lambda_B if f.lambda_B is not None else f.lambda_cycle
    crops = f.preprocess in ("resize_and_crop", "crop", "scale_width_and_crop")
    with strategy.scope():
        trainer = build_cyclegan(
            generator=f.generator, discriminator=f.discriminator, ngf=f.ngf, ndf=f.ndf,
            n_layers_d=f.n_layers_d, norm=f.norm, use_dropout=not f.no_dropout,
            init_type=f.init_type, init_gain=f.init_gain, gan_mode=f.gan_mode,
            lambda_a=lambda_a, lambda_b=lambda_b, lambda_identity=f.lambda_identity,
            pool_size=f.pool_size, lr=f.lr, beta_1=f.beta_1, epochs=f.epochs,
            epochs_decay=f.epochs_decay, steps_per_epoch=steps_per_epoch,
            crop_size=f.crop_size if crops else None, jit_compile=f.jit_compile,
            spectral_norm=f.spectral_norm, upsample=f.upsample)
    sample = [t[:4] for t in next(iter(dataset.take(1)))]
    end = end_step_for(steps_per_epoch, f.epochs + f.epochs_decay, f.max_steps)
    train_loop(trainer, dataset, strategy, f.output_dir, steps_per_epoch, end, sample,
               f.batch_size, f.driver)
    return trainer, sample


def run(f):
    """Runs one training job described by the flag values ``f``."""
    apply_model_defaults(f)
    validate_flags(f)
    if f.seed is not None:
        keras.utils.set_random_seed(f.seed)
    keras.mixed_precision.set_global_policy(f.mixed_precision)
    strategy = distribute.get_strategy(f.distribution, f.devices, f.tpu)
    replicas = strategy.num_replicas_in_sync
    if f.batch_size % replicas:
        raise ValueError(f"--batch_size={f.batch_size} (the global batch) must be a multiple of "
                         f"the {replicas} replicas.")
    chief = distribute.is_chief(strategy)
    if chief:
        write_flagfile(os.path.join(f.output_dir, "flags.cfg"), f)

    if f.model == "cycle_gan":
        trainer, sample = run_cyclegan(f, strategy)
        generators = trainer.generators()
    else:
        from kgan import train_restore
        trainer, sample, generators = train_restore.run_model(f, strategy, train_loop)

    if chief:
        kcallbacks.save_png(os.path.join(f.output_dir, "samples.png"),
                            kcallbacks.image_grid(list(trainer.translate(*sample).values())))
        save_generators(generators, f.output_dir)
        if f.export_dir:
            export_generators(generators, f.export_dir)
    return trainer


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    try:
        run(FLAGS)
    except USER_ERRORS as error:
        if os.environ.get("KGAN_DEBUG"):
            raise
        print(f"kgan.train: error: {error}", file=sys.stderr)
        sys.exit(2)


def run_main():
    define_flags()
    app.run(main)


if __name__ == "__main__":
    run_main()
