"""Generator builders: the reference ResNet-block and UNet generators, plus the restoration
options (self-attention, pixel-shuffle + blur upsampling, sigmoid y_range head).

All builders return functional ``keras.Model`` objects taking float images in [-1, 1] of any
spatial size that is a multiple of the network's ``size_multiple``.
"""

import functools

import keras
from keras import layers

from kgan.layers import (Blur, PixelShuffle, ReflectionPadding2D, SelfAttention2D,
                         SigmoidRange, SizeCheck)
from kgan.models.common import apply_norm, kernel_initializer, uses_bias

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
        return layers.Cropping2D(((1, 0), (1, 0)), name=name + "_crop")(x)
    if mode == "pixel_shuffle":
        x = PixelShuffle(filters, 2, activation=None, name=name)(x)
        return Blur(name=name + "_blur")(x)
    if mode == "resize":
        x = layers.UpSampling2D(2, interpolation="nearest", name=name + "_resize")(x)
        return layers.Conv2D(filters, 3, padding="same", use_bias=use_bias,
                             kernel_initializer=init(), name=name)(x)
    raise ValueError(f"Unknown upsample {mode!r}; use one of {', '.join(UPSAMPLE_MODES)}.")


def resnet_generator(n_blocks=9, ngf=64, norm="instance", use_dropout=False,
                     padding="reflect", upsample="transpose", input_channels=3,
                     output_channels=3, init_type="normal", init_gain=0.02, name=None):
    """The reference ResNet generator (Johnson et al.): c7s1-ngf, d2ngf, d4ngf, ``n_blocks``
    residual blocks, u2ngf, ungf, c7s1-out, tanh.

    Args:
        n_blocks: residual blocks (9 = ``resnet_9blocks``, 6 = ``resnet_6blocks``).
        ngf: filters of the first conv.
        norm: ``instance`` (no affine), ``batch`` or ``none``.
        use_dropout: dropout 0.5 inside each residual block.
        padding: ``reflect`` (reference) or ``zero`` padding of the stride-1 convs.
        upsample: ``transpose`` (reference), ``pixel_shuffle`` or ``resize``.
        input_channels, output_channels: image channels.
        init_type, init_gain: weight initialisation as the reference's ``--init_type``.
        name: model name (default ``resnet_{n}blocks``).

    Returns:
        A ``keras.Model`` mapping (N, H, W, input_channels) to (N, H, W, output_channels) in
        [-1, 1]; H and W must be multiples of 4 (and at least 8 with reflect padding).
    """
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

    x = _pad_conv(x, output_channels, 7, padding, True, init, "out")
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
        residual: output ``input + correction`` with the correction's last conv initialised
            to zero, so the network starts as the identity (restoration: it can only improve
            on its input from the first step). Replaces the tanh / y_range head; the output is
            not clipped (clip when converting to pixels).
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

    dropout_levels = range(4, num_downs - 1)
    for i in reversed(range(num_downs)):
        x = layers.ReLU(name=f"up{i}_relu")(x)
        outermost = i == 0
        if outermost and last_cross:
            filters, up_bias = ngf, True
        elif outermost:
            filters, up_bias = output_channels, True
        else:
            filters, up_bias = channels[i - 1], bias
        if upsample == "transpose":
            x = layers.Conv2DTranspose(filters, 4, strides=2, padding="same", use_bias=up_bias,
                                       kernel_initializer=init(), name=f"up{i}")(x)
        else:
            x = _upsample(x, filters, upsample, up_bias, init, f"up{i}")
        if outermost:
            break
        x = apply_norm(x, norm, f"up{i}_norm", init_gain)
        if use_dropout and i in dropout_levels:
            x = layers.Dropout(0.5, name=f"up{i}_dropout")(x)
        x = layers.Concatenate(name=f"skip{i}")([downs[i - 1], x])
        if self_attention and i == 3:
            x = SelfAttention2D(spectral_norm=True, name="self_attention")(x)

    if last_cross:
        x = layers.ReLU(name="cross_relu")(x)
        x = layers.Concatenate(name="last_cross")([x, inputs])
        x = layers.Conv2D(ngf, 3, padding="same", activation="relu",
                          kernel_initializer=init(), name="cross_conv")(x)
        x = layers.Conv2D(output_channels, 1, name="out",
                          kernel_initializer="zeros" if residual else init())(x)
    if residual:
        if not last_cross or input_channels != output_channels:
            raise ValueError("residual=True needs last_cross=True and as many input as output "
                             "channels.")
        x = layers.Activation("linear", dtype="float32", name="correction_f32")(x)
        outputs = layers.Add(dtype="float32", name="residual")([inputs, x])
    elif y_range is None:
        outputs = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    else:
        outputs = SigmoidRange(*y_range, dtype="float32", name="y_range")(x)
    return keras.Model(inputs, outputs, name=name)
