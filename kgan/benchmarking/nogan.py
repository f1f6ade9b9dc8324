"""kgan.benchmarking.bench's NoGAN models (``restore``, ``colorize``): each phase's trainer built by
its recipe (kgan.recipes.restore.build_phase, without loading earlier phases' weights) and its step
FLOPs counted from the traced forward graphs of G, the critic and the perceptual loss's VGG16
(kgan.core.measure.nogan_step_flops has the per-phase counts).

The ``gan`` phase's switcher (kgan.training.trainers.nogan) picks a critic or a generator update by
the critic's loss, so one step's cost depends on the run. kgan.benchmarking.bench times it as a
*pair*: the mode is set to critic, one step runs, then generator, one step: the switcher's fastest
alternation, with ``updates_per_step = 2`` and the FLOPs of both updates.

Called by kgan.benchmarking.bench.
"""

import dataclasses
from typing import Optional

from kgan.benchmarking.peaks import forward_flops
from kgan.core.measure import nogan_step_flops
from kgan.recipes import colorize as colorize_recipe
from kgan.recipes import restore as restore_recipe
from kgan.training import losses

NOGAN_MODELS = ("restore", "colorize")


@dataclasses.dataclass
class NoGANBench:
    """A NoGAN phase ready to time.

    Attributes:
        trainer: the compiled phase trainer.
        batch: one global batch of the recipe's pipeline.
        generator: the generator (for inference timing).
        phase: ``pretrain_g``, ``pretrain_d`` or ``gan``.
        flops: ``kgan.benchmarking.bench`` result keys (``step_gflop``, ``generator_forward_gflop``,
        ...).
        modes: generator-mode values set before each call of one timed step (``gan``:
            ``(False, True)``: a critic update, then a generator update), or None.
    """

    trainer: object
    batch: tuple
    generator: object
    phase: str
    flops: dict
    modes: Optional[tuple] = None


def nogan_flops(phase, generator, critic, content_loss, input_shape, output_shape):
    """Step FLOPs of a NoGAN phase as ``kgan.benchmarking.bench`` result keys (GFLOP).

    Args:
        phase: ``pretrain_g``, ``pretrain_d`` or ``gan``.
        generator, critic: the networks (``critic`` may be None for ``pretrain_g``).
        content_loss: the content loss; its ``features`` (the frozen VGG16 feature model of
            ``losses.PerceptualLoss``) are counted when present.
        input_shape, output_shape: full batch shapes of G's input and output.

    Returns:
        ``{"step_gflop", "generator_forward_gflop", "discriminator_forward_gflop" (critic, or
        None), "vgg_forward_gflop" (0 for a pixel loss and for ``pretrain_d``)}``, plus for ``gan``
        the two updates' ``gan_generator_update_gflop`` and ``gan_critic_update_gflop`` (their sum
        is the step).
    """
    g = forward_flops(generator, input_shape)
    c = forward_flops(critic, output_shape) if critic is not None else 0
    features = getattr(content_loss, "features", None)
    # pretrain_d never runs the content loss.
    v = (forward_flops(features, output_shape)
         if features is not None and phase != "pretrain_d" else 0)
    result = {"generator_forward_gflop": g / 1e9,
              "discriminator_forward_gflop": c / 1e9 if critic is not None else None,
              "vgg_forward_gflop": v / 1e9}
    if phase == "gan":
        generator_update = nogan_step_flops("gan_generator", g, c, v)
        critic_update = nogan_step_flops("gan_critic", g, c, v)
        result.update(gan_generator_update_gflop=generator_update / 1e9,
                      gan_critic_update_gflop=critic_update / 1e9,
                      step_gflop=(generator_update + critic_update) / 1e9)
    else:
        result["step_gflop"] = nogan_step_flops(phase, g, c, v) / 1e9
    return result


def _spec(config):
    """The recipe's NoGANSpec of ``config.model`` (colorize or restore)."""
    return (colorize_recipe.make_spec(config) if config.model == "colorize"
            else restore_recipe.RESTORE)


def nogan_input_dataset(config):
    """The phase's training pipeline exactly as the recipe builds it (gray / crappified inputs
    made on the fly), for timing it on its own."""
    return _spec(config).data(config, "train")[0]


def build_nogan(config, strategy):
    """Builds ``config``'s NoGAN phase (``config.phase``; ``nogan`` times ``gan``).

    Returns:
        A ``NoGANBench``.
    """
    spec = _spec(config)
    phase = "gan" if config.phase == "nogan" else config.phase
    dataset, info = spec.data(config, "train")
    content_loss, content_name = losses.build_content_loss(
        config.content_loss, config.vgg_weights, config.perceptual_preset)
    trainer, generator, critic = restore_recipe.build_phase(
        config, strategy, phase, content_loss, config.pretrain_g_steps,
        config.steps_per_epoch or info.steps_per_epoch, spec=spec, load_previous=False)
    batch = next(iter(dataset))
    input_shape = tuple(int(d) for d in batch[0].shape)
    output_shape = tuple(int(d) for d in batch[1].shape)
    flops = nogan_flops(phase, generator, critic, content_loss, input_shape, output_shape)
    flops["content_loss"] = content_name
    return NoGANBench(trainer=trainer, batch=batch, generator=generator, phase=phase,
                      flops=flops, modes=(False, True) if phase == "gan" else None)
