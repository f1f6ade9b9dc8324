"""``TrainConfig``: everything one training run needs, as plain data. Field names and defaults
are the PyTorch reference's options in snake_case; ``kgan/cli/flags.py`` defines the ``kgan.train``
flags from these defaults (one source of truth) and the CLI turns parsed flags into a
``TrainConfig``. Library users build one directly::

    from kgan.recipes import TrainConfig, train
    train(TrainConfig(model="pix2pix", dataroot="facades", output_dir="runs/facades"))

Per-model defaults (pix2pix: unet_256, batch norm, dropout, vanilla GAN, no pool; restore:
batch norm, pixel shuffle, Adam(1e-3, 0.9, 0.99)) apply to the fields a caller did not set, as
the reference does (``with_model_defaults``).

Called by kgan.recipes, kgan.cli.flags, kgan.cli.train and kgan.benchmarking.bench.
"""

import dataclasses
from typing import Optional, Sequence

from kgan.recipes import registry
from kgan.serving import runs

PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
RESTORE_PHASES = ("pretrain_g", "pretrain_d", "gan", "nogan")

@dataclasses.dataclass
class TrainConfig:
    """One training run. See ``python -m kgan.train --help`` for each field's meaning."""

    # What to train.
    model: str = "cycle_gan"
    generator: str = "resnet_9blocks"
    discriminator: str = "basic"
    n_layers_d: int = 3
    ngf: int = 64
    ndf: int = 64
    norm: str = "instance"
    init_type: str = "normal"
    init_gain: float = 0.02
    no_dropout: bool = True
    upsample: str = "transpose"
    spectral_norm: bool = False
    # Losses.
    gan_mode: str = "lsgan"
    lambda_cycle: float = 10.0
    lambda_A: Optional[float] = None  # noqa: N815 (the reference's name)
    lambda_B: Optional[float] = None  # noqa: N815
    lambda_identity: float = 0.5
    lambda_l1: float = 100.0
    lambda_gp: float = 10.0
    lambda_gan: float = 1.0
    pool_size: int = 50
    # Optimisation.
    lr: float = 2e-4
    beta_1: float = 0.5
    beta_2: float = 0.999
    epochs: int = 100
    epochs_decay: int = 100
    steps_per_epoch: Optional[int] = None
    max_steps: Optional[int] = None
    batch_size: int = 1
    seed: Optional[int] = None
    init_from: Optional[str] = None
    # Data.
    dataroot: Optional[str] = None
    tfds_name: Optional[str] = None
    tfds_data_dir: Optional[str] = None
    preprocess: str = "resize_and_crop"
    load_size: Optional[int] = 286
    crop_size: int = 256
    no_flip: bool = False
    max_dataset_size: Optional[int] = None
    serial_batches: bool = False
    direction: str = "AtoB"
    # Restoration (NoGAN).
    phase: str = "nogan"
    degradations: Sequence[str] = ("downscale", "jpeg")
    content_loss: str = "auto"
    vgg_weights: str = "imagenet"
    perceptual_preset: str = "fastai"
    self_attention: bool = True
    critic_nf: int = 64
    critic_thresh: float = 0.65
    weights_gen: Sequence[float] = (1.0, 50.0)
    unet_downs: Optional[int] = None
    encoder: str = "none"
    encoder_weights: str = "imagenet"
    encoder_alpha: float = 1.0
    decoder_convs: int = 1
    freeze_encoder_steps: int = 0
    residual: bool = False
    gan_lr: float = 1e-4
    eval_size: int = 256
    critic_lr_mult: float = 5.0
    pretrain_g_steps: int = 300
    pretrain_d_steps: int = 60
    gan_steps: int = 60
    # Output, logging, checkpoints.
    output_dir: str = "runs/experiment"
    save_freq: int = 500
    display_freq: int = 400
    print_freq: int = 100
    keep_checkpoints: int = 3
    export_dir: Optional[str] = None
    evaluate: bool = True
    verbose: int = 1
    # Scale.
    distribution: str = "default"
    devices: Optional[Sequence[str]] = None
    tpu: Optional[str] = None
    driver: str = "auto"
    mixed_precision: str = "float32"
    jit_compile: bool = False

    @property
    def lambda_a(self):
        """The A -> B -> A cycle weight (``lambda_A``, default ``lambda_cycle``)."""
        return self.lambda_A if self.lambda_A is not None else self.lambda_cycle

    @property
    def lambda_b(self):
        """The B -> A -> B cycle weight (``lambda_B``, default ``lambda_cycle``)."""
        return self.lambda_B if self.lambda_B is not None else self.lambda_cycle


DEFAULTS = TrainConfig()
FIELD_NAMES = tuple(field.name for field in dataclasses.fields(TrainConfig))


def with_model_defaults(config, explicit=()):
    """Returns ``config`` with its model's registered defaults (kgan.recipes.registry) applied
    to the fields not in ``explicit`` (the names a user set).

    Args:
        config: a ``TrainConfig``.
        explicit: names of fields the user set (command-line flags, keyword arguments).
    """
    changes = {name: value for name, value in registry.model_defaults(config.model).items()
               if name not in explicit}
    return dataclasses.replace(config, **changes)


def make_config(**fields):
    """A ``TrainConfig`` from keyword arguments with the per-model defaults for the rest:
    ``make_config(model="pix2pix")`` uses unet_256 and batch norm, as the reference."""
    return with_model_defaults(TrainConfig(**fields), explicit=fields)


def _parse_value(text, default):
    """A flagfile value as the type of ``default`` (None defaults: int, float or str)."""
    if isinstance(default, bool):
        return text.lower() in ("1", "true", "yes")
    if isinstance(default, (tuple, list)):
        items = [item for item in text.split(",") if item]
        return tuple(float(i) for i in items) if default and isinstance(default[0], float) \
            else tuple(items)
    for kind in ((type(default),) if default is not None else (int, float)):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_flagfile(path):
    """The ``TrainConfig`` a run's ``flags.cfg`` (written by kgan.train) describes.

    Args:
        path: the flagfile (``--name=value``, ``--name`` / ``--noname`` for booleans; lines
            starting with ``#`` and unknown names are ignored).

    Returns:
        A ``TrainConfig`` (per-model defaults for the fields the file does not set).
    """
    values = {}
    for name, text in runs.read_flags(path).items():
        if text is None:
            negated = name.startswith("no") and name[2:] in FIELD_NAMES
            name, text = (name[2:], "false") if negated else (name, "true")
        if name in FIELD_NAMES:
            values[name] = _parse_value(text, getattr(DEFAULTS, name))
    return make_config(**values)

