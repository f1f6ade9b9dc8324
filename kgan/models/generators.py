"""Generator builders: the reference ResNet-block and UNet generators, plus the restoration
options (self-attention, pixel-shuffle + blur upsampling, sigmoid y_range head) and a UNet on a
pretrained keras.applications encoder (fastai's DynamicUnet).

All builders return functional ``keras.Model`` objects taking float images in [-1, 1] of any
spatial size that is a multiple of the network's ``size_multiple``.
"""

import functools

import keras
from keras import layers

from kgan.models import encoders
from kgan.models.common import apply_norm, kernel_initializer, uses_bias
from kgan.models.layers import (
    Blur,
    Cropping2D,
    PixelShuffle,
    ReflectionPadding2D,
    SelfAttention2D,
    SigmoidRange,
    SizeCheck,
)

UPSAMPLE_MODES = ("transpose", "pixel_shuffle", "resize")


def _pad_conv(x, filters, kernel_size, padding, use_bias, init, name):
    """A stride-1 conv with 'reflect' (explicit ReflectionPadding2D) or 'zero' padding.

    ``init`` here and below is a function making a new initialiser for each layer: a Keras
    initialiser instance repeats the same values for every layer that shares it.
    """
    if padding == "reflect":
        x = ReflectionPadding2D(kernel_size // 2, name=name + "_pad")(x)
        conv_padding = "valid"
    elif padding == "zero":
        conv_padding = "same"
    else:
        raise ValueError(f"Unknown padding {padding!r}; use 'reflect' or 'zero'.")
    return layers.Conv2D(filters, kernel_size, padding=conv_padding, use_bias=use_bias,
                         kernel_initializer=init(), name=name)(x)


def _upsample(x, filters, mode, use_bias, init, name):
    """Doubles height and width: transposed conv (k3 s2, as the reference), ICNR pixel shuffle
    followed by blur (fastai), or nearest resize + 3x3 conv (no checkerboard)."""
    if mode == "transpose":
        # PyTorch's ConvTranspose2d(k3, s2, padding=1, output_padding=1) is the unpadded
        # transposed conv (2H + 1 rows) without its first row and column; Keras' 'same'
        # would drop the last ones instead, shifting the output by one pixel.
        x = layers.Conv2DTranspose(filters, 3, strides=2, padding="valid", use_bias=use_bias,
                                   kernel_initializer=init(), name=name)(x)
        return Cropping2D(((1, 0), (1, 0)), name=name + "_crop")(x)
    if mode == "pixel_shuffle":
        x = PixelShuffle(filters, 2, activation=None, name=name)(x)
        return Blur(name=name + "_blur")(x)
    if mode == "resize":
        x = layers.UpSampling2D(2, interpolation="nearest", name=name + "_resize")(x)
        return layers.Conv2D(filters, 3, padding="same", use_bias=use_bias,
                             kernel_initializer=init(), name=name)(x)
    raise ValueError(f"Unknown upsample {mode!r}; use one of {', '.join(UPSAMPLE_MODES)}.")


def _unet_upsample(x, filters, mode, use_bias, init, name):
    """A UNet up step: the reference's 4x4 stride-2 transposed conv, or ``_upsample``."""
    if mode == "transpose":
        return layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=use_bias,
                                      kernel_initializer=init(), name=name)(x)
    return _upsample(x, filters, mode, use_bias, init, name)


def _unet_decoder(x, skips, channels, output_filters, norm, bias, init, init_gain, upsample,
                  dropout_levels=(), self_attention_level=None, decoder_convs=0):
    """The UNet decoder shared by ``unet_generator`` and ``encoder_unet_generator``.

    Level ``i`` (from ``len(skips)`` down to 0) is ReLU -> upsample x2 -> norm (-> dropout)
    -> concatenate ``skips[i - 1]`` (stride ``2**i``) -> ``decoder_convs`` 3x3 conv + norm +
    ReLU blocks (fastai's UnetBlock has two) (-> self-attention at ``self_attention_level``).
    Level 0 only upsamples to full resolution, to ``output_filters`` channels with a bias.

    Args:
        x: the bottleneck, at stride ``2**(len(skips) + 1)``.
        skips: skip tensors; ``skips[i - 1]`` is at stride ``2**i``.
        channels: ``channels[i - 1]`` is the number of filters of level ``i``.
        output_filters: filters of the outermost up step.
        norm, bias, init, init_gain: as the builders.
        upsample: ``transpose``, ``pixel_shuffle`` or ``resize``.
        dropout_levels: levels with dropout 0.5 after the norm (the reference's).
        self_attention_level: the level followed by self-attention (3 = stride 8), or None.
        decoder_convs: 3x3 conv blocks after each concatenation.

    Returns:
        The full-resolution tensor before the output head.
    """
    for i in reversed(range(len(skips) + 1)):
        x = layers.ReLU(name=f"up{i}_relu")(x)
        if i == 0:
            return _unet_upsample(x, output_filters, upsample, True, init, f"up{i}")
        x = _unet_upsample(x, channels[i - 1], upsample, bias, init, f"up{i}")
        x = apply_norm(x, norm, f"up{i}_norm", init_gain)
        if i in dropout_levels:
            x = layers.Dropout(0.5, name=f"up{i}_dropout")(x)
        x = layers.Concatenate(name=f"skip{i}")([skips[i - 1], x])
        for j in range(decoder_convs):
            prefix = f"up{i}_conv{j + 1}"
            x = layers.Conv2D(channels[i - 1], 3, padding="same", use_bias=bias,
                              kernel_initializer=init(), name=prefix)(x)
            x = apply_norm(x, norm, prefix + "_norm", init_gain)
            x = layers.ReLU(name=prefix + "_relu")(x)
        if i == self_attention_level:
            x = SelfAttention2D(spectral_norm=True, name="self_attention")(x)
    return x


def _clipped_residual(inputs, correction, name="residual"):
    """``clip(inputs + correction, -1, 1)`` in float32 with builtin layers only (so the model
    saves with ``safe_mode=True`` and converts to TFLite builtins): the clip is
    ``relu6``-style ``min(max(v + 1, 0), 2) - 1``."""
    x = layers.Activation("linear", dtype="float32", name=name + "_correction_f32")(correction)
    x = layers.Add(dtype="float32", name=name)([inputs, x])
    x = layers.Rescaling(1.0, offset=1.0, dtype="float32", name=name + "_shift")(x)
    x = layers.ReLU(max_value=2.0, dtype="float32", name=name + "_clip")(x)
    return layers.Rescaling(1.0, offset=-1.0, dtype="float32", name=name + "_unshift")(x)


def _output_head(x, inputs, ngf, last_cross, residual, y_range, output_channels, init):
    """The UNet output: optional fastai ``last_cross`` block, then an identity-initialised
    residual output, a sigmoid ``y_range`` head or tanh (see ``unet_generator``)."""
    input_channels = inputs.shape[-1]
    if last_cross:
        x = layers.ReLU(name="cross_relu")(x)
        x = layers.Concatenate(name="last_cross")([x, inputs])
        x = layers.Conv2D(ngf, 3, padding="same", activation="relu",
                          kernel_initializer=init(), name="cross_conv")(x)
        x = layers.Conv2D(output_channels, 1, name="out",
                          kernel_initializer="zeros" if residual else init())(x)
    if residual and input_channels != output_channels:
        raise ValueError("residual=True needs as many input as output channels, got "
                         f"{input_channels} in and {output_channels} out.")
    if residual and not last_cross:
        # The reference UNet (pix2pix): its outermost up step is the correction.
        return _clipped_residual(inputs, x)
    if residual:
        x = layers.Activation("linear", dtype="float32", name="correction_f32")(x)
        return layers.Add(dtype="float32", name="residual")([inputs, x])
    if y_range is None:
        return layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return SigmoidRange(*y_range, dtype="float32", name="y_range")(x)


def resnet_generator(n_blocks=9, ngf=64, norm="instance", use_dropout=False,
                     padding="reflect", upsample="transpose", input_channels=3,
                     output_channels=3, init_type="normal", init_gain=0.02, residual=False,
                     name=None):
    """The reference ResNet generator (Johnson et al.): c7s1-ngf, d2ngf, d4ngf, ``n_blocks``
    residual blocks, u2ngf, ungf, c7s1-out, tanh; or, with ``residual``, a global skip.

    Args:
        n_blocks: residual blocks (9 = ``resnet_9blocks``, 6 = ``resnet_6blocks``).
        ngf: filters of the first conv.
        norm: ``instance`` (no affine), ``batch`` or ``none``.
        use_dropout: dropout 0.5 inside each residual block.
        padding: ``reflect`` (reference) or ``zero`` padding of the stride-1 convs.
        upsample: ``transpose`` (reference), ``pixel_shuffle`` or ``resize``.
        input_channels, output_channels: image channels.
        init_type, init_gain: weight initialisation as the reference's ``--init_type``.
        residual: not in the reference: output ``clip(input + correction, -1, 1)`` instead of
            ``tanh``, with the last conv initialised to zero so the network starts as the
            identity (good for appearance/colour changes, not shape changes). At the first
            step only that conv gets a gradient, from the second every layer does (Adam then
            moves each by its full step); a randomly initialised last conv instead generalised
            worse to new photos (docs/ablation.md, issue 24). Same parameter count as without
            it.
        name: model name (default ``resnet_{n}blocks``).

    Returns:
        A ``keras.Model`` mapping (N, H, W, input_channels) to (N, H, W, output_channels) in
        [-1, 1]; H and W must be multiples of 4 (and at least 8 with reflect padding).
    """
    if residual and input_channels != output_channels:
        raise ValueError("residual=True needs as many input as output channels, got "
                         f"{input_channels} in and {output_channels} out.")
    name = name or f"resnet_{n_blocks}blocks"
    init = functools.partial(kernel_initializer, init_type, init_gain)
    bias = uses_bias(norm)
    inputs = keras.Input((None, None, input_channels), name="image")
    # Reflection needs 2 pixels at the 1/4-size bottleneck to pad by 1.
    minimum = 8 if padding == "reflect" else None
    x = SizeCheck(4, name, minimum=minimum, name="size_check")(inputs)

    x = _pad_conv(x, ngf, 7, padding, bias, init, "c7s1")
    x = apply_norm(x, norm, "c7s1_norm", init_gain)
    x = layers.ReLU(name="c7s1_relu")(x)
    for i, mult in enumerate((2, 4)):
        # Pad 1 on every side as the reference (Keras' 'same' pads a stride-2 3x3 conv of an
        # even size only at the bottom/right, which shifts the sampling grid by one pixel).
        x = layers.ZeroPadding2D(1, name=f"down{i + 1}_pad")(x)
        x = layers.Conv2D(ngf * mult, 3, strides=2, padding="valid", use_bias=bias,
                          kernel_initializer=init(), name=f"down{i + 1}")(x)
        x = apply_norm(x, norm, f"down{i + 1}_norm", init_gain)
        x = layers.ReLU(name=f"down{i + 1}_relu")(x)

    for b in range(n_blocks):
        prefix = f"block{b + 1}"
        y = _pad_conv(x, ngf * 4, 3, padding, bias, init, prefix + "_conv1")
        y = apply_norm(y, norm, prefix + "_norm1", init_gain)
        y = layers.ReLU(name=prefix + "_relu")(y)
        if use_dropout:
            y = layers.Dropout(0.5, name=prefix + "_dropout")(y)
        y = _pad_conv(y, ngf * 4, 3, padding, bias, init, prefix + "_conv2")
        y = apply_norm(y, norm, prefix + "_norm2", init_gain)
        x = layers.Add(name=prefix + "_add")([x, y])

    for i, mult in enumerate((2, 1)):
        x = _upsample(x, ngf * mult, upsample, bias, init, f"up{i + 1}")
        x = apply_norm(x, norm, f"up{i + 1}_norm", init_gain)
        x = layers.ReLU(name=f"up{i + 1}_relu")(x)

    out_init = (lambda: keras.initializers.Zeros()) if residual else init
    x = _pad_conv(x, output_channels, 7, padding, True, out_init, "out")
    if residual:
        outputs = _clipped_residual(inputs, x)
    else:
        outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(inputs, outputs, name=name)


def unet_generator(num_downs=8, ngf=64, norm="batch", use_dropout=True, self_attention=False,
                   upsample="transpose", y_range=None, last_cross=False, residual=False,
                   input_channels=3,
                   output_channels=3, init_type="normal", init_gain=0.02, name=None):
    """The reference UNet generator (``unet_256`` = 8 downs, ``unet_128`` = 7), with the
    restoration options of fastai's DynamicUnet.

    Each down step is a 4x4 stride-2 conv (LeakyReLU 0.2 before it, norm after it except on
    the outermost and innermost), each up step ReLU -> upsample -> norm, concatenated with the
    matching down output. Dropout 0.5 sits in the ``num_downs - 5`` blocks next to the
    innermost one, as the reference.

    Args:
        num_downs: down-sampling steps; inputs must be multiples of ``2**num_downs``.
        ngf: filters of the outermost conv.
        norm: ``batch`` (reference), ``instance`` or ``none``.
        use_dropout: the reference's dropout (off with ``--no_dropout``).
        self_attention: add a SAGAN self-attention layer after the decoder block at 1/8
            resolution (fastai places it there).
        upsample: ``transpose`` (4x4 stride-2 transposed conv, reference), ``pixel_shuffle``
            (ICNR pixel shuffle + blur, fastai) or ``resize``.
        y_range: None for a tanh output, or ``(low, high)`` for a sigmoid range head.
        last_cross: concatenate the raw input before the output and add a 3x3 conv block
            (fastai's ``last_cross``), which helps restoration keep detail.
        residual: output ``input + correction``. With ``last_cross`` (restoration) the
            correction's last conv is initialised to zero, so the network starts as the
            identity (it can only improve on its input from the first step), and the output
            is not clipped (clip when converting to pixels). Without it (the reference UNet,
            pix2pix) the outermost up step is the correction and the output is
            ``clip(input + correction, -1, 1)``. Replaces the tanh / y_range head.
        input_channels, output_channels: image channels.
        init_type, init_gain: weight initialisation as the reference's ``--init_type``.
        name: model name (default ``unet_{2**num_downs}``).

    Returns:
        A ``keras.Model`` mapping (N, H, W, input_channels) to (N, H, W, output_channels).
    """
    if num_downs < 5:
        raise ValueError(f"unet_generator needs num_downs >= 5, got {num_downs}.")
    multiple = 2 ** num_downs
    name = name or f"unet_{multiple}"
    init = functools.partial(kernel_initializer, init_type, init_gain)
    bias = uses_bias(norm)
    channels = [ngf * min(2 ** i, 8) for i in range(num_downs)]
    inputs = keras.Input((None, None, input_channels), name="image")
    x = SizeCheck(multiple, name, name="size_check")(inputs)

    downs = []
    for i in range(num_downs):
        if i > 0:
            x = layers.LeakyReLU(0.2, name=f"down{i}_lrelu")(x)
        x = layers.Conv2D(channels[i], 4, strides=2, padding="same", use_bias=bias,
                          kernel_initializer=init(), name=f"down{i}")(x)
        if 0 < i < num_downs - 1:
            x = apply_norm(x, norm, f"down{i}_norm", init_gain)
        downs.append(x)

    x = _unet_decoder(x, downs[:-1], channels, ngf if last_cross else output_channels,
                      norm=norm, bias=bias, init=init, init_gain=init_gain, upsample=upsample,
                      dropout_levels=range(4, num_downs - 1) if use_dropout else (),
                      self_attention_level=3 if self_attention else None)
    outputs = _output_head(x, inputs, ngf=ngf, last_cross=last_cross, residual=residual,
                           y_range=y_range, output_channels=output_channels, init=init)
    return keras.Model(inputs, outputs, name=name)


def encoder_unet_generator(encoder="resnet50", encoder_weights="imagenet", alpha=1.0, ngf=64,
                           norm="batch", self_attention=False, attention_stride=8,
                           upsample="transpose", y_range=None, last_cross=False,
                           residual=False, decoder_convs=1, freeze_encoder=False,
                           input_channels=3, output_channels=3, init_type="normal",
                           init_gain=0.02, name=None):
    """A UNet on a pretrained keras.applications body, as fastai's ``DynamicUnet`` (DeOldify).

    The [-1, 1] input is converted to the backbone's preprocessing inside the model
    (``ImageNetPreprocess``); the backbone's stride 2/4/8/16 feature maps are the skips
    (normalised by ``norm`` first, as fastai batch-normalises them) and its stride-32 output the
    bottleneck, followed by a bridge (norm, ReLU, 3x3 conv to ``8 * ngf``, norm: fastai's middle
    conv). The decoder is ``unet_generator``'s (five x2 up steps with ``upsample``, skip
    concatenations, self-attention, ``last_cross`` and the residual / y_range / tanh head), with
    ``decoder_convs`` 3x3 conv blocks after each concatenation. Level ``i`` (stride ``2**i``)
    has ``ngf * min(2**(i-1), 8)`` filters.

    Args:
        encoder: ``resnet50`` or ``mobilenet_v2``.
        encoder_weights: ``imagenet`` (the Keras cache; never downloaded), a weights file
            path, or ``none`` (random, with a warning); see
            ``kgan.models.encoders.resolve_encoder_weights``.
        alpha: MobileNetV2 width multiplier (1.0 for resnet50).
        ngf: decoder width unit.
        norm: ``batch``, ``instance`` or ``none`` (decoder only; the backbone keeps its own
            batch norm).
        self_attention: SAGAN self-attention after the decoder level at ``attention_stride``.
        attention_stride: 2, 4, 8 (fastai's place) or 16.
        upsample: ``transpose``, ``pixel_shuffle`` (ICNR + blur, fastai) or ``resize``.
        y_range, last_cross, residual: the output head, as ``unet_generator``.
        decoder_convs: 3x3 conv + norm + ReLU blocks after each skip concatenation.
        freeze_encoder: build the backbone non-trainable (its batch norm then runs in
            inference mode), as fastai trains a frozen body first.
        input_channels, output_channels: image channels (a pretrained body takes 3).
        init_type, init_gain: decoder weight initialisation as ``--init_type``.
        name: model name (default ``unet_{encoder}``).

    Returns:
        A ``keras.Model`` mapping (N, H, W, 3) to (N, H, W, output_channels); H and W must be
        multiples of 32.
    """
    encoders.check_encoder(encoder, alpha)
    if input_channels != 3:
        raise ValueError(f"The {encoder} encoder takes 3-channel RGB input, not "
                         f"{input_channels} channels.")
    levels = {2: 1, 4: 2, 8: 3, 16: 4}
    if self_attention and attention_stride not in levels:
        raise ValueError(f"attention_stride must be one of {sorted(levels)}, got "
                         f"{attention_stride}.")
    if residual and (not last_cross or input_channels != output_channels):
        raise ValueError("residual=True needs last_cross=True and as many input as output "
                         "channels.")
    if upsample not in UPSAMPLE_MODES:
        raise ValueError(f"Unknown upsample {upsample!r}; use one of "
                         f"{', '.join(UPSAMPLE_MODES)}.")
    name = name or f"unet_{encoder}"
    init = functools.partial(kernel_initializer, init_type, init_gain)
    bias = uses_bias(norm)
    channels = [ngf * min(2 ** i, 8) for i in range(5)]
    body = encoders.build_encoder(encoder, encoder_weights, alpha, name="encoder")
    if freeze_encoder:
        body.trainable = False

    inputs = keras.Input((None, None, input_channels), name="image")
    x = SizeCheck(32, name, name="size_check")(inputs)
    x = encoders.ImageNetPreprocess(encoders.preprocess_mode(encoder), name="preprocess")(x)
    *skips, x = body(x)
    skips = [apply_norm(s, norm, f"skip{i + 1}_norm", init_gain) for i, s in enumerate(skips)]

    x = apply_norm(x, norm, "bridge_norm", init_gain)
    x = layers.ReLU(name="bridge_relu")(x)
    x = layers.Conv2D(channels[4], 3, padding="same", use_bias=bias, kernel_initializer=init(),
                      name="bridge_conv")(x)
    x = apply_norm(x, norm, "bridge_conv_norm", init_gain)

    x = _unet_decoder(x, skips, channels, ngf if last_cross else output_channels, norm=norm,
                      bias=bias, init=init, init_gain=init_gain, upsample=upsample,
                      self_attention_level=levels[attention_stride] if self_attention else None,
                      decoder_convs=decoder_convs)
    outputs = _output_head(x, inputs, ngf=ngf, last_cross=last_cross, residual=residual,
                           y_range=y_range, output_channels=output_channels, init=init)
    return keras.Model(inputs, outputs, name=name)
