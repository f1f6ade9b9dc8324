"""The absl flags of ``python -m kgan.train`` (and kgan.bench), named as the PyTorch reference
(snake_case) with its defaults, plus the reference's own spellings (old and new) as aliases.
Defaults come from ``kgan.recipes.config.TrainConfig`` (one source of truth); per-model defaults
(each recipe registers its own, kgan.recipes.registry; pix2pix: unet_256, batch norm, dropout,
vanilla GAN, no pool) apply to flags the user did not set, as the reference does.

Called by kgan.cli.train and kgan.cli.bench; ``FLAG_GROUPS`` orders ``--help``.
"""

from absl import flags

from kgan.models import ALL_GENERATORS, DISCRIMINATORS, ENCODERS
from kgan.recipes import registry
from kgan.recipes.config import DEFAULTS as D
from kgan.recipes.config import FIELD_NAMES, PREPROCESS, RESTORE_PHASES

__all__ = ["ALIASES", "FLAG_GROUPS", "define_flags"]

# (group title, first flag of the group) in definition order; --help lists flags by group.
_GROUP_STARTS = (("model", "model"), ("losses", "gan_mode"), ("training", "lr"),
                 ("data", "dataroot"), ("restoration / NoGAN", "phase"),
                 ("output and logging", "output_dir"), ("scale", "distribution"))
FLAG_GROUPS = []  # [(title, [flag names])], filled by define_flags


def define_flags():
    """Defines every training flag once (safe to call twice)."""
    if "phase" in flags.FLAGS:
        return
    d = flags
    # What to train.
    d.DEFINE_enum("model", D.model, registry.names(), " | ".join(
        f"{name} ({registry.get(name).summary})" for name in registry.names()) + ".")
    d.DEFINE_enum("generator", D.generator, ALL_GENERATORS, "Generator architecture; "
                  "colorize also takes deoldify_artistic / deoldify_stable / deoldify_video "
                  "(DeOldify's networks, spectral norm while training, --ngf = body width).")
    d.DEFINE_enum("discriminator", D.discriminator, DISCRIMINATORS,
                  "basic (70x70 PatchGAN) | n_layers | pixel (1x1).")
    d.DEFINE_integer("n_layers_d", D.n_layers_d, "Discriminator conv layers for --discriminator=n_layers.")
    d.DEFINE_integer("ngf", D.ngf, "Generator filters in the first conv layer.")
    d.DEFINE_integer("ndf", D.ndf, "Discriminator filters in the first conv layer.")
    d.DEFINE_enum("norm", D.norm, ("instance", "batch", "none"), "Normalisation layer.")
    d.DEFINE_enum("init_type", D.init_type, ("normal", "xavier", "kaiming", "orthogonal"),
                  "Weight initialisation.")
    d.DEFINE_float("init_gain", D.init_gain, "Scale of normal/xavier/orthogonal initialisation.")
    d.DEFINE_boolean("no_dropout", D.no_dropout, "No dropout in the generator (cycle_gan default).")
    d.DEFINE_enum("upsample", D.upsample, ("transpose", "pixel_shuffle", "resize"),
                  "Generator upsampling; resize or pixel_shuffle avoid checkerboards.")
    d.DEFINE_boolean("spectral_norm", D.spectral_norm, "Spectral normalisation in the discriminator.")
    # Losses.
    d.DEFINE_enum("gan_mode", D.gan_mode, ("lsgan", "vanilla", "hinge", "wgangp"), "GAN loss.")
    d.DEFINE_float("lambda_cycle", D.lambda_cycle, "Cycle-consistency weight (both directions).")
    d.DEFINE_float("lambda_A", D.lambda_A, "Cycle weight A->B->A (reference name; default "
                   "--lambda_cycle).")
    d.DEFINE_float("lambda_B", D.lambda_B, "Cycle weight B->A->B (reference name; default "
                   "--lambda_cycle).")
    d.DEFINE_float("lambda_identity", D.lambda_identity, "Identity weight, relative to the cycle weight.")
    d.DEFINE_float("lambda_l1", D.lambda_l1, "pix2pix L1 weight.")
    d.DEFINE_float("lambda_gan", D.lambda_gan, "Weight of the generators' adversarial terms "
                   "(1 = the reference; 0 with the cycle terms = the paper's 'cycle alone').")
    d.DEFINE_float("lambda_gp", D.lambda_gp, "Gradient-penalty weight for --gan_mode=wgangp.")
    d.DEFINE_integer("pool_size", D.pool_size, "Image history pool size per domain; 0 disables.")
    # Optimisation.
    d.DEFINE_float("lr", D.lr, "Initial Adam learning rate.")
    d.DEFINE_float("beta_1", D.beta_1, "Adam beta_1.")
    d.DEFINE_float("beta_2", D.beta_2, "Adam beta_2.")
    d.DEFINE_integer("epochs", D.epochs, "Epochs at the initial learning rate.")
    d.DEFINE_integer("epochs_decay", D.epochs_decay, "Epochs of linear learning-rate decay to ~0.")
    d.DEFINE_integer("steps_per_epoch", D.steps_per_epoch, "Steps per epoch (default: the larger domain "
                     "size // batch_size, as the reference).")
    d.DEFINE_integer("max_steps", D.max_steps, "Stop after this many steps in total (short runs).")
    d.DEFINE_integer("batch_size", D.batch_size, "Global batch size (split across replicas).")
    d.DEFINE_string("init_from", D.init_from, "Start from these weights: a folder with the "
                    "PyTorch reference's latest_net_{G_A,G_B,D_A,D_B}.pth (cycle_gan) or "
                    "latest_net_{G,D}.pth (pix2pix), kgan .keras files (kgan.interop.init_from), "
                    "or a kgan.convert output folder (its generator.keras seeds G_A, or the "
                    "generator). Networks without a file start fresh. Ignored when the run "
                    "resumes from its own checkpoint.")
    d.DEFINE_integer("seed", D.seed, "Random seed for weights, data order and augmentation.")
    # Data.
    d.DEFINE_string("dataroot", D.dataroot, "Image folder root (trainA/trainB, or train/ for "
                    "pix2pix). Without it and --tfds_name: the built-in sample data.")
    d.DEFINE_string("tfds_name", D.tfds_name, "TensorFlow Datasets name, e.g. cycle_gan/horse2zebra.")
    d.DEFINE_string("tfds_data_dir", D.tfds_data_dir, "TensorFlow Datasets data_dir.")
    d.DEFINE_enum("preprocess", D.preprocess, PREPROCESS, "Training preprocessing.")
    d.DEFINE_integer("load_size", D.load_size, "Resize images to this size before cropping.")
    d.DEFINE_integer("crop_size", D.crop_size, "Crop to this size.")
    d.DEFINE_boolean("no_flip", D.no_flip, "No random horizontal flips.")
    d.DEFINE_integer("max_dataset_size", D.max_dataset_size, "Use at most this many images per domain.")
    d.DEFINE_boolean("serial_batches", D.serial_batches, "Take B images in order instead of at random.")
    d.DEFINE_enum("direction", D.direction, ("AtoB", "BtoA"), "pix2pix direction.")
    # Restoration (NoGAN).
    d.DEFINE_enum("phase", D.phase, RESTORE_PHASES, "Restoration phase to run.")
    d.DEFINE_list("degradations", list(D.degradations), "Crappify degradations.")
    d.DEFINE_enum("content_loss", D.content_loss, ("auto", "perceptual", "l1", "l1_ssim"),
                  "Restoration content loss; auto = perceptual when VGG16 weights exist.")
    d.DEFINE_string("vgg_weights", D.vgg_weights, "imagenet (Keras cache) | PATH | none.")
    d.DEFINE_enum("perceptual_preset", D.perceptual_preset, ("fastai", "deoldify"),
                  "Perceptual loss layer weights.")
    d.DEFINE_boolean("self_attention", D.self_attention, "Self-attention in the restoration UNet.")
    d.DEFINE_integer("critic_nf", D.critic_nf, "Filters of the restoration critic's first conv.")
    d.DEFINE_float("critic_thresh", D.critic_thresh, "Adaptive switcher: train the critic until its loss "
                   "falls below this, then the generator.")
    d.DEFINE_list("weights_gen", [f"{w:g}" for w in D.weights_gen],
                  "Generator loss weights (adversarial, content).")
    d.DEFINE_integer("unet_downs", D.unet_downs, "restore: UNet depth (default from --generator: "
                     "unet_128 = 7, unet_256 = 8); image sides must be multiples of 2**depth.")
    d.DEFINE_enum("encoder", D.encoder, ENCODERS,
                  "restore: UNet encoder. none = the plain UNet (--unet_downs / --generator); "
                  "resnet50 | mobilenet_v2 = a keras.applications body with skips at strides "
                  "2/4/8/16 and a stride-32 bottleneck (fastai's DynamicUnet); image sides must "
                  "be multiples of 32.")
    d.DEFINE_string("encoder_weights", D.encoder_weights,
                    "restore --encoder weights: imagenet (from the Keras cache "
                    "~/.keras/models or $KERAS_HOME/models, never downloaded) | PATH to the "
                    "no-top backbone's .h5 weights | none (random init).")
    d.DEFINE_float("encoder_alpha", D.encoder_alpha, "restore --encoder=mobilenet_v2 width multiplier "
                   "(ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).")
    d.DEFINE_integer("decoder_convs", D.decoder_convs, "restore --encoder: 3x3 conv blocks after each skip "
                     "concatenation in the decoder (fastai uses 2).")
    d.DEFINE_integer("freeze_encoder_steps", D.freeze_encoder_steps, "restore --encoder: train the first N "
                     "generator-pretraining steps with the encoder frozen (decoder only, "
                     "as fastai trains a frozen body first), then everything.")
    d.DEFINE_boolean("residual", D.residual, "A global skip: the generator outputs clip(input + "
                     "correction) and starts as the identity. Default on for restore (off: "
                     "fastai's y_range head), off for cycle_gan and pix2pix (the reference's "
                     "networks); use it for appearance and colour translation, not for shape "
                     "changes. Not used by colorize (its head predicts chroma).")
    d.DEFINE_float("gan_lr", D.gan_lr, "restore: generator learning rate in the GAN phase.")
    d.DEFINE_integer("eval_size", D.eval_size, "restore: side of the held-out evaluation crops.")
    d.DEFINE_float("critic_lr_mult", D.critic_lr_mult, "Critic learning rate multiplier in the GAN phase.")
    d.DEFINE_integer("pretrain_g_steps", D.pretrain_g_steps, "nogan: generator pretraining steps.")
    d.DEFINE_integer("pretrain_d_steps", D.pretrain_d_steps, "nogan: critic pretraining steps.")
    d.DEFINE_integer("gan_steps", D.gan_steps, "nogan: GAN phase steps.")
    # Output, logging, checkpoints.
    d.DEFINE_string("output_dir", D.output_dir, "Logs, checkpoints and generators.")
    d.DEFINE_integer("save_freq", D.save_freq, "Checkpoint every this many steps (and at the end).")
    d.DEFINE_integer("display_freq", D.display_freq, "TensorBoard image grids every this many steps.")
    d.DEFINE_integer("print_freq", D.print_freq, "TensorBoard scalars every this many steps.")
    d.DEFINE_integer("keep_checkpoints", D.keep_checkpoints, "Checkpoints kept.")
    d.DEFINE_string("export_dir", D.export_dir, "Export the trained generators here (SavedModel + "
                    "TFLite, verified) when training ends.")
    d.DEFINE_boolean("evaluate", D.evaluate, "restore: print the PSNR/SSIM table at the end.")
    d.DEFINE_integer("verbose", D.verbose, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")
    # Scale.
    d.DEFINE_enum("distribution", D.distribution, ("default", "mirrored", "multi_worker", "tpu"),
                  "tf.distribute strategy.")
    d.DEFINE_list("devices", D.devices, "Devices for --distribution=mirrored (default: all GPUs).")
    d.DEFINE_string("tpu", D.tpu, "TPU name or address for --distribution=tpu.")
    d.DEFINE_enum("driver", D.driver, ("auto", "fit", "loop"),
                  "Who drives train_step: Keras fit, or kgan's strategy.run loop (auto: loop "
                  "under multi_worker, where Keras 3 fit fails, else fit).")
    d.DEFINE_enum("mixed_precision", D.mixed_precision, ("float32", "mixed_float16", "mixed_bfloat16"),
                  "Compute dtype policy (variables stay float32).")
    d.DEFINE_boolean("jit_compile", D.jit_compile, "Compile the train step with XLA.")

    for alias, name in ALIASES:
        d.DEFINE_alias(alias, name)
    _record_groups()


def _record_groups():
    names = [name for name in FIELD_NAMES if name in flags.FLAGS]
    starts = [names.index(first) for _, first in _GROUP_STARTS] + [len(names)]
    FLAG_GROUPS[:] = [(title, names[starts[i]:starts[i + 1]])
                      for i, (title, _) in enumerate(_GROUP_STARTS)]


# The reference's spellings, old and new, so its users' command lines work unchanged.
ALIASES = (("netG", "generator"), ("which_model_netG", "generator"),
           ("netD", "discriminator"), ("which_model_netD", "discriminator"),
           ("n_layers_D", "n_layers_d"), ("n_epochs", "epochs"),
           ("niter", "epochs"), ("n_epochs_decay", "epochs_decay"),
           ("niter_decay", "epochs_decay"), ("lambda_L1", "lambda_l1"),
           ("beta1", "beta_1"), ("loadSize", "load_size"),
           ("fineSize", "crop_size"), ("which_direction", "direction"),
           ("identity", "lambda_identity"))
