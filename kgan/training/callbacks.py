"""Keras callbacks used by both training drivers: TensorBoard scalars and image grids,
checkpoints every N steps, and a NaN guard that stops before a bad step is saved."""

import math
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from kgan.core.errors import KganError
from kgan.core.pixels import to_uint8
from kgan.training import checkpoints


class TrainingDivergedError(KganError, RuntimeError):
    """A loss became NaN or Inf; the last good checkpoint is kept."""


def _step(trainer):
    return int(trainer.step_counter.numpy())


def image_grid(rows):
    """Tiles rows of image batches into one uint8 picture.

    Args:
        rows: list of lists of (N, H, W, 3) float images in [-1, 1]; each inner list is one
            row group (e.g. real -> fake -> reconstructed), shown left to right.

    Returns:
        (H_total, W_total, 3) uint8 numpy array.
    """
    lines = []
    for images in rows:
        images = [np.asarray(tf.cast(im, tf.float32)) for im in images]
        for i in range(images[0].shape[0]):
            lines.append(np.concatenate([im[i] for im in images], axis=1))
    grid = np.concatenate(lines, axis=0)
    return to_uint8(grid)


class NaNGuard(keras.callbacks.Callback):
    """Stops training at the first non-finite loss, before anything is checkpointed."""

    def on_train_batch_end(self, batch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if not math.isfinite(float(v))}
        if bad:
            raise TrainingDivergedError(
                f"Loss became non-finite at step {_step(self.model)}: {bad}. Training stopped; "
                "the last good checkpoint is kept. Try a lower --lr, --mixed_precision=float32, "
                "or another --gan_mode.")


class CheckpointSaver(keras.callbacks.Callback):
    """Saves a ``tf.train.CheckpointManager`` every ``save_freq`` steps and at the end.

    TensorFlow writes the checkpoint files first and the ``checkpoint`` index last (atomic
    rename), so a kill at any moment leaves the previous checkpoint usable; a full disk raises
    ``kgan.core.atomic.DiskFullError`` with the previous checkpoint intact
    (kgan.training.checkpoints.save).
    """

    def __init__(self, manager, save_freq):
        super().__init__()
        self.manager = manager
        self.save_freq = max(int(save_freq), 1)

    def save(self):
        step = _step(self.model)
        if not (self.manager.latest_checkpoint
                and self.manager.latest_checkpoint.endswith(f"-{step}")):
            checkpoints.save(self.manager, step)
        # A line per save would break the progress bar every --save_freq steps: the loop says
        # once where the run's state is (--verbosity=1 shows each save).
        logging.vlog(1, "Saved checkpoint at step %d: %s", step, self.manager.latest_checkpoint)

    def on_train_batch_end(self, batch, logs=None):
        if _step(self.model) % self.save_freq == 0:
            self.save()

    def on_train_end(self, logs=None):
        self.save()


class TensorBoardLogger(keras.callbacks.Callback):
    """Writes every loss term, the learning rate, step time and images/s every ``print_freq``
    steps, and image grids from a fixed batch every ``display_freq`` steps.

    Args:
        log_dir: the TensorBoard folder.
        batch_size: global batch, to turn step time into images/s.
        print_freq, display_freq: in steps.
        sample_batch: a fixed batch for ``trainer.translate`` (None: no grids).
    """

    def __init__(self, log_dir, batch_size, print_freq=100, display_freq=400,
                 sample_batch=None):
        super().__init__()
        self.writer = tf.summary.create_file_writer(log_dir)
        self.batch_size = batch_size
        self.print_freq = max(int(print_freq), 1)
        self.display_freq = max(int(display_freq), 1)
        self.sample_batch = sample_batch
        self._last = None

    def on_train_begin(self, logs=None):
        self._last = (time.perf_counter(), _step(self.model))

    def on_train_batch_end(self, batch, logs=None):
        step = _step(self.model)
        if step % self.print_freq == 0:
            now = time.perf_counter()
            last_time, last_step = self._last
            self._last = (now, step)
            with self.writer.as_default(step=step):
                for name, value in (logs or {}).items():
                    tf.summary.scalar(("lr" if name == "lr" else "loss/" + name), float(value))
                if step > last_step:
                    seconds = (now - last_time) / (step - last_step)
                    tf.summary.scalar("speed/step_time_s", seconds)
                    tf.summary.scalar("speed/images_per_s", self.batch_size / seconds)
        if self.sample_batch is not None and step % self.display_freq == 0:
            self.write_images(step)

    def write_images(self, step):
        """Writes one image grid per domain/row group from the fixed sample batch."""
        groups = self.model.translate(*self.sample_batch)
        with self.writer.as_default(step=step):
            for name, row in groups.items():
                grid = image_grid([row])
                tf.summary.image("images/" + name, grid[None], step=step)
        self.writer.flush()

    def on_train_end(self, logs=None):
        if self.sample_batch is not None:
            self.write_images(_step(self.model))
        self.writer.flush()
