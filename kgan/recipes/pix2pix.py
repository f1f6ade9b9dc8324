"""The pix2pix recipe: paired data (A|B side by side, or trainA/trainB with the same names)
and the pix2pix trainer (UNet generator, PatchGAN on the pair, GAN + lambda_L1 * L1), from a
``TrainConfig``.

Called by kgan.recipes.train (training) and kgan.benchmarking.bench (timing a step).
"""

from absl import logging

from kgan.data import paired_dataset
from kgan.models import build_discriminator, build_generator
from kgan.recipes import registry
from kgan.recipes.common import (
    RecipeParts,
    check_crop_size,
    data_options,
    dataset_at,
    first_batch,
    initialize_from,
    train_parts,
)
from kgan.training.loop import end_step_for
from kgan.training.schedules import LinearDecay
from kgan.training.trainers.base import adam
from kgan.training.trainers.pix2pix import Pix2Pix


def build(config, strategy):
    """Builds the paired dataset and the compiled pix2pix trainer in ``strategy``'s scope.

    Returns:
        A ``RecipeParts``.
    """
    options = dict(dataroot=config.dataroot, direction=config.direction, **data_options(config))
    dataset, info = paired_dataset(**options)
    logging.info("Data: %s (%d pairs, %d skipped)", info.source, info.num_a, info.skipped)
    steps_per_epoch = config.steps_per_epoch or info.steps_per_epoch
    with strategy.scope():
        generator = build_generator(config.generator, ngf=config.ngf, norm=config.norm,
                                    use_dropout=not config.no_dropout,
                                    init_type=config.init_type, init_gain=config.init_gain,
                                    residual=config.residual)
        check_crop_size(config, generator)
        discriminator = build_discriminator(config.discriminator, 6, config.ndf,
                                            config.n_layers_d, config.norm, config.init_type,
                                            config.init_gain, config.spectral_norm)
        trainer = Pix2Pix(generator, discriminator, lambda_l1=config.lambda_l1,
                          gan_mode=config.gan_mode, lambda_gp=config.lambda_gp)

        def schedule():
            return LinearDecay(config.lr, config.epochs, config.epochs_decay, steps_per_epoch)

        trainer.compile(g_optimizer=adam(schedule(), config.beta_1, config.beta_2),
                        d_optimizer=adam(schedule(), config.beta_1, config.beta_2),
                        jit_compile=config.jit_compile)
    initialize_from(config, trainer, config.output_dir)
    end = end_step_for(steps_per_epoch, config.epochs + config.epochs_decay, config.max_steps)
    at = dataset_at(lambda start: paired_dataset(**options, start=start)[0], config.batch_size)
    return RecipeParts(trainer, at, first_batch(dataset), steps_per_epoch, end,
                       config.output_dir)


def train(config, strategy):
    """Trains (or resumes) a pix2pix run.

    Returns:
        ``(trainer, sample batch, {"generator": G})``.
    """
    return train_parts(build(config, strategy), config, strategy)


# The fields whose defaults differ for this model (applied where the user set none).
MODEL_DEFAULTS = dict(generator="unet_256", norm="batch", no_dropout=False, gan_mode="vanilla",
                    pool_size=0, lambda_l1=100.0)
registry.register("pix2pix", __name__, MODEL_DEFAULTS, "pix2pix: paired translation (Isola et al.)")
