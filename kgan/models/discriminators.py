"""Discriminator builders: PatchGAN (``basic`` / ``n_layers``), the 1x1 ``pixel`` GAN, and the
fastai-style restoration critic. All return patch logit maps (no sigmoid), float32."""

import functools

import keras
from keras import layers

from kgan.models.common import apply_norm, kernel_initializer, uses_bias
from kgan.models.layers import LeakyReLU, SelfAttention2D, SizeCheck
from kgan.models.layers import spectral_norm as wrap_spectral_norm


def _conv(filters, kernel_size, strides, use_bias, init, name, sn, padding="same"):
    """A Conv2D, spectral-normed when ``sn``. ``init`` makes a new initialiser: a Keras
    initialiser instance repeats the same values for every layer that shares it."""
    conv = layers.Conv2D(filters, kernel_size, strides=strides, padding=padding,
                         use_bias=use_bias, kernel_initializer=init(), name=name)
    return wrap_spectral_norm(conv) if sn else conv


def _conv4(x, filters, strides, use_bias, init, name, sn):
    """A 4x4 conv zero-padded by 1 on every side, as PyTorch's ``padding=1``. Keras' 'same'
    would pad a stride-2 conv of an odd-sized input on one side only and so change the map
    size; explicit padding gives the reference's sizes for every input."""
    x = layers.ZeroPadding2D(1, name=name + "_pad")(x)
    return _conv(filters, 4, strides, use_bias, init, name, sn, padding="valid")(x)


def patchgan_discriminator(in_channels=3, ndf=64, n_layers=3, norm="instance",
                           spectral_norm=False, init_type="normal", init_gain=0.02, name=None):
    """The reference ``NLayerDiscriminator`` (70x70 PatchGAN for ``n_layers=3``).

    Args:
        in_channels: input channels (3 for CycleGAN, 6 for pix2pix's (input, output) pair).
        ndf: filters of the first conv.
        n_layers: stride-2 conv layers; 3 is the ``basic`` 70x70 PatchGAN.
        norm: ``instance``, ``batch`` or ``none``.
        spectral_norm: wrap every conv in spectral normalisation.
        init_type, init_gain: weight initialisation as the reference.
        name: model name.

    Returns:
        A ``keras.Model`` mapping (N, H, W, in_channels) to float32 logits (N, H', W', 1);
        30x30 for 256x256 inputs with ``n_layers=3``. Sizes follow the reference: each
        stride-2 conv maps H to H // 2 and the two stride-1 convs take one pixel off each,
        so sides must be at least ``3 * 2**n_layers``.
    """
    name = name or f"patchgan_{n_layers}layers"
    init = functools.partial(kernel_initializer, init_type, init_gain)
    bias = uses_bias(norm)
    inputs = keras.Input((None, None, in_channels), name="image")
    x = SizeCheck(1, name, minimum=3 * 2 ** n_layers, name="size_check")(inputs)
    x = _conv4(x, ndf, 2, True, init, "conv0", spectral_norm)
    x = LeakyReLU(0.2, name="conv0_lrelu")(x)
    for n in range(1, n_layers + 1):
        filters = ndf * min(2 ** n, 8)
        strides = 2 if n < n_layers else 1
        x = _conv4(x, filters, strides, bias, init, f"conv{n}", spectral_norm)
        x = apply_norm(x, norm, f"conv{n}_norm", init_gain)
        x = LeakyReLU(0.2, name=f"conv{n}_lrelu")(x)
    x = _conv4(x, 1, 1, True, init, "logits", spectral_norm)
    outputs = layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, outputs, name=name)


def pixel_discriminator(in_channels=3, ndf=64, norm="instance", init_type="normal",
                        init_gain=0.02, name="pixel_gan", spectral_norm=False):
    """The reference 1x1 PatchGAN (``PixelDiscriminator``): judges every pixel on its own.

    Args:
        in_channels: input channels.
        ndf: filters of the first 1x1 conv.
        norm: ``instance``, ``batch`` or ``none``.
        init_type, init_gain: weight initialisation as the reference.
        name: model name.
        spectral_norm: wrap every conv in spectral normalisation.

    Returns:
        A ``keras.Model`` mapping (N, H, W, in_channels) to float32 logits (N, H, W, 1).
    """
    init = functools.partial(kernel_initializer, init_type, init_gain)
    bias = uses_bias(norm)
    inputs = keras.Input((None, None, in_channels), name="image")
    x = _conv(ndf, 1, 1, True, init, "conv0", spectral_norm)(inputs)
    x = LeakyReLU(0.2, name="conv0_lrelu")(x)
    x = _conv(ndf * 2, 1, 1, bias, init, "conv1", spectral_norm)(x)
    x = apply_norm(x, norm, "conv1_norm", init_gain)
    x = LeakyReLU(0.2, name="conv1_lrelu")(x)
    x = _conv(1, 1, 1, bias, init, "logits", spectral_norm)(x)
    outputs = layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, outputs, name=name)


def critic(in_channels=3, nf=128, n_blocks=3, dropout=0.15, self_attention=True,
           name="critic"):
    """The restoration critic after fastai's ``gan_critic``: spectral-normed convs with
    LeakyReLU 0.2, spatial dropout, a dense residual block, self-attention in the first
    down block, no batch norm, and a patch-logit output.

    Args:
        in_channels: input channels.
        nf: filters of the first conv (doubled by the dense block and each down block).
        n_blocks: stride-2 down blocks after the stem.
        dropout: spatial dropout rate (half of it after the stem).
        self_attention: SAGAN attention after the first down block.
        name: model name.

    Returns:
        A ``keras.Model`` mapping (N, H, W, in_channels) to float32 patch logits
        (N, H', W', 1). Like fastai, each stride-2 conv maps H to H // 2 and the last conv is
        an unpadded 4x4, so sides must be at least ``2**(n_blocks + 3)`` (64 for
        ``n_blocks=3``, giving a 1x1 map; 128 gives 5x5).
    """
    init = keras.initializers.HeNormal  # a fresh initialiser per conv, see _conv

    def conv_lrelu(x, filters, kernel_size, strides, label):
        if kernel_size == 4:
            x = _conv4(x, filters, strides, True, init, label, True)
        else:
            x = _conv(filters, kernel_size, strides, True, init, label, True)(x)
        return LeakyReLU(0.2, name=label + "_lrelu")(x)

    inputs = keras.Input((None, None, in_channels), name="image")
    x = SizeCheck(1, name, minimum=2 ** (n_blocks + 3), name="size_check")(inputs)
    x = conv_lrelu(x, nf, 4, 2, "stem")
    x = layers.SpatialDropout2D(dropout / 2, name="stem_dropout")(x)
    y = conv_lrelu(x, nf, 3, 1, "dense_conv1")
    y = conv_lrelu(y, nf, 3, 1, "dense_conv2")
    x = layers.Concatenate(name="dense_concat")([x, y])
    filters = nf * 2
    for i in range(n_blocks):
        x = layers.SpatialDropout2D(dropout, name=f"down{i}_dropout")(x)
        x = conv_lrelu(x, filters * 2, 4, 2, f"down{i}")
        if self_attention and i == 0:
            x = SelfAttention2D(spectral_norm=True, name="self_attention")(x)
        filters *= 2
    x = _conv(1, 4, 1, False, init, "logits", True, padding="valid")(x)
    outputs = layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, outputs, name=name)
