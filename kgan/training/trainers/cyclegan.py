"""CycleGAN (Zhu et al., arXiv 1703.10593) as the PyTorch reference trains it.

Names follow the reference: ``G_A`` maps A -> B (the paper's G), ``G_B`` maps B -> A (F);
``D_A`` judges domain B images (real B vs G_A(A)), ``D_B`` judges domain A images. Logged
losses: G_A, G_B (adversarial, times lambda_gan), cycle_A = |G_B(G_A(A)) - A| * lambda_A, cycle_B,
idt_A = |G_A(B) - B| * lambda_B * lambda_identity, idt_B, D_A, D_B.
"""

import keras
import tensorflow as tf

from kgan.models import build_discriminator, build_generator
from kgan.training import losses
from kgan.training.image_pool import ImagePool
from kgan.training.schedules import LinearDecay
from kgan.training.trainers.base import GANTrainer, adam


class CycleGAN(GANTrainer):
    """Trains two generators and two discriminators on unpaired (A, B) batches.

    Args:
        generator_ab, generator_ba: A -> B and B -> A generators.
        discriminator_a, discriminator_b: judge domain A and domain B images.
        lambda_a, lambda_b: cycle-loss weights (reference ``--lambda_A``/``--lambda_B``).
        lambda_identity: identity weight, relative to the cycle weight (reference 0.5).
        lambda_gan: weight of both generators' adversarial terms (1 in the reference; 0
            trains with the cycle terms alone, for the paper's loss ablation).
        gan_mode: ``lsgan`` (reference), ``vanilla``, ``hinge`` or ``wgangp``.
        lambda_gp: gradient-penalty weight for ``wgangp``.
        pool_size: image pool size per domain (0 disables).
        image_shape: (H, W, C) of training crops, needed by the pool.
    """

    def __init__(self, generator_ab, generator_ba, discriminator_a, discriminator_b,
                 lambda_a=10.0, lambda_b=10.0, lambda_identity=0.5, gan_mode="lsgan",
                 lambda_gp=10.0, pool_size=50, image_shape=None, lambda_gan=1.0, **kwargs):
        super().__init__(**kwargs)
        losses.check_gan_mode(gan_mode)
        self.generator_ab = generator_ab
        self.generator_ba = generator_ba
        self.discriminator_a = discriminator_a
        self.discriminator_b = discriminator_b
        self.lambda_a = float(lambda_a)
        self.lambda_b = float(lambda_b)
        self.lambda_identity = float(lambda_identity)
        self.lambda_gan = float(lambda_gan)
        self.gan_mode = gan_mode
        self.lambda_gp = float(lambda_gp)
        self.pool_a = ImagePool(pool_size, image_shape, name="pool_a")
        self.pool_b = ImagePool(pool_size, image_shape, name="pool_b")

    def optimizer_variables(self):
        g_vars = self.generator_ab.trainable_variables + self.generator_ba.trainable_variables
        d_vars = (self.discriminator_a.trainable_variables +
                  self.discriminator_b.trainable_variables)
        return [(self.g_optimizer, g_vars), (self.d_optimizer, d_vars)]

    def call(self, inputs, training=False):
        return self.generator_ab(inputs, training=training)

    def _cycle_terms_a(self, real_a, training):
        """A -> B -> A: G_A's adversarial term and cycle_A; returns (terms, fake_b)."""
        fake_b = self.generator_ab(real_a, training=training)
        rec_a = self.generator_ba(fake_b, training=training)
        terms = {
            "G_A": self.lambda_gan * losses.generator_loss(
                self.discriminator_b(fake_b, training=training), self.gan_mode),
            "cycle_A": self.lambda_a * losses.l1_loss(rec_a, real_a),
        }
        return terms, fake_b

    def _cycle_terms_b(self, real_b, training):
        """B -> A -> B: G_B's adversarial term and cycle_B; returns (terms, fake_a)."""
        fake_a = self.generator_ba(real_b, training=training)
        rec_b = self.generator_ab(fake_a, training=training)
        terms = {
            "G_B": self.lambda_gan * losses.generator_loss(
                self.discriminator_a(fake_a, training=training), self.gan_mode),
            "cycle_B": self.lambda_b * losses.l1_loss(rec_b, real_b),
        }
        return terms, fake_a

    def _identity_terms(self, real_a, real_b, training):
        """idt_A = |G_A(B) - B| and idt_B = |G_B(A) - A|, weighted as the reference."""
        idt_a = self.generator_ab(real_b, training=training)
        idt_b = self.generator_ba(real_a, training=training)
        return {
            "idt_A": self.lambda_b * self.lambda_identity * losses.l1_loss(idt_a, real_b),
            "idt_B": self.lambda_a * self.lambda_identity * losses.l1_loss(idt_b, real_a),
        }

    def _generator_losses(self, real_a, real_b, training):
        """Forward pass of both generators and every generator loss term (per example)."""
        a_terms, fake_b = self._cycle_terms_a(real_a, training)
        b_terms, fake_a = self._cycle_terms_b(real_b, training)
        terms = {"G_A": a_terms["G_A"], "G_B": b_terms["G_B"],
                 "cycle_A": a_terms["cycle_A"], "cycle_B": b_terms["cycle_B"]}
        if self.lambda_identity > 0:
            terms.update(self._identity_terms(real_a, real_b, training))
        return terms, fake_a, fake_b

    def _discriminator_loss(self, discriminator, real, fake, seed):
        loss = losses.discriminator_loss(discriminator(real, training=True),
                                         discriminator(fake, training=True), self.gan_mode)
        if self.gan_mode == "wgangp":
            loss += self.lambda_gp * losses.gradient_penalty(discriminator, real, fake, seed)
        return loss

    def train_step(self, data):
        real_a, real_b = data
        global_batch = self.global_batch_size(real_a)
        # Seeds are drawn before the generator update moves the step counter.
        seeds = [self.step_seed(salt) for salt in range(4)]
        lr = self.current_lr(self.g_optimizer)

        # The generator loss is differentiated in three parts (cycle A, cycle B, identity),
        # one after the other, and the gradients summed: the same gradient as one tape over
        # the summed loss, but only two generator passes' activations are alive at once
        # instead of six (256^2: ~0.7 GB instead of ~2.1 GB).
        g_vars = self.optimizer_variables()[0][1]
        parts = [lambda a, b: self._cycle_terms_a(a, True),
                 lambda a, b: self._cycle_terms_b(b, True)]
        if self.lambda_identity > 0:
            parts.append(lambda a, b: (self._identity_terms(a, b, True), None))
        grads, part_terms, extras = self.sequential_gradients(
            parts, [real_a, real_b], g_vars, self.g_optimizer, global_batch)
        self.apply_computed_gradients(grads, g_vars, self.g_optimizer)
        fake_b, fake_a = extras[0], extras[1]
        g_terms = {name: part_terms[name] for name in
                   ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B") if name in part_terms}

        pooled_a = self.pool_a.query(fake_a, seeds[0])
        pooled_b = self.pool_b.query(fake_b, seeds[1])
        d_vars = self.optimizer_variables()[1][1]
        with tf.GradientTape() as tape:
            d_terms = {
                "D_A": self._discriminator_loss(self.discriminator_b, real_b, pooled_b, seeds[2]),
                "D_B": self._discriminator_loss(self.discriminator_a, real_a, pooled_a, seeds[3]),
            }
            d_loss = losses.reduce_global(d_terms["D_A"] + d_terms["D_B"], global_batch)
        self.apply_gradients(tape, d_loss, d_vars, self.d_optimizer)

        logs = {name: tf.reduce_mean(value) for name, value in {**g_terms, **d_terms}.items()}
        logs["lr"] = lr
        return logs

    def test_step(self, data):
        real_a, real_b = data
        g_terms, fake_a, fake_b = self._generator_losses(real_a, real_b, training=False)
        d_terms = {
            "D_A": losses.discriminator_loss(self.discriminator_b(real_b), self.discriminator_b(fake_b),
                                             self.gan_mode),
            "D_B": losses.discriminator_loss(self.discriminator_a(real_a), self.discriminator_a(fake_a),
                                             self.gan_mode),
        }
        return {name: tf.reduce_mean(value) for name, value in {**g_terms, **d_terms}.items()}

    def translate(self, real_a, real_b):
        """Images for the TensorBoard grid: A -> G_A(A) -> G_B(G_A(A)) and the B side."""
        fake_b = self.generator_ab(real_a, training=False)
        fake_a = self.generator_ba(real_b, training=False)
        return {"A": [real_a, fake_b, self.generator_ba(fake_b, training=False)],
                "B": [real_b, fake_a, self.generator_ab(fake_a, training=False)]}

    def generators(self):
        """The generators to export, by direction."""
        return {"AtoB": self.generator_ab, "BtoA": self.generator_ba}


def build_cyclegan(generator="resnet_9blocks", discriminator="basic", ngf=64, ndf=64,
                   n_layers_d=3, norm="instance", use_dropout=False, init_type="normal",
                   init_gain=0.02, gan_mode="lsgan", lambda_a=10.0, lambda_b=10.0,
                   lambda_identity=0.5, pool_size=50, lr=2e-4, beta_1=0.5, epochs=100,
                   epochs_decay=100, steps_per_epoch=1000, crop_size=256, jit_compile=False,
                   spectral_norm=False, upsample="transpose", lambda_gan=1.0, residual=False,
                   **generator_options):
    """Builds and compiles a CycleGAN trainer with the reference's defaults.

    Args:
        generator, discriminator: registry names (``--generator``, ``--discriminator``).
        ngf, ndf, n_layers_d, norm, use_dropout, init_type, init_gain: network options.
        gan_mode, lambda_a, lambda_b, lambda_identity, pool_size: loss options.
        lambda_gan: weight of the adversarial terms of both generators (``--lambda_gan``).
        lr, beta_1: Adam settings, shared by both optimizers.
        epochs, epochs_decay, steps_per_epoch: the linear-decay schedule.
        crop_size: training crop side (the pool stores crops); None for varying sizes.
        jit_compile: compile the train step with XLA.
        spectral_norm: spectral normalisation in the discriminators.
        upsample: generator upsampling (``transpose``, ``pixel_shuffle``, ``resize``).
        residual: generators output ``clip(input + correction)`` (``--residual``; off in
            the reference).
        **generator_options: extra generator builder options.

    Returns:
        A compiled ``CycleGAN``. Call it inside a strategy scope to distribute it.
    """
    def make_generator(name):
        options = dict(ngf=ngf, norm=norm, use_dropout=use_dropout, init_type=init_type,
                       init_gain=init_gain, residual=residual, **generator_options)
        if generator.startswith("resnet"):
            options["upsample"] = upsample
        model = build_generator(generator, **options)
        return keras.Model(model.inputs[0], model.outputs[0], name=name)

    def make_discriminator(name):
        model = build_discriminator(discriminator, 3, ndf, n_layers_d, norm, init_type,
                                    init_gain, spectral_norm)
        return keras.Model(model.inputs[0], model.outputs[0], name=name)

    image_shape = None if crop_size is None else (crop_size, crop_size, 3)
    trainer = CycleGAN(make_generator("G_A"), make_generator("G_B"),
                       make_discriminator("D_B"), make_discriminator("D_A"),
                       lambda_a=lambda_a, lambda_b=lambda_b, lambda_identity=lambda_identity,
                       gan_mode=gan_mode, pool_size=pool_size, image_shape=image_shape,
                       lambda_gan=lambda_gan)
    schedule = lambda: LinearDecay(lr, epochs, epochs_decay, steps_per_epoch)
    trainer.compile(g_optimizer=adam(schedule(), beta_1), d_optimizer=adam(schedule(), beta_1),
                    jit_compile=jit_compile)
    return trainer
