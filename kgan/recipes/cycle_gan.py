"""The CycleGAN recipe: unpaired data (folders, TFDS or the built-in sample task) and the
reference's CycleGAN trainer (kgan.training.trainers.cyclegan), from a ``TrainConfig``.

Called by kgan.recipes.train (training) and kgan.benchmarking.bench (timing a step).
"""

from absl import logging

from kgan.data import unpaired_dataset
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
from kgan.training.trainers.cyclegan import build_cyclegan

CROPPING_PREPROCESS = ("resize_and_crop", "crop", "scale_width_and_crop")


def build(config, strategy):
    """Builds the dataset and the compiled CycleGAN trainer in ``strategy``'s scope.

    Returns:
        A ``RecipeParts``.
    """
    options = dict(dataroot=config.dataroot, tfds_name=config.tfds_name,
                   tfds_data_dir=config.tfds_data_dir, **data_options(config))
    dataset, info = unpaired_dataset(**options)
    logging.info("Data: %s (A: %d, B: %d images, %d skipped)", info.source, info.num_a,
                 info.num_b, info.skipped)
    steps_per_epoch = config.steps_per_epoch or info.steps_per_epoch
    crops = config.preprocess in CROPPING_PREPROCESS
    with strategy.scope():
        trainer = build_cyclegan(
            generator=config.generator, discriminator=config.discriminator, ngf=config.ngf,
            ndf=config.ndf, n_layers_d=config.n_layers_d, norm=config.norm,
            use_dropout=not config.no_dropout, init_type=config.init_type,
            init_gain=config.init_gain, gan_mode=config.gan_mode, lambda_a=config.lambda_a,
            lambda_b=config.lambda_b, lambda_identity=config.lambda_identity,
            pool_size=config.pool_size, lr=config.lr, beta_1=config.beta_1,
            epochs=config.epochs, epochs_decay=config.epochs_decay,
            steps_per_epoch=steps_per_epoch, crop_size=config.crop_size if crops else None,
            jit_compile=config.jit_compile, spectral_norm=config.spectral_norm,
            upsample=config.upsample, lambda_gan=config.lambda_gan, residual=config.residual)
    check_crop_size(config, trainer.generator_ab)
    initialize_from(config, trainer, config.output_dir)
    end = end_step_for(steps_per_epoch, config.epochs + config.epochs_decay, config.max_steps)
    at = dataset_at(lambda start: unpaired_dataset(**options, start=start)[0], config.batch_size)
    return RecipeParts(trainer, at, first_batch(dataset), steps_per_epoch, end,
                       config.output_dir)


def train(config, strategy):
    """Trains (or resumes) a CycleGAN run.

    Returns:
        ``(trainer, sample batch, {"AtoB": G_A, "BtoA": G_B})``.
    """
    return train_parts(build(config, strategy), config, strategy)


# The fields whose defaults differ for this model (applied where the user set none).
MODEL_DEFAULTS = dict(generator="resnet_9blocks", norm="instance", no_dropout=True, gan_mode="lsgan",
                      pool_size=50)
registry.register("cycle_gan", __name__, MODEL_DEFAULTS, "CycleGAN: unpaired translation (Zhu et al.)")
