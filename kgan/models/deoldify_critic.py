"""DeOldify's critic (jantic/DeOldify ``deoldify/critics.py`` ``custom_gan_critic``, MIT licence)
as a Keras network, so DeOldify's published ``*_crit.pth`` files convert
(kgan.interop.deoldify_weights.load_deoldify_critic) and a GAN phase can train against it.

DeOldify's critic, unlike fastai's ``gan_critic`` (kgan.models.discriminators.critic), has no
dense block: every down block is an extra 3x3 conv, dropout, then a 4x4 stride-2 conv that
doubles the filters (self-attention after the first), 256 -> 2048 filters at full size; every
conv is spectral-normed with a bias and LeakyReLU 0.2; the last conv is an unpadded 4x4 to one
logit per patch. Layers are named ``critic_<i>_<j>`` after DeOldify's ``nn.Sequential`` index
``<i>.<j>`` (``critic_4_0`` is ``4.0``, the first down block's conv; ``critic_4_2`` its
self-attention), which the conversion relies on.

Called by ``kgan.models`` (the ``--generator=deoldify_*`` training recipes' critic) and the
conversion.
"""

import keras
from keras import layers

from kgan.models.layers import LeakyReLU, SelfAttention2D, SizeCheck, SpectralNorm

PREFIX = "critic_"
# DeOldify's colourisers' critic: nf 256, three blocks: 94,555,649 parameters in 45 state-dict
# entries (the PyTorch rebuild in tests/fixtures/deoldify_reference.py); this builder's trainable
# count at nf 256 is the same.
FULL_NF = 256


def _conv(x, filters, kernel_size, strides, padding, use_bias, name, spectral_norm):
    if padding:
        x = layers.ZeroPadding2D(padding, name=name + "_pad")(x)
    conv = layers.Conv2D(filters, kernel_size, strides=strides, padding="valid",
                         use_bias=use_bias, kernel_initializer="he_normal", name=name)
    if spectral_norm:
        conv = SpectralNorm(conv, name=name + "_sn")
    return conv(x)


def deoldify_critic(nf=FULL_NF, n_blocks=3, dropout=0.15, in_channels=3, spectral_norm=True,
                    name="deoldify_critic"):
    """DeOldify's ``custom_gan_critic``.

    Args:
        nf: filters of the first conv (DeOldify's 256; doubled by each block).
        n_blocks: down blocks (DeOldify's 3).
        dropout: spatial dropout rate (half of it after the first conv).
        in_channels: input channels.
        spectral_norm: wrap every conv in spectral normalisation, ``SpectralNorm`` (power
            iteration while training, the stored kernel at inference; converted weights load
            as the normalised kernel and DeOldify's ``weight_u``).
        name: model name.

    Returns:
        A ``keras.Model`` mapping (N, H, W, in_channels) images to float32 patch logits
        (N, H', W', 1); reshaped to (N, H' * W') they are DeOldify's flattened output. Each
        stride-2 conv maps H to H // 2 and the last conv takes 3 off, so sides must be at
        least ``2 ** (n_blocks + 3)`` (64 gives one logit).
    """
    def conv(x, index, filters, kernel_size, strides, padding=1, activation=True,
             use_bias=True, attention=False):
        label = f"{PREFIX}{index}"
        x = _conv(x, filters, kernel_size, strides, padding, use_bias, label + "_0",
                  spectral_norm)
        if activation:
            x = LeakyReLU(0.2, name=label + "_1")(x)
        if attention:
            x = SelfAttention2D(spectral_norm=spectral_norm, kernel_initializer="he_normal",
                                name=label + "_2")(x)
        return x

    inputs = keras.Input((None, None, in_channels), name="image")
    x = SizeCheck(1, name, minimum=2 ** (n_blocks + 3), name="size_check")(inputs)
    x = conv(x, 0, nf, 4, 2)
    x = layers.SpatialDropout2D(dropout / 2, name=f"{PREFIX}1")(x)
    index = 2
    for i in range(n_blocks):
        x = conv(x, index, nf, 3, 1)
        x = layers.SpatialDropout2D(dropout, name=f"{PREFIX}{index + 1}")(x)
        x = conv(x, index + 2, nf * 2, 4, 2, attention=i == 0)
        nf, index = nf * 2, index + 3
    x = conv(x, index, nf, 3, 1)
    x = conv(x, index + 1, 1, 4, 1, padding=0, activation=False, use_bias=False)
    outputs = layers.Activation("linear", dtype="float32", name="logits_f32")(x)
    return keras.Model(inputs, outputs, name=name)
