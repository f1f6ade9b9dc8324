"""Recipes: one module per model (cycle_gan, pix2pix, restore, colorize), each registering
itself (kgan.recipes.registry) and turning a ``TrainConfig``
into a dataset, a compiled trainer and trained generators. ``train(config)`` runs a whole job:
validation, seeds, precision policy, strategy, the recipe, then ``samples.png``, the
generators and (``export_dir``) a verified export.

Called by kgan.cli.train and kgan.benchmarking.bench; usable from Python (``train``'s
example).
"""

import os

import keras
from absl import logging

from kgan.colorization.colorizer import render_factor_for_eval_size
from kgan.core.errors import UsageError
from kgan.data.images import write_image
from kgan.exporting import export as kexport
from kgan.recipes import colorize, cycle_gan, pix2pix, registry, reporting, restore
from kgan.recipes.common import validate
from kgan.recipes.config import (
    DEFAULTS,
    FIELD_NAMES,
    TrainConfig,
    make_config,
    with_model_defaults,
)
from kgan.serving import runs
from kgan.training import callbacks as kcallbacks
from kgan.training import distribute

# Importing each recipe module registers it (kgan.recipes.registry).
_REGISTERED = (cycle_gan, pix2pix, restore, colorize)
__all__ = ["DEFAULTS", "FIELD_NAMES", "TrainConfig", "get_recipe", "make_config", "train",
           "with_model_defaults"]


def get_recipe(model):
    """The recipe module registered as ``model`` (kgan.recipes.registry)."""
    return registry.get(model).load()


def setup(config):
    """Validates ``config``, seeds, sets the precision policy and builds the strategy.

    Returns:
        The ``tf.distribute`` strategy.
    """
    validate(config)
    if config.seed is not None:
        keras.utils.set_random_seed(config.seed)
    keras.mixed_precision.set_global_policy(config.mixed_precision)
    strategy = distribute.get_strategy(config.distribution, config.devices, config.tpu)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise UsageError(f"--batch_size={config.batch_size} (the global batch) must be a "
                         f"multiple of the {replicas} replicas.")
    return strategy


def export_generators(generators, export_dir, render_factor=None):
    """Exports each generator with kgan.exporting.export (SavedModel + verified TFLite) to
    ``export_dir/<name>/``, the layout of ``python -m kgan.export`` (``render_factor``: a
    colouriser's recommended one, recorded in its manifest)."""
    manifests = {}
    for name, model in generators.items():
        target = os.path.join(export_dir, name)
        manifests[name] = kexport.export_generator(model, os.path.abspath(target),
                                                   overwrite=True, render_factor=render_factor)
        logging.info("Exported %s to %s", name, target)
    return manifests


def train(config, strategy=None):
    """Runs one training job (resuming from its checkpoints when there are any).

    Args:
        config: a ``TrainConfig`` (per-model defaults already applied; see ``make_config``).
        strategy: a strategy to use instead of the one ``config.distribution`` names.

    Returns:
        The trainer.

    Example:

    >>> from kgan.recipes import make_config, train
    >>> config = make_config(model="cycle_gan", ngf=8, ndf=8, load_size=36, crop_size=32,
    ...                      max_steps=2, evaluate=False, verbose=0, output_dir="runs/tiny")
    >>> trainer = train(config)  # doctest: +ELLIPSIS
    kgan: report runs/tiny/report.html
    >>> sorted(os.listdir("runs/tiny/generators"))
    ['AtoB.keras', 'BtoA.keras']
    """
    strategy = strategy or setup(config)
    trainer, sample, generators = get_recipe(config.model).train(config, strategy)
    if distribute.is_chief(strategy):
        write_image(os.path.join(config.output_dir, "samples.png"),
                    kcallbacks.image_grid(list(trainer.translate(*sample).values())))
        runs.save_generators(generators, config.output_dir)
        page = reporting.write_report_safely(config, generators)
        if page:
            print(f"kgan: report {page}")
        if config.export_dir:
            export_generators(generators, config.export_dir,
                              render_factor_for_eval_size(config.eval_size))
    return trainer
