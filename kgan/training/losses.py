"""Losses: GAN objectives, L1 reconstruction terms, and the VGG16 perceptual (feature) loss.

Convention: every function here returns a **per-example** loss of shape (N,). Trainers sum
per-example losses and divide by the *global* batch size (``reduce_global``), so N replicas
give the same gradients as one device on the same global batch. Nothing here divides by the
number of replicas on its own (unlike Keras >= 3.8 ``Loss`` objects).
"""


import keras
import tensorflow as tf
from absl import logging

from kgan.core.errors import KganError
from kgan.core.weights import keras_cache_path, resolve_weights_file

GAN_MODES = ("lsgan", "vanilla", "hinge", "wgangp")
VGG_WEIGHTS_FILE = "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"
PERCEPTUAL_PRESETS = {
    # fastai course-v3 lesson 7 FeatureLoss: pixel L1 + features + Gram x 5e3.
    "fastai": dict(layers=("block3_conv3", "block4_conv3", "block5_conv3"),
                   layer_weights=(5.0, 15.0, 2.0), gram_weight=5e3, pixel_weight=1.0),
    # DeOldify: same layers, weights 20/70/10, no Gram term.
    "deoldify": dict(layers=("block3_conv3", "block4_conv3", "block5_conv3"),
                     layer_weights=(20.0, 70.0, 10.0), gram_weight=0.0, pixel_weight=1.0),
}


def _per_example_mean(x):
    """Mean over every axis but the first, in float32."""
    x = tf.cast(x, tf.float32)
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def reduce_global(per_example, global_batch_size):
    """Sums a per-example loss and divides by the global batch (``tf.nn.compute_average_loss``
    semantics): the per-replica value whose gradients, summed over replicas, equal the
    single-device gradients of the global mean."""
    return tf.reduce_sum(per_example) / tf.cast(global_batch_size, tf.float32)


def check_gan_mode(gan_mode):
    """Raises a clear error for an unknown ``gan_mode``."""
    if gan_mode not in GAN_MODES:
        raise ValueError(f"Unknown gan_mode {gan_mode!r}; use one of {', '.join(GAN_MODES)}.")


def gan_loss(logits, target_is_real, gan_mode):
    """The reference's ``GANLoss`` on a patch-logit map, per example.

    Args:
        logits: discriminator output (N, H, W, 1), no sigmoid applied.
        target_is_real: whether the target label is "real".
        gan_mode: ``lsgan`` (MSE to 1/0), ``vanilla`` (BCE with logits), ``hinge`` or
            ``wgangp`` (the Wasserstein critic term; the gradient penalty is separate).

    Returns:
        (N,) float32 losses.
    """
    check_gan_mode(gan_mode)
    logits = tf.cast(logits, tf.float32)
    if gan_mode == "lsgan":
        target = 1.0 if target_is_real else 0.0
        return _per_example_mean(tf.square(logits - target))
    if gan_mode == "vanilla":
        labels = tf.ones_like(logits) if target_is_real else tf.zeros_like(logits)
        return _per_example_mean(
            tf.nn.sigmoid_cross_entropy_with_logits(labels=labels, logits=logits))
    if gan_mode == "hinge":
        # Discriminator side of the hinge loss; the generator side is generator_loss().
        sign = -1.0 if target_is_real else 1.0
        return _per_example_mean(tf.nn.relu(1.0 + sign * logits))
    return _per_example_mean(-logits if target_is_real else logits)


def generator_loss(fake_logits, gan_mode):
    """Adversarial loss of the generator (wants its fakes judged real), per example."""
    check_gan_mode(gan_mode)
    if gan_mode in ("hinge", "wgangp"):
        return _per_example_mean(-tf.cast(fake_logits, tf.float32))
    return gan_loss(fake_logits, True, gan_mode)


def discriminator_loss(real_logits, fake_logits, gan_mode):
    """0.5 * (loss on real + loss on fake), as the reference, per example."""
    return 0.5 * (gan_loss(real_logits, True, gan_mode) + gan_loss(fake_logits, False, gan_mode))


def gradient_penalty(discriminator, real, fake, seed=None):
    """WGAN-GP penalty (Gulrajani et al.): (||grad D(x_hat)||_2 - 1)^2 at random interpolates
    of real and fake, per example. Multiply by lambda_gp (10) in the trainer.

    Args:
        discriminator: callable mapping images to logits.
        real, fake: (N, H, W, C) images.
        seed: optional stateless seed (shape [2]) for the interpolation weights.

    Returns:
        (N,) float32 penalties.
    """
    batch = tf.shape(real)[0]
    shape = [batch, 1, 1, 1]
    if seed is None:
        alpha = tf.random.uniform(shape)
    else:
        alpha = tf.random.stateless_uniform(shape, seed=seed)
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    interpolated = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(interpolated)
        logits = tf.cast(discriminator(interpolated, training=True), tf.float32)
    grads = tape.gradient(logits, interpolated)
    norm = tf.sqrt(tf.reduce_sum(tf.square(tf.reshape(grads, [batch, -1])), axis=1) + 1e-12)
    return tf.square(norm - 1.0)


def l1_loss(prediction, target):
    """Mean absolute error per example (cycle, identity, pix2pix L1 terms)."""
    return _per_example_mean(tf.abs(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)))


def ssim_loss(prediction, target):
    """1 - SSIM per example, for images in [-1, 1] (SSIM computed on [0, 1])."""
    to_unit = lambda x: (tf.cast(x, tf.float32) + 1.0) / 2.0
    return 1.0 - tf.image.ssim(to_unit(prediction), to_unit(target), max_val=1.0)


def gram_matrix(features):
    """Gram matrix F^T F / (C * H * W) per example, as fastai's ``gram_matrix``.

    Args:
        features: (N, H, W, C) activations.

    Returns:
        (N, C, C) float32.
    """
    features = tf.cast(features, tf.float32)
    shape = tf.shape(features)
    n, h, w, c = shape[0], shape[1], shape[2], shape[3]
    flat = tf.reshape(features, [n, h * w, c])
    gram = tf.matmul(flat, flat, transpose_a=True)
    return gram / tf.cast(c * h * w, tf.float32)


class VGGWeightsMissingError(KganError, FileNotFoundError):
    """The ImageNet VGG16 weights are not on this machine (and cannot be downloaded)."""


def resolve_vgg_weights(vgg_weights):
    """Turns ``--vgg_weights`` into what ``keras.applications.VGG16(weights=...)`` takes.

    Args:
        vgg_weights: ``imagenet`` (from the Keras cache, never downloaded), a path to the
            no-top .h5 file, or ``none`` (random weights: for tests only).

    Returns:
        A file path, or None for random weights.

    Raises:
        VGGWeightsMissingError: the weights file is not there, with the file name to place.
    """
    if vgg_weights in (None, "none"):
        logging.warning("VGG16 has RANDOM weights (--vgg_weights=none): the perceptual loss "
                        "is meaningless except for tests.")
        return None
    message = ("VGG16 ImageNet weights not found at {path}. This machine cannot download "
               "them: place {filename} (58,889,256 bytes, from the keras-applications release) "
               "in {folder}/ or pass --vgg_weights=/path/to/{filename}; or train with a pixel "
               "content loss (--content_loss=l1_ssim).")
    return resolve_weights_file(vgg_weights, VGG_WEIGHTS_FILE, VGGWeightsMissingError,
                                message, message)


def vgg_weights_available(vgg_weights="imagenet"):
    """True when ``resolve_vgg_weights`` would find a weights file."""
    if vgg_weights in (None, "none"):
        return False
    try:
        resolve_vgg_weights(vgg_weights)
    except VGGWeightsMissingError:
        return False
    return True


def vgg_preprocess(images):
    """[-1, 1] RGB -> Keras VGG16 'caffe' input: 0-255, BGR, ImageNet mean subtracted."""
    x = (tf.cast(images, tf.float32) + 1.0) * 127.5
    x = x[..., ::-1]
    return x - tf.constant([103.939, 116.779, 123.68], tf.float32)


def _non_trainable_creator(next_creator, **kwargs):
    """A ``tf.variable_creator_scope`` creator making every variable non-trainable."""
    kwargs["trainable"] = False
    return next_creator(**kwargs)


def build_vgg_features(layers, vgg_weights="imagenet"):
    """A frozen VGG16 returning the activations of ``layers``.

    Args:
        layers: VGG16 layer names, e.g. ``block3_conv3``.
        vgg_weights: see ``resolve_vgg_weights``.

    Returns:
        A non-trainable ``keras.Model`` mapping VGG-preprocessed images to a list of features.
    """
    weights = resolve_vgg_weights(vgg_weights)
    # `model.trainable = False` only hides the weights from Keras: the TensorFlow variables
    # underneath stay trainable, so a GradientTape would still watch them and compute their
    # gradients. Creating them non-trainable keeps every gradient out of VGG.
    with tf.variable_creator_scope(_non_trainable_creator):
        vgg = keras.applications.VGG16(include_top=False, weights=weights,
                                       input_shape=(None, None, 3))
    names = [layer.name for layer in vgg.layers]
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise ValueError(f"Unknown VGG16 layers {unknown}; choose from "
                         f"{', '.join(n for n in names if 'conv' in n)}.")
    model = keras.Model(vgg.input, [vgg.get_layer(name).output for name in layers],
                        name="vgg16_features")
    model.trainable = False
    return model


class PerceptualLoss:
    """fastai's FeatureLoss / Johnson et al.: pixel L1 + sum_i w_i L1(feat_i) +
    sum_i w_i^2 * gram_weight * L1(gram_i), on a frozen Keras VGG16.

    Args:
        layers: VGG16 layers whose activations are compared.
        layer_weights: one weight per layer.
        gram_weight: multiplier of the Gram terms (5e3 in fastai; 0 disables them).
        pixel_weight: weight of the pixel L1 term.
        vgg_weights: ``imagenet``, a path, or ``none`` (tests only).
        preset: ``fastai`` or ``deoldify`` fills layers/weights/gram (explicit args win).
    """

    def __init__(self, layers=None, layer_weights=None, gram_weight=None, pixel_weight=None,
                 vgg_weights="imagenet", preset="fastai"):
        if preset not in PERCEPTUAL_PRESETS:
            raise ValueError(f"Unknown perceptual preset {preset!r}; use one of "
                             f"{', '.join(PERCEPTUAL_PRESETS)}.")
        defaults = PERCEPTUAL_PRESETS[preset]
        self.layers = tuple(layers or defaults["layers"])
        self.layer_weights = tuple(layer_weights or defaults["layer_weights"])
        if len(self.layers) != len(self.layer_weights):
            raise ValueError(f"{len(self.layers)} VGG layers but {len(self.layer_weights)} "
                             "layer weights: give one weight per layer.")
        self.gram_weight = defaults["gram_weight"] if gram_weight is None else gram_weight
        self.pixel_weight = defaults["pixel_weight"] if pixel_weight is None else pixel_weight
        self.features = build_vgg_features(self.layers, vgg_weights)

    def terms(self, prediction, target):
        """Each term of the loss, per example, by name (pixel, feat_<layer>, gram_<layer>)."""
        out = {"pixel": self.pixel_weight * l1_loss(prediction, target)}
        # Two VGG calls, not one on the concatenated pair: the target's features carry no
        # gradient (VGG is frozen and the target is data), and apart the backward pass runs on
        # the prediction's half only (on the pair it ran on both: at 192^2, batch 8, one more
        # VGG forward's FLOPs and a 110 ms StridedSliceGrad per step).
        pred_feats, target_feats = (
            self._features(vgg_preprocess(prediction)),
            [tf.stop_gradient(f) for f in self._features(vgg_preprocess(target))])
        for name, weight, pred_feat, target_feat in zip(self.layers, self.layer_weights,
                                                        pred_feats, target_feats):
            out["feat_" + name] = weight * l1_loss(pred_feat, target_feat)
            if self.gram_weight:
                out["gram_" + name] = (weight ** 2 * self.gram_weight *
                                       l1_loss(gram_matrix(pred_feat), gram_matrix(target_feat)))
        return out

    def __call__(self, prediction, target):
        """The total loss per example, (N,) float32."""
        return tf.add_n(list(self.terms(prediction, target).values()))

    def _features(self, images):
        feats = self.features(images, training=False)
        return feats if isinstance(feats, (list, tuple)) else [feats]


class PixelContentLoss:
    """Content loss that needs no pretrained weights: L1 + ssim_weight * (1 - SSIM).

    Args:
        ssim_weight: weight of the SSIM term (0 gives plain L1).
    """

    def __init__(self, ssim_weight=0.5):
        self.ssim_weight = float(ssim_weight)

    def terms(self, prediction, target):
        out = {"pixel": l1_loss(prediction, target)}
        if self.ssim_weight:
            out["ssim"] = self.ssim_weight * ssim_loss(prediction, target)
        return out

    def __call__(self, prediction, target):
        return tf.add_n(list(self.terms(prediction, target).values()))


CONTENT_LOSSES = ("auto", "perceptual", "l1", "l1_ssim")


def build_content_loss(content_loss="auto", vgg_weights="imagenet", preset="fastai"):
    """Picks the restoration content loss and says which one runs.

    Args:
        content_loss: ``perceptual`` (VGG16; needs weights), ``l1``, ``l1_ssim``, or ``auto``:
            perceptual when the VGG16 weights are present, else l1_ssim — never a perceptual
            loss on random VGG features unless ``vgg_weights=none`` is asked for explicitly.
        vgg_weights: ``imagenet``, a path, or ``none``.
        preset: perceptual preset (``fastai`` or ``deoldify``).

    Returns:
        (loss object with ``__call__`` and ``terms``, name of the loss that runs).
    """
    if content_loss not in CONTENT_LOSSES:
        raise ValueError(f"Unknown content_loss {content_loss!r}; use one of "
                         f"{', '.join(CONTENT_LOSSES)}.")
    if content_loss == "auto":
        if vgg_weights_available(vgg_weights):
            content_loss = "perceptual"
        else:
            logging.warning("VGG16 ImageNet weights not found (%s): using the pixel content "
                            "loss l1_ssim instead of the perceptual loss. Place %s there to "
                            "train with the perceptual loss.",
                            keras_cache_path(VGG_WEIGHTS_FILE), VGG_WEIGHTS_FILE)
            content_loss = "l1_ssim"
    if content_loss == "perceptual":
        loss = PerceptualLoss(vgg_weights=vgg_weights, preset=preset)
        name = f"perceptual ({preset}, VGG16 {vgg_weights})"
    elif content_loss == "l1":
        loss, name = PixelContentLoss(ssim_weight=0.0), "l1"
    else:
        loss, name = PixelContentLoss(), "l1_ssim"
    logging.info("Content loss: %s", name)
    return loss, name
