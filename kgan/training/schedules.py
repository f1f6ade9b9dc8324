"""Learning-rate schedules stepped by the optimizer's iteration counter (so they resume)."""

import keras
import tensorflow as tf


@keras.saving.register_keras_serializable(package="kgan")
class LinearDecay(keras.optimizers.schedules.LearningRateSchedule):
    """The reference's ``linear`` policy: constant for ``epochs``, then linear decay over
    ``epochs_decay``, stepped once per epoch:

        lr(epoch) = initial_lr * (1 - max(0, epoch + 1 - epochs) / (epochs_decay + 1))

    with ``epoch = step // steps_per_epoch`` counted from 0 (the reference's epoch_count=1).
    As in the reference, the last epoch runs at initial_lr / (epochs_decay + 1), not 0.

    Args:
        initial_lr: the learning rate of the constant phase.
        epochs: epochs at the initial rate (``--epochs`` / ``--n_epochs``).
        epochs_decay: epochs of linear decay (``--epochs_decay`` / ``--n_epochs_decay``).
        steps_per_epoch: optimizer steps in one epoch.
    """

    def __init__(self, initial_lr, epochs, epochs_decay, steps_per_epoch):
        self.initial_lr = float(initial_lr)
        self.epochs = int(epochs)
        self.epochs_decay = int(epochs_decay)
        self.steps_per_epoch = max(int(steps_per_epoch), 1)

    def __call__(self, step):
        epoch = tf.cast(step, tf.float32) // float(self.steps_per_epoch)
        decayed = tf.maximum(0.0, epoch + 1.0 - self.epochs) / (self.epochs_decay + 1.0)
        return self.initial_lr * tf.maximum(1.0 - decayed, 0.0)

    def get_config(self):
        return {"initial_lr": self.initial_lr, "epochs": self.epochs,
                "epochs_decay": self.epochs_decay, "steps_per_epoch": self.steps_per_epoch}
