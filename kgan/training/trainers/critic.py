"""NoGAN phase 2: the critic trained as a real-vs-generated classifier on clean images vs.
the (frozen) pretrained generator's outputs, with BCE over its patch-logit map."""

import types

import tensorflow as tf

from kgan.models.frozen import casts_weights, inference_copy, is_functional
from kgan.training import losses
from kgan.training.trainers.base import GANTrainer


def critic_loss_and_accuracy(critic, real, fake, training=True):
    """fastai's AdaptiveLoss(BCEWithLogits) and accuracy_thresh_expand, per example.

    Returns:
        (loss (N,) = 0.5 * (BCE(real, 1) + BCE(fake, 0)), accuracy (N,) over patch decisions).
    """
    real_logits = critic(real, training=training)
    fake_logits = critic(fake, training=training)
    loss = losses.discriminator_loss(real_logits, fake_logits, "vanilla")
    correct = tf.concat([tf.cast(real_logits > 0, tf.float32),
                         tf.cast(fake_logits <= 0, tf.float32)], axis=-1)
    accuracy = tf.reduce_mean(tf.reshape(correct, [tf.shape(correct)[0], -1]), axis=1)
    return loss, accuracy


class CriticPretrainer(GANTrainer):
    """Trains ``critic`` to tell ``clean`` from ``generator(degraded)``; the generator is frozen.

    The generator only runs forward here, so under mixed precision ``on_train_start`` makes
    an inference copy of it (``kgan.models.frozen.inference_copy``: batch norm folded into
    the convs, weights stored in bf16 / float16 once instead of cast at every step; not
    checkpointed) that the training steps use: DeOldify Stable's bf16 critic step at 192^2,
    batch 8, 1.71 -> 1.44 s on a CPU with AMX (docs/speed.md). In float32 the steps run the
    generator itself: the copy measured no faster there and would hold a second float32 copy
    of its weights. Without ``on_train_start`` the steps run the generator too.

    Args:
        generator: the pretrained generator (not trained here).
        critic: the critic network.
    """

    def __init__(self, generator, critic, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.critic = critic
        # A plain holder, so the copy is not tracked (not saved with the trainer).
        self._frozen = types.SimpleNamespace(generator=None)

    def on_train_start(self):
        """Snapshots the frozen generator as an inference copy, under mixed precision (a
        functional generator; others run as they are)."""
        self._frozen.generator = None
        if casts_weights(self.generator) and is_functional(self.generator):
            self._frozen.generator = inference_copy(self.generator)
        self.train_function = None  # a step traced before now would keep the old generator

    def compile(self, optimizer, **kwargs):
        """Sets the critic optimizer and builds it in scope."""
        super().compile(d_optimizer=optimizer, **kwargs)

    def optimizer_variables(self):
        return [(self.d_optimizer, self.critic.trainable_variables)]

    def call(self, inputs, training=False):
        return self.critic(inputs, training=training)

    def train_step(self, data):
        degraded, clean = data
        global_batch = self.global_batch_size(degraded)
        lr = self.current_lr(self.d_optimizer)
        if self._frozen.generator is not None:
            fake = tf.stop_gradient(self._frozen.generator(degraded, training=False))
        else:
            fake = tf.stop_gradient(self.generator(degraded, training=False))
        with tf.GradientTape() as tape:
            loss, accuracy = critic_loss_and_accuracy(self.critic, clean, fake)
            total = losses.reduce_global(loss, global_batch)
        self.apply_gradients(tape, total, self.critic.trainable_variables, self.d_optimizer)
        return {"critic": tf.reduce_mean(loss), "accuracy": tf.reduce_mean(accuracy), "lr": lr}

    def test_step(self, data):
        degraded, clean = data
        fake = self.generator(degraded, training=False)
        loss, accuracy = critic_loss_and_accuracy(self.critic, clean, fake, training=False)
        return {"critic": tf.reduce_mean(loss), "accuracy": tf.reduce_mean(accuracy)}

    def translate(self, degraded, clean):
        return {"restore": [degraded, self.generator(degraded, training=False), clean]}

    def generators(self):
        return {"generator": self.generator}
