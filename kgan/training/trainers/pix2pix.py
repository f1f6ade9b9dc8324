"""pix2pix (Isola et al., arXiv 1611.07004) as the PyTorch reference trains it: a conditional
PatchGAN sees the (input, output) pair; the generator minimises GAN + lambda_L1 * L1.
Logged losses use the reference's names: G_GAN, G_L1, D_real, D_fake."""

import tensorflow as tf

from kgan.training import losses
from kgan.training.trainers.base import GANTrainer


class Pix2Pix(GANTrainer):
    """Trains a generator and a conditional discriminator on paired (input, target) batches.

    Args:
        generator: maps inputs to outputs (UNet in the reference).
        discriminator: takes the channel concatenation (input, output); 6 channels for RGB.
        lambda_l1: weight of the L1 term (reference 100).
        gan_mode: ``vanilla`` (reference), ``lsgan``, ``hinge`` or ``wgangp``.
        lambda_gp: gradient-penalty weight for ``wgangp``.
    """

    def __init__(self, generator, discriminator, lambda_l1=100.0, gan_mode="vanilla",
                 lambda_gp=10.0, **kwargs):
        super().__init__(**kwargs)
        losses.check_gan_mode(gan_mode)
        self.generator = generator
        self.discriminator = discriminator
        self.lambda_l1 = float(lambda_l1)
        self.gan_mode = gan_mode
        self.lambda_gp = float(lambda_gp)

    def optimizer_variables(self):
        return [(self.g_optimizer, self.generator.trainable_variables),
                (self.d_optimizer, self.discriminator.trainable_variables)]

    def call(self, inputs, training=False):
        return self.generator(inputs, training=training)

    def _judge(self, inputs, images, training=True):
        pair = tf.concat([tf.cast(inputs, tf.float32), tf.cast(images, tf.float32)], axis=-1)
        return self.discriminator(pair, training=training)

    def train_step(self, data):
        inputs, targets = data
        global_batch = self.global_batch_size(inputs)
        seed = self.step_seed(0)
        lr = self.current_lr(self.g_optimizer)
        with tf.GradientTape() as g_tape:
            fakes = self.generator(inputs, training=True)
            # The reference updates D first, then computes G's loss with the updated D.
            with tf.GradientTape() as d_tape:
                d_real = losses.gan_loss(self._judge(inputs, targets), True, self.gan_mode)
                d_fake = losses.gan_loss(self._judge(inputs, tf.stop_gradient(fakes)), False,
                                         self.gan_mode)
                d_per_example = 0.5 * (d_real + d_fake)
                if self.gan_mode == "wgangp":
                    judge = lambda pair_b: self.discriminator(pair_b, training=True)
                    real_pair = tf.concat([inputs, targets], -1)
                    fake_pair = tf.concat([inputs, tf.stop_gradient(fakes)], -1)
                    d_per_example += self.lambda_gp * losses.gradient_penalty(
                        judge, real_pair, fake_pair, seed)
                d_loss = losses.reduce_global(d_per_example, global_batch)
            self.apply_gradients(d_tape, d_loss, self.discriminator.trainable_variables,
                                 self.d_optimizer)
            g_gan = losses.generator_loss(self._judge(inputs, fakes), self.gan_mode)
            g_l1 = self.lambda_l1 * losses.l1_loss(fakes, targets)
            g_loss = losses.reduce_global(g_gan + g_l1, global_batch)
        self.apply_gradients(g_tape, g_loss, self.generator.trainable_variables,
                             self.g_optimizer)
        return {"G_GAN": tf.reduce_mean(g_gan), "G_L1": tf.reduce_mean(g_l1),
                "D_real": tf.reduce_mean(d_real), "D_fake": tf.reduce_mean(d_fake), "lr": lr}

    def test_step(self, data):
        inputs, targets = data
        fakes = self.generator(inputs, training=False)
        return {"G_L1": tf.reduce_mean(self.lambda_l1 * losses.l1_loss(fakes, targets))}

    def translate(self, inputs, targets):
        """Images for the TensorBoard grid: input -> output -> target."""
        return {"AtoB": [inputs, self.generator(inputs, training=False), targets]}

    def generators(self):
        """The generator to export."""
        return {"generator": self.generator}
