"""Network builders and the name registry the CLIs use (``--generator``, ``--discriminator``)."""

from kgan.models.colorize import (
    LumaChromaMerge,
    colorization_generator,
    is_colorization_model,
)
from kgan.models.common import size_multiple
from kgan.models.deoldify import (
    GENERATOR_NAMES as DEOLDIFY_GENERATORS,
)
from kgan.models.deoldify import (
    DeOldifyOutput,
    deoldify_generator,
    is_deoldify_model,
    raw_network,
)
from kgan.models.discriminators import (
    critic,
    patchgan_discriminator,
    pixel_discriminator,
)
from kgan.models.encoders import (
    ENCODERS,
    EncoderWeightsMissingError,
    ImageNetPreprocess,
    build_encoder,
    resolve_encoder_weights,
)
from kgan.models.generators import (
    encoder_unet_generator,
    resnet_generator,
    unet_generator,
)

GENERATORS = ("resnet_9blocks", "resnet_6blocks", "unet_128", "unet_256")
# DeOldify's colourisers (kgan.models.deoldify); kgan.convert converts their published files.
ALL_GENERATORS = GENERATORS + DEOLDIFY_GENERATORS
DISCRIMINATORS = ("basic", "n_layers", "pixel")


def build_generator(name, ngf=64, norm="instance", use_dropout=False, init_type="normal",
                    init_gain=0.02, input_channels=3, output_channels=3, **options):
    """Builds a generator by its reference name (``--generator`` / ``--netG``).

    Args:
        name: ``resnet_9blocks``, ``resnet_6blocks``, ``unet_128`` or ``unet_256``; or
            ``deoldify_artistic``, ``deoldify_stable``, ``deoldify_video`` (DeOldify's
            colourisers, ``kgan.models.deoldify.deoldify_generator``: the reference's flags do
            not apply; ``**options`` go to that builder, e.g. ``spectral_norm``).
        ngf, norm, use_dropout, init_type, init_gain: as the reference's flags.
        input_channels, output_channels: image channels.
        **options: extra builder options (e.g. ``upsample``, ``self_attention``, ``y_range``).

    Returns:
        A ``keras.Model``.
    """
    if name in DEOLDIFY_GENERATORS:
        return deoldify_generator(name, **options)
    common = dict(ngf=ngf, norm=norm, use_dropout=use_dropout, init_type=init_type,
                  init_gain=init_gain, input_channels=input_channels,
                  output_channels=output_channels, **options)
    if name == "resnet_9blocks":
        return resnet_generator(n_blocks=9, **common)
    if name == "resnet_6blocks":
        return resnet_generator(n_blocks=6, **common)
    if name == "unet_128":
        return unet_generator(num_downs=7, **common)
    if name == "unet_256":
        return unet_generator(num_downs=8, **common)
    raise ValueError(f"Unknown generator {name!r}; use one of {', '.join(ALL_GENERATORS)}.")


def build_discriminator(name, in_channels=3, ndf=64, n_layers_d=3, norm="instance",
                        init_type="normal", init_gain=0.02, spectral_norm=False):
    """Builds a discriminator by its reference name (``--discriminator`` / ``--netD``).

    Args:
        name: ``basic`` (70x70 PatchGAN), ``n_layers`` (PatchGAN with ``n_layers_d``) or
            ``pixel`` (1x1 PatchGAN).
        in_channels: input channels (6 for pix2pix).
        ndf, n_layers_d, norm, init_type, init_gain: as the reference's flags.
        spectral_norm: spectral normalisation on every conv.

    Returns:
        A ``keras.Model`` producing float32 logits.
    """
    if name == "basic":
        n_layers_d = 3
    if name in ("basic", "n_layers"):
        return patchgan_discriminator(in_channels, ndf, n_layers_d, norm, spectral_norm,
                                      init_type, init_gain)
    if name == "pixel":
        return pixel_discriminator(in_channels, ndf, norm, init_type, init_gain,
                                   spectral_norm=spectral_norm)
    raise ValueError(f"Unknown discriminator {name!r}; use one of {', '.join(DISCRIMINATORS)}.")


__all__ = [
    "ALL_GENERATORS",
    "DEOLDIFY_GENERATORS",
    "DISCRIMINATORS",
    "ENCODERS",
    "GENERATORS",
    "DeOldifyOutput",
    "EncoderWeightsMissingError",
    "ImageNetPreprocess",
    "LumaChromaMerge",
    "build_discriminator",
    "build_encoder",
    "build_generator",
    "colorization_generator",
    "critic",
    "deoldify_generator",
    "encoder_unet_generator",
    "is_colorization_model",
    "is_deoldify_model",
    "patchgan_discriminator",
    "pixel_discriminator",
    "raw_network",
    "resnet_generator",
    "resolve_encoder_weights",
    "size_multiple",
    "unet_generator",
]
