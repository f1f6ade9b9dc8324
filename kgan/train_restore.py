"""The pix2pix and restoration (NoGAN) parts of ``python -m kgan.train``: flags in, trainers
built and run through ``kgan.train.train_loop``."""

import os

import tensorflow as tf
from absl import logging

from kgan import losses
from kgan.models import build_discriminator, build_generator, critic as build_critic
from kgan.models import encoder_unet_generator, resolve_encoder_weights, unet_generator
from kgan.schedules import LinearDecay
from kgan.trainers.base import adam
from kgan.trainers.critic import CriticPretrainer
from kgan.trainers.nogan import NoGANTrainer
from kgan.trainers.pix2pix import Pix2Pix
from kgan.trainers.pretrain import GeneratorPretrainer

# The restoration generator's sigmoid head spans a little more than the data range [-1, 1]
# so that black and white stay reachable (fastai uses y_range (-3, 3) in ImageNet units).
RESTORE_Y_RANGE = (-1.1, 1.1)
UNET_DOWNS = {"unet_128": 7, "unet_256": 8}


def run_model(f, strategy, train_loop):
    """Trains ``--model=pix2pix`` or ``--model=restore``.

    Returns:
        (trainer, sample batch, {name: generator}) for the image grid and saving.
    """
    if f.model == "pix2pix":
        return run_pix2pix(f, strategy, train_loop)
    return run_restore(f, strategy, train_loop)


def _sample(dataset):
    return [t[:4] for t in next(iter(dataset.take(1)))]


def run_pix2pix(f, strategy, train_loop):
    from kgan.data import paired_dataset
    from kgan.train import data_options, end_step_for

    dataset, info = paired_dataset(dataroot=f.dataroot, direction=f.direction,
                                   **data_options(f))
    logging.info("Data: %s (%d pairs, %d skipped)", info.source, info.num_a, info.skipped)
    steps_per_epoch = f.steps_per_epoch or info.steps_per_epoch
    with strategy.scope():
        generator = build_generator(f.generator, ngf=f.ngf, norm=f.norm,
                                    use_dropout=not f.no_dropout, init_type=f.init_type,
                                    init_gain=f.init_gain)
        discriminator = build_discriminator(f.discriminator, 6, f.ndf, f.n_layers_d, f.norm,
                                            f.init_type, f.init_gain, f.spectral_norm)
        trainer = Pix2Pix(generator, discriminator, lambda_l1=f.lambda_l1,
                          gan_mode=f.gan_mode, lambda_gp=f.lambda_gp)
        schedule = lambda: LinearDecay(f.lr, f.epochs, f.epochs_decay, steps_per_epoch)
        trainer.compile(g_optimizer=adam(schedule(), f.beta_1, f.beta_2),
                        d_optimizer=adam(schedule(), f.beta_1, f.beta_2),
                        jit_compile=f.jit_compile)
    sample = _sample(dataset)
    end = end_step_for(steps_per_epoch, f.epochs + f.epochs_decay, f.max_steps)
    train_loop(trainer, dataset, strategy, f.output_dir, steps_per_epoch, end, sample,
               f.batch_size, f.driver)
    return trainer, sample, trainer.generators()


def restoration_generator(f, encoder_weights=None, freeze_encoder=False):
    """The restoration UNet: self-attention, ICNR pixel shuffle + blur, fastai's last_cross,
    and a y_range head or (``--residual``) an identity-initialised residual output; on a
    pretrained keras.applications body with ``--encoder`` (fastai's DynamicUnet).

    Args:
        f: the flag values.
        encoder_weights: ``--encoder`` weights as ``resolve_encoder_weights`` returns them (a
            file path, or None: random, for a generator that loads trained weights next).
        freeze_encoder: build the encoder non-trainable (``--freeze_encoder_steps``).
    """
    if f.encoder != "none":
        return encoder_unet_generator(
            encoder=f.encoder, encoder_weights=encoder_weights, alpha=f.encoder_alpha,
            ngf=f.ngf, norm=f.norm, self_attention=f.self_attention, upsample=f.upsample,
            y_range=RESTORE_Y_RANGE, last_cross=True, residual=f.residual,
            decoder_convs=f.decoder_convs, freeze_encoder=freeze_encoder, init_type="kaiming",
            name="restore_unet")
    downs = f.unet_downs or UNET_DOWNS.get(f.generator)
    if downs is None:
        raise ValueError(f"--model=restore needs a UNet: --generator=unet_128|unet_256 or "
                         f"--unet_downs=N (got --generator={f.generator}).")
    return unet_generator(num_downs=downs, ngf=f.ngf, norm=f.norm,
                          use_dropout=not f.no_dropout, self_attention=f.self_attention,
                          upsample=f.upsample, y_range=RESTORE_Y_RANGE, last_cross=True,
                          residual=f.residual,
                          init_type="kaiming", name="restore_unet")


def pretrain_g_stages(f, steps):
    """Generator pretraining as (run directory name, steps, encoder frozen) stages: with
    ``--encoder`` and ``--freeze_encoder_steps=N``, N steps training the decoder on a frozen
    body (``pretrain_g_frozen``), then the remaining steps training everything."""
    freeze = min(max(f.freeze_encoder_steps, 0), steps) if f.encoder != "none" else 0
    if freeze == 0:
        return [("pretrain_g", steps, False)]
    if freeze == steps:
        return [("pretrain_g", steps, True)]
    return [("pretrain_g_frozen", freeze, True), ("pretrain_g", steps - freeze, False)]


def _generator_pretrainer(f, generator, content_loss, steps, steps_per_epoch):
    trainer = GeneratorPretrainer(generator, content_loss)
    # Constant for the first half, then linear decay (the reference's policy).
    half_epochs = max(steps // (2 * steps_per_epoch), 1)
    schedule = LinearDecay(f.lr, half_epochs, half_epochs, steps_per_epoch)
    trainer.compile(adam(schedule, f.beta_1, f.beta_2), jit_compile=f.jit_compile)
    return trainer


def restoration_critic(f):
    """The fastai-style critic, sized by ``--critic_nf``."""
    return build_critic(nf=f.critic_nf, n_blocks=3)


def _weights_path(run_dir, name):
    return os.path.join(run_dir, name + ".weights.h5")


def _load_previous(model, run_dir, name, previous_phase):
    """Loads the weights a previous phase saved, with a clear error when they are missing."""
    path = _weights_path(run_dir, name)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"{path} not found: run --phase={previous_phase} first (or --phase=nogan, which "
            "runs every phase in order) with the same --output_dir.")
    model.load_weights(path)
    logging.info("Loaded %s from %s", name, path)



def run_restore(f, strategy, train_loop):
    from kgan.data import restoration_dataset

    dataset, info = restoration_dataset(
        dataroot=f.dataroot, phase="train", degradations=tuple(f.degradations),
        crop_size=f.crop_size, load_size=f.load_size, no_flip=f.no_flip,
        batch_size=f.batch_size, seed=f.seed, max_dataset_size=f.max_dataset_size)
    logging.info("Data: %s (%d clean images, %d skipped); degradations: %s", info.source,
                 info.num_a, info.skipped, ",".join(f.degradations))
    steps_per_epoch = f.steps_per_epoch or info.steps_per_epoch
    sample = _sample(dataset)
    content_loss, content_name = losses.build_content_loss(f.content_loss, f.vgg_weights,
                                                           f.perceptual_preset)
    print(f"kgan: content loss = {content_name}")
    phases = (("pretrain_g", "pretrain_d", "gan") if f.phase == "nogan" else (f.phase,))
    steps = {"pretrain_g": f.pretrain_g_steps, "pretrain_d": f.pretrain_d_steps,
             "gan": f.gan_steps}
    if f.max_steps and f.phase != "nogan":
        steps[f.phase] = f.max_steps
    common = dict(strategy=strategy, steps_per_epoch=steps_per_epoch,
                  sample_batch=sample, batch_size=f.batch_size, driver=f.driver)

    # Resolved once (a clear error before any training when ImageNet weights are missing);
    # phases after pretrain_g load trained weights over a randomly initialised encoder.
    encoder_weights = None
    if f.encoder != "none" and "pretrain_g" in phases:
        encoder_weights = resolve_encoder_weights(f.encoder, f.encoder_weights, f.encoder_alpha)

    trainer = None
    for phase in phases:
        if phase == "pretrain_g":
            previous = None
            for stage, stage_steps, frozen in pretrain_g_stages(f, steps[phase]):
                run_dir = os.path.join(f.output_dir, stage)
                with strategy.scope():
                    generator = restoration_generator(
                        f, None if previous else encoder_weights, freeze_encoder=frozen)
                    if previous:
                        # A checkpoint of this stage, when there is one, restores over these.
                        _load_previous(generator, previous, "generator", "pretrain_g")
                    trainer = _generator_pretrainer(f, generator, content_loss, stage_steps,
                                                    steps_per_epoch)
                print(f"kgan: restore phase {phase}"
                      + (f" ({stage}, encoder frozen)" if frozen else "")
                      + f": {stage_steps} steps -> {run_dir}")
                train_loop(trainer, dataset, run_dir=run_dir, end_step=stage_steps,
                           max_to_keep=f.keep_checkpoints, **common)
                generator.save_weights(_weights_path(run_dir, "generator"))
                previous = run_dir
            continue
        run_dir = os.path.join(f.output_dir, phase)
        with strategy.scope():
            generator = restoration_generator(f)
            critic = restoration_critic(f)
            _load_previous(generator, os.path.join(f.output_dir, "pretrain_g"),
                           "generator", "pretrain_g")
            if phase == "pretrain_d":
                trainer = CriticPretrainer(generator, critic)
                trainer.compile(adam(f.lr, f.beta_1, f.beta_2),
                                jit_compile=f.jit_compile)
            else:
                _load_previous(critic, os.path.join(f.output_dir, "pretrain_d"),
                               "critic", "pretrain_d")
                trainer = NoGANTrainer(generator, critic, content_loss,
                                       weights_gen=[float(w) for w in f.weights_gen],
                                       critic_thresh=f.critic_thresh)
                trainer.compile(
                    g_optimizer=adam(f.gan_lr, 0.0, f.beta_2),
                    d_optimizer=adam(f.gan_lr * f.critic_lr_mult, 0.0,
                                     f.beta_2),
                    jit_compile=f.jit_compile)
        print(f"kgan: restore phase {phase}: {steps[phase]} steps -> {run_dir}")
        train_loop(trainer, dataset, run_dir=run_dir, end_step=steps[phase],
                   max_to_keep=None if phase == "gan" else f.keep_checkpoints, **common)
        generator.save_weights(_weights_path(run_dir, "generator"))
        critic.save_weights(_weights_path(run_dir, "critic"))

    if phases[-1] == "gan" or f.evaluate:
        test_dataset, _ = restoration_dataset(
            dataroot=f.dataroot, phase="test", degradations=tuple(f.degradations),
            crop_size=f.eval_size, load_size=None, no_flip=True, batch_size=1,
            seed=f.seed if f.seed is not None else 0, repeat=False)
        if phases[-1] == "gan":
            pick_best_gan_checkpoint(trainer, os.path.join(f.output_dir, "gan"), test_dataset)
        if f.evaluate:
            from kgan.evaluate import evaluate_pairs, format_table
            results = evaluate_pairs(trainer.generators()["generator"], test_dataset)
            print(format_table(results))
            import json
            with open(os.path.join(f.output_dir, "evaluation.json"), "w") as handle:
                json.dump(results, handle, indent=2)
    return trainer, sample, trainer.generators()


def mean_psnr(generator, dataset):
    """Mean PSNR (dB, images in [-1, 1]) of ``generator(degraded)`` against ``clean``."""
    from kgan.evaluate import evaluate_pairs
    return evaluate_pairs(generator, dataset)["model"]["psnr"]


def pick_best_gan_checkpoint(trainer, run_dir, test_dataset):
    """DeOldify picked its GAN checkpoint by eye at the "inflection point"; kgan scores every
    kept GAN-phase checkpoint on held-out data and keeps the generator with the best PSNR.

    Returns:
        (best checkpoint path, {path: psnr}).
    """
    paths = tf.train.get_checkpoint_state(os.path.join(run_dir, "checkpoints"))
    paths = list(paths.all_model_checkpoint_paths) if paths else []
    if not paths:
        return None, {}
    scores = {}
    for path in paths:
        tf.train.Checkpoint(trainer=trainer).restore(path).expect_partial()
        scores[path] = mean_psnr(trainer.generator, test_dataset)
    best = max(scores, key=scores.get)
    tf.train.Checkpoint(trainer=trainer).restore(best).expect_partial()
    for path, score in scores.items():
        print(f"kgan: GAN checkpoint {os.path.basename(path)}: held-out PSNR {score:.2f} dB"
              + ("  <- best" if path == best else ""))
    trainer.generator.save_weights(_weights_path(run_dir, "generator_best"))
    return best, scores
