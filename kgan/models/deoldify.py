"""DeOldify's colourisers (jantic/DeOldify, MIT licence) as Keras networks.

DeOldify's generators take ImageNet-normalised RGB and end in ``SigmoidRange(-3, 3)``, i.e. they
predict ImageNet-normalised RGB. kgan's models take and give RGB in [-1, 1], so a DeOldify
colouriser is ``ImageNetPreprocess("torch")`` -> the network -> ``DeOldifyOutput`` (denormalise
and clamp to [0, 1] as fastai's ``pred_batch(reconstruct=True)`` does, then to [-1, 1]).
``is_deoldify_model`` tells the colourisation pipeline to use DeOldify's pre- and
post-processing for such a model.

``deoldify_generator`` builds DeOldify's networks as DeOldify's ``deoldify/generators.py``
does for inference: fastai's DynamicUnet (``DynamicUnetDeep`` for Artistic on a ResNet-34 body,
``DynamicUnetWide`` for Stable / Video on ResNet-101) with spectral norm plus an extra batch
norm in every decoder conv, self-attention at 1/8 resolution, blur after every pixel shuffle,
``last_cross`` and ``y_range=(-3, 3)``. Layers are named after DeOldify's modules with ``_`` for
``.`` (``layers_4_shuf_conv_0``, ``layers_5_conv2_3``; the body as torchvision's, see
kgan.models.resnet_body), which kgan.interop.deoldify_weights relies on. ``raw_network`` gives
the network alone (ImageNet-normalised RGB in, [-3, 3] out) for exact comparisons.

Called by ``kgan.models.build_generator`` (``--generator=deoldify_*``), the DeOldify weight
conversion and the colourisation pipeline.
"""

import keras
from keras import layers, ops

from kgan.models.decoder_layers import (
    ICNR,
    Blur,
    DepthToSpace,
    Im2colConv2D,
    MatmulFilterGradConv2D,
    ResizeNearestLike,
    SigmoidRange,
)
from kgan.models.encoders import TORCH_MEAN, TORCH_STD, ImageNetPreprocess
from kgan.models.layers import SelfAttention2D, SizeCheck, SpectralNorm
from kgan.models.resnet_body import batch_norm, resnet_body, skip_channels

# Convs with kernels this large (Stable / Video's middle convs, 3x3 2048 <-> 4096: 75 M
# weights, on a 1/32 grid) run as one matmul (Im2colConv2D): 1.2-3.6x faster there; at 1536 ->
# 512 (7 M) and Artistic's 512 <-> 1024 (4.7 M) TensorFlow's conv kernels are as fast or faster.
IM2COL_MIN_KERNEL_ELEMENTS = 2 ** 25

# --generator name -> DeOldify's inference configuration. Video shares Stable's architecture;
# render_factor is DeOldify's default (render size = 16 * render_factor).
VARIANTS = {
    "artistic": {"arch": "resnet34", "deep": True, "nf_factor": 1.5, "render_factor": 35,
                 "file": "ColorizeArtistic_gen.pth"},
    "stable": {"arch": "resnet101", "deep": False, "nf_factor": 2, "render_factor": 35,
               "file": "ColorizeStable_gen.pth"},
    "video": {"arch": "resnet101", "deep": False, "nf_factor": 2, "render_factor": 21,
              "file": "ColorizeVideo_gen.pth"},
}
GENERATOR_NAMES = tuple(f"deoldify_{v}" for v in VARIANTS)
SIZE_MULTIPLE = 16
RAW_INPUT, RAW_OUTPUT = "preprocess", "layers_12"


@keras.saving.register_keras_serializable(package="kgan")
class DeOldifyOutput(keras.layers.Layer):
    """ImageNet-normalised RGB -> RGB in [-1, 1]: ``clip(x * std + mean, 0, 1) * 2 - 1``.

    fastai denormalises the prediction and clamps it to [0, 1] (``ImageList.reconstruct``)
    before DeOldify turns it into uint8. Computed in float32 (also under mixed precision).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean = ops.convert_to_tensor(TORCH_MEAN, dtype="float32")
        std = ops.convert_to_tensor(TORCH_STD, dtype="float32")
        return ops.clip(x * std + mean, 0.0, 1.0) * 2.0 - 1.0

    def compute_output_shape(self, input_shape):
        return input_shape


def is_deoldify_model(model):
    """True when ``model`` ends in a ``DeOldifyOutput`` (a DeOldify colouriser)."""
    return any(isinstance(layer, DeOldifyOutput) for layer in model.layers)


def variant_of(name):
    """``deoldify_stable`` (or ``stable``) -> ``stable``; ValueError for other names."""
    variant = name.removeprefix("deoldify_")
    if variant not in VARIANTS:
        raise ValueError(f"Unknown DeOldify generator {name!r}; use one of "
                         f"{', '.join(GENERATOR_NAMES)}.")
    return variant


def _conv(x, filters, kernel_size, name, use_bias, spectral_norm, initializer="he_normal",
          conv_class=None):
    kernel_elements = kernel_size ** 2 * int(x.shape[-1]) * filters
    if conv_class is None:
        conv_class = (Im2colConv2D if kernel_elements >= IM2COL_MIN_KERNEL_ELEMENTS
                      else layers.Conv2D)
    conv = conv_class(filters, kernel_size, padding="same", use_bias=use_bias,
                      kernel_initializer=initializer, name=name)
    if spectral_norm:
        conv = SpectralNorm(conv, name=name + "_sn")
    return conv(x)


def _conv_layer(x, filters, name, spectral_norm, kernel_size=3, extra_bn=True,
                self_attention=False):
    """DeOldify's ``custom_conv_layer`` with spectral norm: conv (no bias when a BN follows)
    -> ReLU -> BN -> optional self-attention; sublayers ``name_0``, ``name_2``, ``name_3``."""
    x = _conv(x, filters, kernel_size, name + "_0", not extra_bn, spectral_norm)
    x = layers.ReLU(name=name + "_1")(x)
    if extra_bn:
        x = batch_norm(x, name + "_2")
    if self_attention:
        x = SelfAttention2D(spectral_norm=spectral_norm, kernel_initializer="he_normal",
                            name=name + "_3")(x)
    return x


def _pixel_shuffle(x, filters, name, spectral_norm, extra_bn=True):
    """``CustomPixelShuffle_ICNR`` (conv 1x1 [-> BN] -> ReLU -> shuffle -> blur); with
    ``extra_bn=False`` fastai's ``PixelShuffle_ICNR`` (a biased conv; weight norm in fastai)."""
    init = ICNR(2, "he_normal")
    x = _conv(x, filters * 4, 1, name + "_conv_0", not extra_bn,
              spectral_norm and extra_bn, init)
    if extra_bn:
        x = batch_norm(x, name + "_conv_1")
    x = layers.ReLU(name=name + "_relu")(x)
    return Blur(name=name + "_blur")(DepthToSpace(2, name=name + "_shuf")(x))


def deoldify_generator(variant="stable", width=64, blocks=None, wide_nf=None,
                       spectral_norm=False, name=None):
    """A DeOldify colouriser: RGB in [-1, 1] -> RGB in [-1, 1].

    ``image -> SizeCheck(16) -> ImageNetPreprocess("torch") -> DeOldify's network ->
    SigmoidRange(-3, 3) -> DeOldifyOutput``.

    Args:
        variant: ``artistic``, ``stable`` or ``video`` (or ``deoldify_<variant>``).
        width: channels of the ResNet body's first conv (64 as DeOldify; smaller for tests).
        blocks: ResNet blocks per stage (default 3-4-6-3 for Artistic, 3-4-23-3 otherwise).
        wide_nf: Stable / Video decoder width (default DeOldify's ``512 * nf_factor``).
        spectral_norm: wrap the decoder convs in spectral normalisation, ``SpectralNorm`` (power
            iteration while training); False gives plain convs, as converted (folded) weights
            need.
        name: model name (default ``deoldify_<variant>``).

    Returns:
        A ``keras.Model``; sides must be multiples of 16. At ``width=64`` its trainable
        parameters are DeOldify's count less the ``weight_g`` vector of the weight-normed
        ``layers.8`` conv (folded here): 63,645,681 (Artistic), 218,221,173 (Stable, Video).
        Convs with at least ``IM2COL_MIN_KERNEL_ELEMENTS`` weights (Stable / Video's middle
        ``layers_3_0_0`` and ``layers_3_1_0`` at DeOldify's width) are ``Im2colConv2D``: the
        same weights and outputs, computed as one matmul. The last block's two full-resolution
        3x3 convs are ``MatmulFilterGradConv2D``: Conv2D's outputs, the filter gradient as
        nine matmuls where that is faster in training (TensorFlow's own in bf16 on a CPU with
        AMX).
    """
    variant = variant_of(variant)
    spec = VARIANTS[variant]
    name = name or f"deoldify_{variant}"
    sn = spectral_norm
    inputs = keras.Input((None, None, 3), name="image")
    x = SizeCheck(SIZE_MULTIPLE, name, name="size_check")(inputs)
    normalised = ImageNetPreprocess("torch", name=RAW_INPUT)(x)
    skips = resnet_body(normalised, spec["arch"], width, blocks)
    channels = skip_channels(spec["arch"], width)
    ni = channels[-1]
    x = layers.ReLU(name="layers_2")(batch_norm(skips[-1], "layers_1", beta=1e-3))
    x = _conv_layer(x, ni * 2, "layers_3_0", sn)
    x = _conv_layer(x, ni, "layers_3_1", sn)
    x_c, wide_nf = ni, wide_nf or int(512 * spec["nf_factor"])
    for i, skip in enumerate(reversed(skips[:-1])):
        prefix, final = f"layers_{4 + i}", i == 3
        skip_c = int(skip.shape[-1])
        up_c = x_c // 2 if spec["deep"] else (wide_nf // 2 if final else wide_nf) // 2
        up = _pixel_shuffle(x, up_c, prefix + "_shuf", sn)
        up = ResizeNearestLike(name=prefix + "_resize")([up, skip])
        skip = batch_norm(skip, prefix + "_bn", beta=1e-3)
        x = layers.Concatenate(name=prefix + "_cat")([up, skip])
        x = layers.ReLU(name=prefix + "_relu")(x)
        if spec["deep"]:
            cat_c = up_c + skip_c
            x_c = int((cat_c // 2 if final else cat_c) * spec["nf_factor"])
            x = _conv_layer(x, x_c, prefix + "_conv1", sn)
            x = _conv_layer(x, x_c, prefix + "_conv2", sn, self_attention=i == 1)
        else:
            x_c = up_c
            x = _conv_layer(x, x_c, prefix + "_conv", sn, self_attention=i == 1)
    x = _pixel_shuffle(x, x_c, "layers_8", sn, extra_bn=False)
    x = layers.Concatenate(name="layers_9")([x, normalised])
    # The last block's two 3x3 convs run on the full-resolution grid (55 % of Artistic's
    # generator FLOPs): their filter gradient as nine matmuls (MatmulFilterGradConv2D).
    res = _conv(x, x_c + 3, 3, "layers_10_layers_0_0", True, sn,
                conv_class=MatmulFilterGradConv2D)
    res = layers.ReLU(name="layers_10_layers_0_1")(res)
    res = _conv(res, x_c + 3, 3, "layers_10_layers_1_0", True, sn,
                conv_class=MatmulFilterGradConv2D)
    res = layers.ReLU(name="layers_10_layers_1_1")(res)
    x = layers.Add(name="layers_10_merge")([res, x])
    x = _conv(x, 3, 1, "layers_11_0", True, sn)
    x = SigmoidRange(-3.0, 3.0, name=RAW_OUTPUT)(x)
    return keras.Model(inputs, DeOldifyOutput(name="output")(x), name=name)


def raw_network(model):
    """DeOldify's network inside a ``deoldify_generator`` model, sharing its weights:
    ImageNet-normalised RGB in, ``SigmoidRange(-3, 3)`` output out (DeOldify's own output)."""
    names = {layer.name for layer in model.layers}
    if not {RAW_INPUT, RAW_OUTPUT} <= names:
        raise ValueError(f"{model.name} is not a DeOldify generator (no {RAW_OUTPUT} layer).")
    return keras.Model(model.get_layer(RAW_INPUT).output, model.get_layer(RAW_OUTPUT).output,
                       name=model.name + "_raw")
