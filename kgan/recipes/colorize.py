"""The colourisation recipe: DeOldify's NoGAN (kgan.recipes.restore's phases) on (gray, colour)
pairs made on the fly from colour photos, optionally with extra degradations on the input only
(``degradations=jpeg,noise,blur`` on top of gray, for real scans). The generator predicts chroma
only; its RGB output is rebuilt from the input's own luma (kgan.models.colorize), so the photo's
detail survives exactly. GAN checkpoints are picked by a colour-aware score (mean CIEDE2000
plus a colourfulness-ratio penalty; PSNR would pick the grayest one) on held-out colour photos.

Called by kgan.recipes.train and kgan.benchmarking.bench.
"""

from kgan.colorization.scoring import (
    evaluate_colorization_model,
    load_color_photos,
    pick_best_colour_checkpoint,
)
from kgan.core.errors import UsageError
from kgan.colorization.colorizer import render_factor_for_eval_size
from kgan.data.colorize import colorization_dataset
from kgan.data.samples import sample_color_photos
from kgan.interop.torchvision_bodies import load_body_weights, resolve_body_weights
from kgan.metrics import color as color_metrics
from kgan.models import DEOLDIFY_GENERATORS, colorization_generator, deoldify_generator
from kgan.models.deoldify import VARIANTS as DEOLDIFY_VARIANTS
from kgan.models.deoldify_critic import deoldify_critic
from kgan.recipes import registry, restore
from kgan.recipes.restore import NoGANSpec

# Held-out photos are scored at render factor eval_size // 16 (DeOldify renders at 16 * N px).


def colorization_data(config, phase, seed=None, start=0):
    """(gray, colour) pairs: random crops for training, a fixed tile grid for ``test``."""

    extra = tuple(d for d in config.degradations if d != "grayscale")
    if phase == "train":
        return colorization_dataset(
            dataroot=config.dataroot, phase="train", degradations=extra,
            crop_size=config.crop_size, load_size=config.load_size, no_flip=config.no_flip,
            batch_size=config.batch_size, seed=config.seed if seed is None else seed,
            max_dataset_size=config.max_dataset_size, start=start)
    return colorization_dataset(
        dataroot=config.dataroot, phase="test", degradations=extra, crop_size=config.eval_size,
        load_size=None, no_flip=True, batch_size=1,
        seed=config.seed if config.seed is not None else 0, repeat=False)


def colorization_model(config, encoder_weights=None, freeze_encoder=False):
    """The luma-preserving colourisation UNet (plain, or on an ``encoder`` body); with
    ``--generator=deoldify_*`` DeOldify's own network (kgan.models.deoldify) with spectral norm
    in the decoder as DeOldify trains it, ``--ngf`` as the ResNet body's width (64 as
    DeOldify's); it predicts RGB, and DeOldify's pipeline keeps the photo's luma at inference."""
    if config.generator in DEOLDIFY_GENERATORS:
        generator = deoldify_generator(config.generator, width=config.ngf, spectral_norm=True)
        if encoder_weights:  # torchvision's ImageNet ResNet (deoldify_body_weights)
            load_body_weights(generator, encoder_weights)
        return generator
    common = dict(ngf=config.ngf, norm=config.norm, self_attention=config.self_attention,
                  upsample=config.upsample, last_cross=True, init_type="kaiming")
    if config.encoder != "none":
        return colorization_generator(
            encoder=config.encoder, encoder_weights=encoder_weights, alpha=config.encoder_alpha,
            decoder_convs=config.decoder_convs, freeze_encoder=freeze_encoder, **common)
    downs = config.unet_downs or restore.UNET_DOWNS.get(config.generator)
    if downs is None:
        raise UsageError(
            f"--model=colorize needs a UNet: --generator=unet_128|unet_256 or --unet_downs=N "
            f"(got --generator={config.generator}).")
    return colorization_generator(num_downs=downs, use_dropout=not config.no_dropout, **common)


def deoldify_body_weights(config):
    """``--encoder_weights`` for a DeOldify generator: torchvision's ImageNet ResNet-34 /
    ResNet-101 file (kgan.interop.torchvision_bodies), or None (also with ``--init_from``,
    whose generator replaces the whole network, body included)."""
    if config.init_from:
        return None
    arch = DEOLDIFY_VARIANTS[config.generator.removeprefix("deoldify_")]["arch"]
    return resolve_body_weights(arch, config.encoder_weights)


def colorization_critic(config):
    """DeOldify's own critic (``custom_gan_critic``, nf ``--critic_nf``) for DeOldify's
    generators; None (the recipe's fastai-style critic) otherwise."""
    return deoldify_critic(nf=config.critic_nf)


def _photos(config):
    return load_color_photos(config.dataroot)


def _train_uv(config):
    return None if config.dataroot else color_metrics.mean_uv(sample_color_photos("train"))


def make_spec(config):
    """The ``NoGANSpec`` of colourisation for ``config`` (its held-out photos and render size)."""

    render_factor = render_factor_for_eval_size(config.eval_size)

    def evaluate(generator, _):
        results = evaluate_colorization_model(generator, _photos(config), render_factor,
                                              train_uv=_train_uv(config))
        return results, color_metrics.format_color_table(results)

    def pick_best(trainer, run_dir, _):
        return pick_best_colour_checkpoint(trainer, run_dir, _photos(config), render_factor)

    deoldify = config.generator in DEOLDIFY_GENERATORS
    return NoGANSpec(name="colorize", data=colorization_data, generator=colorization_model,
                     score=None, score_format="", evaluate=evaluate, pick_best=pick_best,
                     critic=colorization_critic if deoldify else None,
                     body_weights=deoldify_body_weights if deoldify else None)


def train(config, strategy):
    """Runs the colourisation NoGAN phases (``config.phase``; ``nogan``: all three).

    Returns:
        ``(trainer, sample batch, {"generator": G})``.
    """
    return restore.train(config, strategy, spec=make_spec(config))


# The fields whose defaults differ for this model (applied where the user set none).
# DeOldify: NoGAN on (gray, colour) pairs; extra input degradations are opt-in.
# unet_128 (7 downsamplings) takes crops in multiples of 128; smaller crops need a
# shallower UNet (--unet_downs=5 --crop_size=64, as configs/colorize_quickstart.cfg).
MODEL_DEFAULTS = dict(generator="unet_128", norm="batch", no_dropout=True, gan_mode="vanilla",
                     pool_size=0, lr=1e-3, beta_1=0.9, beta_2=0.99, crop_size=128,
                     load_size=None, upsample="pixel_shuffle", degradations=(),
                     perceptual_preset="deoldify")
registry.register("colorize", __name__, MODEL_DEFAULTS, "colourisation: DeOldify's NoGAN on (gray, colour) pairs")
