"""The absl flags of ``python -m kgan.train``, named as the PyTorch reference (snake_case) with
its defaults, plus the reference's own spellings (old and new) as aliases.

Per-model defaults (pix2pix: unet_256, batch norm, dropout, vanilla GAN, no pool, aligned data)
are applied by ``kgan.train`` only to flags the user did not set, as the reference does."""

from absl import flags

from kgan.models import DISCRIMINATORS, ENCODERS, GENERATORS

MODELS = ("cycle_gan", "pix2pix", "restore")
PREPROCESS = ("resize_and_crop", "crop", "scale_width", "scale_width_and_crop", "none")
RESTORE_PHASES = ("pretrain_g", "pretrain_d", "gan", "nogan")

# Flags whose defaults depend on --model (applied when not given on the command line).
MODEL_DEFAULTS = {
    "cycle_gan": dict(generator="resnet_9blocks", norm="instance", no_dropout=True,
                      gan_mode="lsgan", pool_size=50),
    "pix2pix": dict(generator="unet_256", norm="batch", no_dropout=False, gan_mode="vanilla",
                    pool_size=0, lambda_l1=100.0),
    "restore": dict(generator="unet_128", norm="batch", no_dropout=True, gan_mode="vanilla",
                    pool_size=0, lr=1e-3, beta_1=0.9, beta_2=0.99, crop_size=64,
                    load_size=None, upsample="pixel_shuffle"),
}


def define_flags():
    """Defines every training flag once (safe to call twice)."""
    if "model" in flags.FLAGS:
        return
    d = flags
    # What to train.
    d.DEFINE_enum("model", "cycle_gan", MODELS, "cycle_gan | pix2pix | restore (NoGAN).")
    d.DEFINE_enum("generator", "resnet_9blocks", GENERATORS, "Generator architecture.")
    d.DEFINE_enum("discriminator", "basic", DISCRIMINATORS,
                  "basic (70x70 PatchGAN) | n_layers | pixel (1x1).")
    d.DEFINE_integer("n_layers_d", 3, "Discriminator conv layers for --discriminator=n_layers.")
    d.DEFINE_integer("ngf", 64, "Generator filters in the first conv layer.")
    d.DEFINE_integer("ndf", 64, "Discriminator filters in the first conv layer.")
    d.DEFINE_enum("norm", "instance", ("instance", "batch", "none"), "Normalisation layer.")
    d.DEFINE_enum("init_type", "normal", ("normal", "xavier", "kaiming", "orthogonal"),
                  "Weight initialisation.")
    d.DEFINE_float("init_gain", 0.02, "Scale of normal/xavier/orthogonal initialisation.")
    d.DEFINE_boolean("no_dropout", True, "No dropout in the generator (cycle_gan default).")
    d.DEFINE_enum("upsample", "transpose", ("transpose", "pixel_shuffle", "resize"),
                  "Generator upsampling; resize or pixel_shuffle avoid checkerboards.")
    d.DEFINE_boolean("spectral_norm", False, "Spectral normalisation in the discriminator.")
    # Losses.
    d.DEFINE_enum("gan_mode", "lsgan", ("lsgan", "vanilla", "hinge", "wgangp"), "GAN loss.")
    d.DEFINE_float("lambda_cycle", 10.0, "Cycle-consistency weight (both directions).")
    d.DEFINE_float("lambda_A", None, "Cycle weight A->B->A (reference name; default "
                   "--lambda_cycle).")
    d.DEFINE_float("lambda_B", None, "Cycle weight B->A->B (reference name; default "
                   "--lambda_cycle).")
    d.DEFINE_float("lambda_identity", 0.5, "Identity weight, relative to the cycle weight.")
    d.DEFINE_float("lambda_l1", 100.0, "pix2pix L1 weight.")
    d.DEFINE_float("lambda_gp", 10.0, "Gradient-penalty weight for --gan_mode=wgangp.")
    d.DEFINE_integer("pool_size", 50, "Image history pool size per domain; 0 disables.")
    # Optimisation.
    d.DEFINE_float("lr", 2e-4, "Initial Adam learning rate.")
    d.DEFINE_float("beta_1", 0.5, "Adam beta_1.")
    d.DEFINE_float("beta_2", 0.999, "Adam beta_2.")
    d.DEFINE_integer("epochs", 100, "Epochs at the initial learning rate.")
    d.DEFINE_integer("epochs_decay", 100, "Epochs of linear learning-rate decay to ~0.")
    d.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (default: the larger domain "
                     "size // batch_size, as the reference).")
    d.DEFINE_integer("max_steps", None, "Stop after this many steps in total (short runs).")
    d.DEFINE_integer("batch_size", 1, "Global batch size (split across replicas).")
    d.DEFINE_integer("seed", None, "Random seed for weights, data order and augmentation.")
    # Data.
    d.DEFINE_string("dataroot", None, "Image folder root (trainA/trainB, or train/ for "
                    "pix2pix). Without it and --tfds_name: the built-in sample data.")
    d.DEFINE_string("tfds_name", None, "TensorFlow Datasets name, e.g. cycle_gan/horse2zebra.")
    d.DEFINE_string("tfds_data_dir", None, "TensorFlow Datasets data_dir.")
    d.DEFINE_enum("preprocess", "resize_and_crop", PREPROCESS, "Training preprocessing.")
    d.DEFINE_integer("load_size", 286, "Resize images to this size before cropping.")
    d.DEFINE_integer("crop_size", 256, "Crop to this size.")
    d.DEFINE_boolean("no_flip", False, "No random horizontal flips.")
    d.DEFINE_integer("max_dataset_size", None, "Use at most this many images per domain.")
    d.DEFINE_boolean("serial_batches", False, "Take B images in order instead of at random.")
    d.DEFINE_enum("direction", "AtoB", ("AtoB", "BtoA"), "pix2pix direction.")
    # Restoration (NoGAN).
    d.DEFINE_enum("phase", "nogan", RESTORE_PHASES, "Restoration phase to run.")
    d.DEFINE_list("degradations", ["downscale", "jpeg"], "Crappify degradations.")
    d.DEFINE_enum("content_loss", "auto", ("auto", "perceptual", "l1", "l1_ssim"),
                  "Restoration content loss; auto = perceptual when VGG16 weights exist.")
    d.DEFINE_string("vgg_weights", "imagenet", "imagenet (Keras cache) | PATH | none.")
    d.DEFINE_enum("perceptual_preset", "fastai", ("fastai", "deoldify"),
                  "Perceptual loss layer weights.")
    d.DEFINE_boolean("self_attention", True, "Self-attention in the restoration UNet.")
    d.DEFINE_integer("critic_nf", 64, "Filters of the restoration critic's first conv.")
    d.DEFINE_float("critic_thresh", 0.65, "Adaptive switcher: train the critic until its loss "
                   "falls below this, then the generator.")
    d.DEFINE_list("weights_gen", ["1", "50"], "Generator loss weights (adversarial, content).")
    d.DEFINE_integer("unet_downs", None, "restore: UNet depth (default from --generator: "
                     "unet_128 = 7, unet_256 = 8); image sides must be multiples of 2**depth.")
    d.DEFINE_enum("encoder", "none", ENCODERS,
                  "restore: UNet encoder. none = the plain UNet (--unet_downs / --generator); "
                  "resnet50 | mobilenet_v2 = a keras.applications body with skips at strides "
                  "2/4/8/16 and a stride-32 bottleneck (fastai's DynamicUnet); image sides must "
                  "be multiples of 32.")
    d.DEFINE_string("encoder_weights", "imagenet",
                    "restore --encoder weights: imagenet (from the Keras cache "
                    "~/.keras/models or $KERAS_HOME/models, never downloaded) | PATH to the "
                    "no-top backbone's .h5 weights | none (random init).")
    d.DEFINE_float("encoder_alpha", 1.0, "restore --encoder=mobilenet_v2 width multiplier "
                   "(ImageNet weights exist for 0.35, 0.5, 0.75, 1.0, 1.3, 1.4).")
    d.DEFINE_integer("decoder_convs", 1, "restore --encoder: 3x3 conv blocks after each skip "
                     "concatenation in the decoder (fastai uses 2).")
    d.DEFINE_integer("freeze_encoder_steps", 0, "restore --encoder: train the first N "
                     "generator-pretraining steps with the encoder frozen (decoder only, "
                     "as fastai trains a frozen body first), then everything.")
    d.DEFINE_boolean("residual", True, "restore: the generator outputs input + correction "
                     "and starts as the identity (off: fastai's y_range head).")
    d.DEFINE_float("gan_lr", 1e-4, "restore: generator learning rate in the GAN phase.")
    d.DEFINE_integer("eval_size", 256, "restore: side of the held-out evaluation crops.")
    d.DEFINE_float("critic_lr_mult", 5.0, "Critic learning rate multiplier in the GAN phase.")
    d.DEFINE_integer("pretrain_g_steps", 300, "nogan: generator pretraining steps.")
    d.DEFINE_integer("pretrain_d_steps", 60, "nogan: critic pretraining steps.")
    d.DEFINE_integer("gan_steps", 60, "nogan: GAN phase steps.")
    # Output, logging, checkpoints.
    d.DEFINE_string("output_dir", "runs/experiment", "Logs, checkpoints and generators.")
    d.DEFINE_integer("save_freq", 500, "Checkpoint every this many steps (and at the end).")
    d.DEFINE_integer("display_freq", 400, "TensorBoard image grids every this many steps.")
    d.DEFINE_integer("print_freq", 100, "TensorBoard scalars every this many steps.")
    d.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
    d.DEFINE_string("export_dir", None, "Export the trained generators here (SavedModel + "
                    "TFLite, verified) when training ends.")
    d.DEFINE_boolean("evaluate", True, "restore: print the PSNR/SSIM table at the end.")
    d.DEFINE_integer("verbose", 1, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")
    # Scale.
    d.DEFINE_enum("distribution", "default", ("default", "mirrored", "multi_worker", "tpu"),
                  "tf.distribute strategy.")
    d.DEFINE_list("devices", None, "Devices for --distribution=mirrored (default: all GPUs).")
    d.DEFINE_string("tpu", None, "TPU name or address for --distribution=tpu.")
    d.DEFINE_enum("driver", "auto", ("auto", "fit", "loop"),
                  "Who drives train_step: Keras fit, or kgan's strategy.run loop (auto: loop "
                  "under multi_worker, where Keras 3 fit fails, else fit).")
    d.DEFINE_enum("mixed_precision", "float32", ("float32", "mixed_float16", "mixed_bfloat16"),
                  "Compute dtype policy (variables stay float32).")
    d.DEFINE_boolean("jit_compile", False, "Compile the train step with XLA.")

    for alias, name in ALIASES:
        d.DEFINE_alias(alias, name)


# The reference's spellings, old and new, so its users' command lines work unchanged.
ALIASES = (("netG", "generator"), ("which_model_netG", "generator"),
           ("netD", "discriminator"), ("which_model_netD", "discriminator"),
           ("n_layers_D", "n_layers_d"), ("n_epochs", "epochs"),
           ("niter", "epochs"), ("n_epochs_decay", "epochs_decay"),
           ("niter_decay", "epochs_decay"), ("lambda_L1", "lambda_l1"),
           ("beta1", "beta_1"), ("loadSize", "load_size"),
           ("fineSize", "crop_size"), ("which_direction", "direction"),
           ("identity", "lambda_identity"))
