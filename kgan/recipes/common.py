"""What every recipe shares: validating a ``TrainConfig``, the data options of the dataset
builders, the loop options, and the first batch kept for image grids.

Called by the recipe modules (kgan.recipes.cycle_gan, pix2pix, restore) and kgan.recipes.train.
"""

import dataclasses
import os

from kgan.core.errors import UsageError
from kgan.data.folders import resolve_seed
from kgan.interop.init_from import describe, init_from_folder, trainer_networks
from kgan.models import size_multiple
from kgan.models.layers import SizeCheck
from kgan.training.loop import LoopOptions, train_loop


@dataclasses.dataclass
class RecipeParts:
    """A built training job.

    Attributes:
        trainer: the compiled trainer (built in the strategy's scope).
        dataset_at: ``step -> the repeating, batched training dataset after step steps``
            (``dataset_at``), what ``train_loop`` takes.
        sample: a fixed batch (tuple of tensors, at most 4 images) for image grids.
        steps_per_epoch: steps in one epoch.
        end_step: the step the run trains to.
        run_dir: where the trainer's checkpoints and logs go.
    """

    trainer: object
    dataset_at: object
    sample: tuple
    steps_per_epoch: int
    end_step: int
    run_dir: str


def validate(config):
    """Raises one clear ``UsageError`` for inconsistent options."""
    if config.dataroot and config.tfds_name:
        raise UsageError("Give --dataroot or --tfds_name, not both.")
    if config.dataroot and not os.path.isdir(config.dataroot):
        raise UsageError(f"--dataroot={config.dataroot} is not a folder. Point it at the dataset "
                         "root (with trainA/ and trainB/ for cycle_gan, train/ for pix2pix).")
    if (config.preprocess in ("resize_and_crop", "scale_width_and_crop") and config.load_size
            and config.crop_size > config.load_size):
        raise UsageError(f"--crop_size={config.crop_size} is larger than --load_size="
                         f"{config.load_size}; use --crop_size <= --load_size.")
    if config.batch_size < 1:
        raise UsageError("--batch_size must be at least 1.")
    for name in ("save_freq", "display_freq", "print_freq"):
        if getattr(config, name) < 1:
            raise UsageError(f"--{name} must be at least 1.")
    if config.max_steps is not None and config.max_steps < 1:
        raise UsageError("--max_steps must be at least 1.")


def check_crop_size(config, generator):
    """Raises a ``UsageError`` naming ``--crop_size`` and ``--generator`` when the training crops
    do not fit the generator (a UNet needs multiples of 2**depth), instead of Keras' error from
    inside the first step."""

    if config.preprocess not in ("resize_and_crop", "crop", "scale_width_and_crop"):
        return
    multiple = size_multiple(generator)
    minimum = max([layer.minimum or 0 for layer in generator.layers
                   if isinstance(layer, SizeCheck)] + [multiple])
    crop = config.crop_size
    if crop % multiple or crop < minimum:
        fit = max(minimum, crop // multiple * multiple)
        raise UsageError(
            f"--crop_size={crop} does not fit --generator={config.generator}: it needs image "
            f"sides that are multiples of {multiple} (at least {minimum} pixels). Use "
            f"--crop_size={fit}, or a generator for smaller crops (unet_128 takes multiples "
            "of 128, resnet_9blocks/resnet_6blocks multiples of 4).")


def data_options(config):
    """The options shared by every dataset builder (an unset seed drawn here, once, so every
    later position of the stream is the same run's)."""
    return dict(preprocess=config.preprocess, load_size=config.load_size,
                crop_size=config.crop_size, no_flip=config.no_flip,
                max_dataset_size=config.max_dataset_size, serial_batches=config.serial_batches,
                batch_size=config.batch_size, seed=resolve_seed(config.seed))


def dataset_at(build, batch_size):
    """The training data as ``train_loop`` takes it: ``step -> dataset after step steps``.

    tf.data streams start at their first element whenever they are iterated anew, which a
    resumed run and each ``fit`` segment do; this builds the stream ``step * batch_size``
    examples in (the builders skip indices, not images), so the images, crops and
    degradations continue exactly as in an uninterrupted run. The dataset is built anew
    even at step 0: a reshuffling dataset that was iterated before (e.g. for the sample
    batch) gives another order on its next pass.

    Args:
        build: ``start -> dataset``, a dataset builder with every option fixed but ``start``
            (examples consumed); its seed must be fixed too.
        batch_size: the global batch size.

    Returns:
        A function ``step -> tf.data.Dataset``.
    """

    def at(step):
        return build(step * batch_size)

    return at


def loop_options(config):
    """The ``LoopOptions`` of a config."""
    return LoopOptions(save_freq=config.save_freq, print_freq=config.print_freq,
                       display_freq=config.display_freq,
                       keep_checkpoints=config.keep_checkpoints, verbose=config.verbose,
                       driver=config.driver, jit_compile=config.jit_compile)


def initialize_from(config, trainer, run_dir, networks=None):
    """Loads ``config.init_from`` weights into a new run's networks (kgan.interop.init_from) and
    prints one line saying what was loaded and what starts fresh; a run that resumes from its
    own checkpoint ignores it (one line says so), as the reference's ``--continue_train``.

    Args:
        config: a ``TrainConfig``.
        trainer: a CycleGAN or pix2pix trainer (its networks: ``trainer_networks``).
        run_dir: the run folder whose ``checkpoints/`` decide whether the run resumes.
        networks: instead of the trainer's, ``{reference name: model}`` (the restoration
            recipes: ``{"G": generator}``).

    Returns:
        ``{reference name: file loaded}``, or None when there is nothing to load.
    """
    import tensorflow as tf

    if not config.init_from:
        return None
    if tf.train.latest_checkpoint(os.path.join(run_dir, "checkpoints")):
        print(f"kgan: --init_from={config.init_from} ignored: the run resumes from its own "
              "checkpoint.")
        return None
    if networks is None:
        if config.model not in ("cycle_gan", "pix2pix"):
            raise UsageError(f"--init_from works with --model=cycle_gan, pix2pix, restore or "
                             f"colorize, not {config.model}.")
        networks = trainer_networks(trainer)
    try:
        loaded = init_from_folder(config.init_from, networks,
                                  model="cycle_gan" if "G_A" in networks else "pix2pix",
                                  strict=False)
    except FileNotFoundError as error:
        raise UsageError(str(error)) from error
    print("kgan: " + describe(config.init_from, loaded, networks))
    return loaded


def first_batch(dataset, size=4):
    """The first batch of ``dataset``, each tensor cut to ``size`` images (for image grids)."""
    return tuple(t[:size] for t in next(iter(dataset.take(1))))


def train_parts(parts, config, strategy):
    """Trains a single-trainer recipe's ``RecipeParts`` to its end step (resuming).

    Returns:
        ``(trainer, sample batch, the trainer's generators)``.
    """

    train_loop(parts.trainer, parts.dataset_at, strategy, parts.run_dir, parts.steps_per_epoch,
               parts.end_step, loop_options(config), parts.sample, config.batch_size)
    return parts.trainer, parts.sample, parts.trainer.generators()
