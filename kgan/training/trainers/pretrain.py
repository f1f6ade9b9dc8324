"""NoGAN phase 1: the generator alone, trained on (degraded, clean) pairs with a content loss
(the VGG16 perceptual loss, or a pixel L1/SSIM loss when the VGG weights are absent)."""

import tensorflow as tf

from kgan.training import losses
from kgan.training.trainers.base import GANTrainer


class GeneratorPretrainer(GANTrainer):
    """Fits ``generator(degraded) ~ clean`` under ``content_loss``.

    Args:
        generator: the restoration generator.
        content_loss: a loss object with ``terms(prediction, target)`` -> per-example terms.
    """

    def __init__(self, generator, content_loss, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.content_loss = content_loss

    def compile(self, optimizer, **kwargs):
        """Sets the generator optimizer and builds it in scope."""
        super().compile(g_optimizer=optimizer, **kwargs)

    def optimizer_variables(self):
        return [(self.g_optimizer, self.generator.trainable_variables)]

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def train_step(self, data):
        degraded, clean = data
        global_batch = self.global_batch_size(degraded)
        lr = self.current_lr(self.g_optimizer)
        with tf.GradientTape() as tape:
            restored = self.generator(degraded, training=True)
            terms = self.content_loss.terms(restored, clean)
            loss = losses.reduce_global(tf.add_n(list(terms.values())), global_batch)
        self.apply_gradients(tape, loss, self.generator.trainable_variables, self.g_optimizer)
        logs = {"content_" + name: tf.reduce_mean(value) for name, value in terms.items()}
        logs["content"] = tf.add_n(list(logs.values()))
        logs["lr"] = lr
        return logs

    def test_step(self, data):
        degraded, clean = data
        restored = self.generator(degraded, training=False)
        return {"content": tf.reduce_mean(self.content_loss(restored, clean))}

    def translate(self, degraded, clean):
        """Images for the grid: degraded -> restored -> clean."""
        return {"restore": [degraded, self.generator(degraded, training=False), clean]}

    def generators(self):
        return {"generator": self.generator}
