"""The restoration recipe: fastai/DeOldify's NoGAN on (degraded, clean) pairs made on the fly
by kgan.data.crappify. Phases, each resuming from its own checkpoints in
``OUTPUT_DIR/<phase>/`` and handing weights to the next (kgan.serving.runs):

1. ``pretrain_g``: the UNet generator with the content loss (optionally first with a frozen
   pretrained encoder, ``pretrain_g_frozen``);
2. ``pretrain_d``: the critic as a real-vs-generated classifier on the frozen generator;
3. ``gan``: the adaptive-switcher GAN phase; every kept checkpoint is scored on held-out
   images and the best is kept (DeOldify picked its "inflection point" by eye).

``NoGANSpec`` holds what differs between tasks that share this pipeline (the data, the
generator head, the checkpoint score, the evaluation), so the colourisation recipe reuses it.

Called by kgan.recipes.train and kgan.benchmarking.bench.
"""

import dataclasses
import functools
import os
from typing import Callable, Optional

import tensorflow as tf
from absl import logging

from kgan.core.atomic import write_json
from kgan.core.errors import UsageError
from kgan.data import restoration_dataset
from kgan.data.folders import resolve_seed
from kgan.interop import init_from
from kgan.evaluation.evaluate import evaluate_pairs, format_table
from kgan.models import critic as build_critic
from kgan.models import encoder_unet_generator, resolve_encoder_weights, unet_generator
from kgan.recipes import registry
from kgan.recipes.common import (
    check_crop_size,
    dataset_at,
    first_batch,
    initialize_from,
    loop_options,
)
from kgan.serving import runs
from kgan.training import losses
from kgan.training.loop import train_loop
from kgan.training.schedules import LinearDecay
from kgan.training.trainers.base import adam
from kgan.training.trainers.critic import CriticPretrainer
from kgan.training.trainers.nogan import NoGANTrainer
from kgan.training.trainers.pretrain import GeneratorPretrainer

# The restoration generator's sigmoid head spans a little more than the data range [-1, 1]
# so that black and white stay reachable (fastai uses y_range (-3, 3) in ImageNet units).
RESTORE_Y_RANGE = (-1.1, 1.1)
UNET_DOWNS = {"unet_128": 7, "unet_256": 8}
PHASES = ("pretrain_g", "pretrain_d", "gan")


def restoration_data(config, phase, seed=None, start=0):
    """(degraded, clean) pairs: random crops for training, a fixed grid of held-out tiles for
    ``phase="test"``."""

    if phase == "train":
        return restoration_dataset(
            dataroot=config.dataroot, phase="train", degradations=tuple(config.degradations),
            crop_size=config.crop_size, load_size=config.load_size, no_flip=config.no_flip,
            batch_size=config.batch_size, seed=config.seed if seed is None else seed,
            max_dataset_size=config.max_dataset_size, start=start)
    return restoration_dataset(
        dataroot=config.dataroot, phase="test", degradations=tuple(config.degradations),
        crop_size=config.eval_size, load_size=None, no_flip=True, batch_size=1,
        seed=config.seed if config.seed is not None else 0, repeat=False)


def restoration_generator(config, encoder_weights=None, freeze_encoder=False):
    """The restoration UNet: self-attention, ICNR pixel shuffle + blur, fastai's last_cross,
    and a y_range head or (``residual``) an identity-initialised residual output; on a
    pretrained keras.applications body with ``encoder`` (fastai's DynamicUnet).

    Args:
        config: a ``TrainConfig``.
        encoder_weights: encoder weights as ``resolve_encoder_weights`` returns them (a file
            path, or None: random, for a generator that loads trained weights next).
        freeze_encoder: build the encoder non-trainable (``freeze_encoder_steps``).
    """
    if config.encoder != "none":
        return encoder_unet_generator(
            encoder=config.encoder, encoder_weights=encoder_weights, alpha=config.encoder_alpha,
            ngf=config.ngf, norm=config.norm, self_attention=config.self_attention,
            upsample=config.upsample, y_range=RESTORE_Y_RANGE, last_cross=True,
            residual=config.residual, decoder_convs=config.decoder_convs,
            freeze_encoder=freeze_encoder, init_type="kaiming", name="restore_unet")
    downs = config.unet_downs or UNET_DOWNS.get(config.generator)
    if downs is None:
        raise UsageError(f"--model={config.model} needs a UNet: --generator=unet_128|unet_256 "
                         f"or --unet_downs=N (got --generator={config.generator}).")
    return unet_generator(num_downs=downs, ngf=config.ngf, norm=config.norm,
                          use_dropout=not config.no_dropout,
                          self_attention=config.self_attention, upsample=config.upsample,
                          y_range=RESTORE_Y_RANGE, last_cross=True, residual=config.residual,
                          init_type="kaiming", name="restore_unet")


def mean_psnr(generator, dataset):
    """Mean PSNR (dB, images in [-1, 1]) of ``generator(input)`` against the target; higher is
    better."""
    return evaluate_pairs(generator, dataset, what="tiles")["model"]["psnr"]


def evaluate_restoration(generator, dataset):
    """The PSNR/SSIM table against the degraded input and bicubic baselines.

    Returns:
        ``(results dict, printable table)``.
    """
    results = evaluate_pairs(generator, dataset, what="tiles")
    return results, format_table(results)


@dataclasses.dataclass
class NoGANSpec:
    """What a NoGAN task supplies.

    Attributes:
        name: the task, for messages (``restore``).
        data: ``(config, phase) -> (dataset, DatasetInfo)``; phase ``train`` or ``test``.
        generator: ``(config, encoder_weights, freeze_encoder) -> keras.Model``.
        score: ``(generator, test dataset) -> float``, higher is better (GAN checkpoint choice).
        score_format: how a score is printed, e.g. ``"held-out PSNR {:.2f} dB"``.
        evaluate: ``(generator, test dataset) -> (results dict, table)``.
        pick_best: ``(trainer, gan run dir, test dataset) -> (best path, scores)``, replacing
            ``pick_best_gan_checkpoint`` (which ranks by ``score``) when given.
        critic: ``config -> keras.Model`` replacing the fastai-style critic when given (e.g.
            DeOldify's own critic for DeOldify's generators).
        body_weights: ``config -> file or None``, the pretrained weights of the generator's
            body resolved before any training, replacing ``resolve_encoder_weights`` when given
            (DeOldify's torchvision ResNet bodies); ``generator`` gets it as
            ``encoder_weights``.
    """

    name: str
    data: Callable
    generator: Callable
    score: Optional[Callable]
    score_format: str
    evaluate: Callable
    pick_best: Optional[Callable] = None
    critic: Optional[Callable] = None
    body_weights: Optional[Callable] = None


RESTORE = NoGANSpec(name="restore", data=restoration_data, generator=restoration_generator,
                    score=mean_psnr, score_format="held-out PSNR {:.2f} dB",
                    evaluate=evaluate_restoration)


def pretrain_g_stages(config, steps):
    """Generator pretraining as (run directory name, steps, encoder frozen) stages: with an
    encoder and ``freeze_encoder_steps=N``, N steps training the decoder on a frozen body
    (``pretrain_g_frozen``), then the remaining steps training everything."""
    freeze = (min(max(config.freeze_encoder_steps, 0), steps) if config.encoder != "none"
              else 0)
    if freeze == 0:
        return [("pretrain_g", steps, False)]
    if freeze == steps:
        return [("pretrain_g", steps, True)]
    return [("pretrain_g_frozen", freeze, True), ("pretrain_g", steps - freeze, False)]


def phase_steps(config):
    """Steps of each phase (``max_steps`` overrides the one phase run alone)."""
    steps = {"pretrain_g": config.pretrain_g_steps, "pretrain_d": config.pretrain_d_steps,
             "gan": config.gan_steps}
    if config.max_steps and config.phase != "nogan":
        steps[config.phase] = config.max_steps
    return steps


def build_phase(config, strategy, phase, content_loss, steps, steps_per_epoch, spec=RESTORE,
                load_previous=True, encoder_weights=None, freeze_encoder=False,
                previous_dir=None):
    """Builds the compiled trainer of one phase in ``strategy``'s scope.

    Args:
        config: a ``TrainConfig``.
        phase: ``pretrain_g``, ``pretrain_d`` or ``gan``.
        content_loss: the content loss (``losses.build_content_loss``).
        steps: the phase's steps (the pretraining schedule decays over them).
        steps_per_epoch: steps in one epoch.
        spec: the task.
        load_previous: load the previous phases' weights (off for benchmarks).
        encoder_weights, freeze_encoder: ``pretrain_g`` encoder options.
        previous_dir: ``pretrain_g`` after a frozen stage: the stage's run folder to load.

    Returns:
        ``(trainer, generator, critic or None)``.
    """
    with strategy.scope():
        if phase == "pretrain_g":
            generator = spec.generator(config, None if previous_dir else encoder_weights,
                                       freeze_encoder)
            check_crop_size(config, generator)
            if previous_dir and load_previous:
                # A checkpoint of this stage, when there is one, restores over these.
                runs.load_phase_weights(generator, previous_dir, "generator", "pretrain_g")
            trainer = GeneratorPretrainer(generator, content_loss)
            # Constant for the first half, then linear decay (the reference's policy).
            half_epochs = max(steps // (2 * steps_per_epoch), 1)
            schedule = LinearDecay(config.lr, half_epochs, half_epochs, steps_per_epoch)
            trainer.compile(adam(schedule, config.beta_1, config.beta_2),
                            jit_compile=config.jit_compile)
            return trainer, generator, None
        generator = spec.generator(config, None, False)
        critic = (spec.critic(config) if spec.critic
                  else build_critic(nf=config.critic_nf, n_blocks=3))
        if load_previous:
            runs.load_phase_weights(generator, os.path.join(config.output_dir, "pretrain_g"),
                                    "generator", "pretrain_g")
        if phase == "pretrain_d":
            trainer = CriticPretrainer(generator, critic)
            trainer.compile(adam(config.lr, config.beta_1, config.beta_2),
                            jit_compile=config.jit_compile)
            return trainer, generator, critic
        if load_previous:
            runs.load_phase_weights(critic, os.path.join(config.output_dir, "pretrain_d"),
                                    "critic", "pretrain_d")
        trainer = NoGANTrainer(generator, critic, content_loss,
                               weights_gen=[float(w) for w in config.weights_gen],
                               critic_thresh=config.critic_thresh)
        trainer.compile(g_optimizer=adam(config.gan_lr, 0.0, config.beta_2),
                        d_optimizer=adam(config.gan_lr * config.critic_lr_mult, 0.0,
                                         config.beta_2),
                        jit_compile=config.jit_compile)
        return trainer, generator, critic


def train(config, strategy, spec=RESTORE):
    """Runs the phases of ``config.phase`` (``nogan``: all three in order).

    Returns:
        ``(trainer, sample batch, {"generator": G})``.
    """
    seed = resolve_seed(config.seed)  # one seed for every position of the stream
    dataset, info = spec.data(config, "train", seed)
    at = dataset_at(lambda start: spec.data(config, "train", seed, start)[0], config.batch_size)
    logging.info("Data: %s (%d clean images, %d skipped); degradations: %s", info.source,
                 info.num_a, info.skipped, ",".join(config.degradations))
    steps_per_epoch = config.steps_per_epoch or info.steps_per_epoch
    sample = first_batch(dataset)
    content_loss, content_name = losses.build_content_loss(
        config.content_loss, config.vgg_weights, config.perceptual_preset)
    print(f"kgan: content loss = {content_name}")
    phases = PHASES if config.phase == "nogan" else (config.phase,)
    steps = phase_steps(config)
    options = loop_options(config)

    def run_phase(trainer, run_dir, end_step, max_to_keep):
        train_loop(trainer, at, strategy, run_dir, steps_per_epoch, end_step, options,
                   sample, config.batch_size, max_to_keep)

    # Resolved once (a clear error before any training when ImageNet weights are missing);
    # phases after pretrain_g load trained weights over a randomly initialised encoder.
    encoder_weights = None
    if spec.body_weights is not None and "pretrain_g" in phases:
        encoder_weights = spec.body_weights(config)
    elif config.encoder != "none" and "pretrain_g" in phases:
        encoder_weights = resolve_encoder_weights(config.encoder, config.encoder_weights,
                                                  config.encoder_alpha)
    if config.init_from and "pretrain_g" not in phases:
        print(f"kgan: --init_from={config.init_from} ignored: --phase={config.phase} starts "
              f"from the generator of {os.path.join(config.output_dir, 'pretrain_g')}.")
    trainer = None
    for phase in phases:
        if phase == "pretrain_g":
            previous = None
            for stage, stage_steps, frozen in pretrain_g_stages(config, steps[phase]):
                run_dir = os.path.join(config.output_dir, stage)
                trainer, generator, _ = build_phase(
                    config, strategy, phase, content_loss, stage_steps, steps_per_epoch, spec,
                    encoder_weights=encoder_weights, freeze_encoder=frozen,
                    previous_dir=previous)
                if previous is None:  # --init_from seeds the generator of a fresh run
                    initialize_from(config, trainer, run_dir, networks={"G": generator})
                print(f"kgan: {spec.name} phase {phase}"
                      + (f" ({stage}, encoder frozen)" if frozen else "")
                      + f": {stage_steps} steps -> {run_dir}")
                run_phase(trainer, run_dir, stage_steps, config.keep_checkpoints)
                runs.save_phase_weights(generator, run_dir, "generator")
                previous = run_dir
            continue
        run_dir = os.path.join(config.output_dir, phase)
        trainer, generator, critic = build_phase(config, strategy, phase, content_loss,
                                                 steps[phase], steps_per_epoch, spec)
        if (phase == "pretrain_d" and config.init_from
                and init_from.has_file(config.init_from, "D")):
            # A converted critic (discriminator.keras, DeOldify's *_crit.pth) seeds it.
            initialize_from(config, trainer, run_dir, networks={"D": critic})
        print(f"kgan: {spec.name} phase {phase}: {steps[phase]} steps -> {run_dir}")
        run_phase(trainer, run_dir, steps[phase], None if phase == "gan" else
                  config.keep_checkpoints)
        runs.save_phase_weights(generator, run_dir, "generator")
        runs.save_phase_weights(critic, run_dir, "critic")

    if phases[-1] == "gan" or config.evaluate:
        test_dataset, _ = spec.data(config, "test")
        if phases[-1] == "gan":
            pick = spec.pick_best or functools.partial(pick_best_gan_checkpoint, spec=spec)
            pick(trainer, os.path.join(config.output_dir, "gan"), test_dataset)
        if config.evaluate:
            results, table = spec.evaluate(trainer.generators()["generator"], test_dataset)
            print(table)
            write_json(os.path.join(config.output_dir, "evaluation.json"), results)
    return trainer, sample, trainer.generators()


def pick_best_gan_checkpoint(trainer, run_dir, test_dataset, spec=RESTORE):
    """Scores every kept GAN-phase checkpoint on held-out data with ``spec.score`` and keeps
    the best generator (restored into ``trainer`` and saved as ``generator_best``).

    Returns:
        (best checkpoint path, {path: score}).
    """
    state = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    paths = list(state.all_model_checkpoint_paths) if state else []
    if not paths:
        return None, {}
    scores = {}
    for path in paths:
        tf.train.Checkpoint(trainer=trainer).restore(path).expect_partial()
        scores[path] = spec.score(trainer.generator, test_dataset)
    best = max(scores, key=scores.get)
    tf.train.Checkpoint(trainer=trainer).restore(best).expect_partial()
    for path, score in scores.items():
        print(f"kgan: GAN checkpoint {os.path.basename(path)}: {spec.score_format.format(score)}"
              + ("  <- best" if path == best else ""))
    runs.save_phase_weights(trainer.generator, run_dir, "generator_best")
    return best, scores


# The fields whose defaults differ for this model (applied where the user set none).
# unet_128 (7 downsamplings) takes crops in multiples of 128; smaller crops need a
# shallower UNet (--unet_downs=5 --crop_size=64, as configs/colorize_quickstart.cfg).
MODEL_DEFAULTS = dict(generator="unet_128", norm="batch", no_dropout=True, gan_mode="vanilla",
                    pool_size=0, lr=1e-3, beta_1=0.9, beta_2=0.99, crop_size=128,
                    load_size=None, upsample="pixel_shuffle", residual=True)
registry.register("restore", __name__, MODEL_DEFAULTS, "restoration: fastai/DeOldify NoGAN on crappified pairs")
