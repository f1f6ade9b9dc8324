"""Drives a compiled kgan trainer to a step count: restores the latest checkpoint, then trains
with Keras ``fit`` (segments that keep epochs aligned with steps) or kgan's ``strategy.run``
loop (MultiWorkerMirroredStrategy, where Keras 3 fit fails), with checkpoints, NaN guard and
TensorBoard logging. A corrupt latest checkpoint falls back to an older one
(kgan.training.checkpoints); SIGTERM/SIGINT save a checkpoint at the step reached and raise
``kgan.training.preemption.TrainingInterrupted`` (TensorFlow's PreemptionCheckpointHandler under
MultiWorkerMirroredStrategy).

Called by every recipe (kgan.recipes.*) and kgan.benchmarking.bench; takes plain arguments and a
``LoopOptions``, never flags.
"""

import dataclasses
import os

import tensorflow as tf
from absl import logging

from kgan.training import callbacks as kcallbacks
from kgan.training import checkpoints, distribute, preemption


@dataclasses.dataclass
class LoopOptions:
    """How a training loop checkpoints, logs and runs.

    Attributes:
        save_freq: checkpoint every this many steps (and at the end).
        print_freq: TensorBoard scalars every this many steps.
        display_freq: TensorBoard image grids every this many steps.
        keep_checkpoints: checkpoints kept by default (``train_loop``'s ``max_to_keep=-1``).
        verbose: Keras progress: 0 silent, 1 bar, 2 one line per epoch.
        driver: ``fit``, ``loop`` or ``auto`` (the loop under MultiWorkerMirroredStrategy).
        jit_compile: compile the loop's step with XLA (``fit`` uses the trainer's compile).
    """

    save_freq: int = 500
    print_freq: int = 100
    display_freq: int = 400
    keep_checkpoints: int = 3
    verbose: int = 1
    driver: str = "auto"
    jit_compile: bool = False


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


def end_step_for(steps_per_epoch, epochs, max_steps):
    """Total steps of a run: epochs * steps_per_epoch, capped by ``max_steps``."""
    total = max(epochs, 1) * steps_per_epoch
    return min(total, max_steps) if max_steps else total


def uses_custom_loop(driver, strategy):
    """Whether ``train_loop`` drives the step with ``strategy.run`` instead of ``fit``."""
    multi_worker = isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)
    return driver == "loop" or (driver == "auto" and multi_worker)


def train_loop(trainer, dataset, strategy, run_dir, steps_per_epoch, end_step,
               options=None, sample_batch=None, batch_size=1, max_to_keep=-1):
    """Restores the latest checkpoint in ``run_dir/checkpoints`` and trains to ``end_step``.

    Args:
        trainer: a compiled kgan trainer built in ``strategy``'s scope.
        dataset: the training data as a function ``step -> tf.data.Dataset`` giving the
            repeating, batched stream (global batch) as it stands after ``step`` steps, so a
            resumed run and every ``fit`` segment see what an uninterrupted run would see next
            (``kgan.recipes.common.dataset_at``); or one such dataset, used from its start at
            every segment (benchmarks).
        strategy: the distribution strategy.
        run_dir: where checkpoints/ and logs/ go.
        steps_per_epoch: steps in one epoch.
        end_step: total steps (absolute, across resumes).
        options: a ``LoopOptions`` (default: its defaults).
        sample_batch: fixed batch for TensorBoard image grids.
        batch_size: global batch, for images/s.
        max_to_keep: checkpoints kept (-1: ``options.keep_checkpoints``; None: all).

    Returns:
        The step count reached.
    """
    options = options or LoopOptions()
    dataset_at = dataset if callable(dataset) else (lambda step: dataset)
    checkpoint = tf.train.Checkpoint(trainer=trainer)
    directory = distribute.worker_dir(os.path.join(run_dir, "checkpoints"), strategy)
    restored = checkpoints.restore_newest(checkpoint, directory)
    manager = tf.train.CheckpointManager(
        checkpoint, directory,
        max_to_keep=options.keep_checkpoints if max_to_keep == -1 else max_to_keep)
    if restored:
        logging.info("Resumed from %s", restored)
    start = int(trainer.step_counter.numpy())
    if start >= end_step:
        logging.info("%s already trained to step %d (>= %d).", run_dir, start, end_step)
        return start
    logging.info("Training %s from step %d to %d (%d steps/epoch).", run_dir, start, end_step,
                 steps_per_epoch)
    saver = kcallbacks.CheckpointSaver(manager, options.save_freq)
    callbacks = [kcallbacks.NaNGuard(), saver]
    if distribute.is_chief(strategy):
        callbacks.append(kcallbacks.TensorBoardLogger(
            os.path.join(run_dir, "logs"), batch_size, options.print_freq, options.display_freq,
            sample_batch))
    custom = uses_custom_loop(options.driver, strategy)
    handler = None
    if custom and isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        # TensorFlow's handler watches SIGTERM on every worker; Ctrl-C is handed to it.
        handler = preemption.multi_worker_handler(
            strategy, manager, lambda: int(trainer.step_counter.numpy()))
        stop = preemption.StopSignals((preemption.signal.SIGINT,),
                                      forward=preemption.forward_as_sigterm)
    else:
        stop = preemption.StopSignals()
    callbacks.insert(0, preemption.StopOnSignal(stop))
    with strategy.scope():
        # After every restore (the multi-worker handler's included), before the first step.
        trainer.on_train_start()
    with stop:
        if custom:
            loop = distribute.CustomLoop(trainer, strategy, options.jit_compile,
                                         preemption_handler=handler)
            loop.run(dataset_at(start), start, end_step, steps_per_epoch, callbacks,
                     options.verbose)
        else:
            for initial_epoch, epochs, steps in plan_fit_segments(start, end_step,
                                                                  steps_per_epoch):
                # Each fit() starts a new iterator: position it at the step reached.
                step = int(trainer.step_counter.numpy())
                trainer.fit(dataset_at(step), initial_epoch=initial_epoch, epochs=epochs,
                            steps_per_epoch=steps, callbacks=callbacks,
                            verbose=options.verbose,
                            shuffle=False)  # tf.data shuffles; Keras would warn it ignores True
                if trainer.stop_training:
                    break
    step = int(trainer.step_counter.numpy())
    if manager.latest_checkpoint:
        logging.info("Saved checkpoint at step %d: %s", step, manager.latest_checkpoint)
    if stop.requested.is_set() and step < end_step:
        raise preemption.TrainingInterrupted(stop.signum, step, manager.latest_checkpoint)
    return step
