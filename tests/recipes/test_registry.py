"""Every registered model's defaults (kgan.recipes.registry, each recipe's MODEL_DEFAULTS) fit
each other: ``kgan.train --model=X --dataroot=DIR`` with nothing else set passes the recipe's
checks (validate, and check_crop_size on the generator the recipe builds)."""

import dataclasses
import tempfile

import tensorflow as tf

from kgan.models import build_generator
from kgan.recipes import colorize, make_config, registry, restore
from kgan.recipes.common import check_crop_size, validate

# How each recipe builds its generator from a config (ngf shrunk: the sizes are what count).
GENERATORS = {
    "cycle_gan": lambda c: build_generator(c.generator, ngf=c.ngf, norm=c.norm,
                                           use_dropout=not c.no_dropout),
    "pix2pix": lambda c: build_generator(c.generator, ngf=c.ngf, norm=c.norm,
                                         use_dropout=not c.no_dropout),
    "restore": restore.restoration_generator,
    "colorize": colorize.colorization_model,
}


class ModelDefaultsTest(tf.test.TestCase):

    def test_every_registered_model_s_defaults_pass_its_checks(self):
        self.assertCountEqual(registry.names(), GENERATORS)
        dataroot = tempfile.mkdtemp()
        for name in registry.names():
            with self.subTest(model=name):
                config = make_config(model=name, dataroot=dataroot)
                validate(config)
                generator = GENERATORS[name](dataclasses.replace(config, ngf=4))
                check_crop_size(config, generator)
