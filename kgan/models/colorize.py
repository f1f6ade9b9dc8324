"""The colourisation generator: a UNet that predicts chroma only, with the RGB output rebuilt
inside the graph from the input's own luma, so the input's luma survives exactly.

Colour space: BT.601 YUV as ``tf.image.rgb_to_yuv`` (Y = 0.299 R + 0.587 G + 0.114 B on [0, 1]
RGB; U in [-0.436, 0.436], V in [-0.615, 0.615]). The UNet's tanh head gives two channels in
[-1, 1], scaled to the full U/V range. Not every (Y, U, V) is a displayable colour: a strong
red at high luma would need R > 1. Clipping RGB would change the luma, so instead
``merge_luma_chroma`` scales the chroma of such pixels towards gray (same hue, same luma)
until the colour fits the RGB cube. That is the only place the prediction is bounded, and no
pixel is ever clipped; the output's luma equals the input's up to float32 rounding (about
1e-7), for any prediction.

Called by the colourisation recipe (``--model=colorize``), by ``kgan.colorization.colorizer`` (the
same merge at full resolution at inference) and by the export (which detects ``LumaChromaMerge``).
"""

import keras
import tensorflow as tf

from kgan.models.generators import encoder_unet_generator, unet_generator

# The U and V bounds of tf.image.rgb_to_yuv (its kernel's largest |U| and |V| over the RGB cube).
U_MAX = 0.43601035
V_MAX = 0.61497538
_EPS = 1e-6


def luma(rgb):
    """BT.601 luma of RGB in [0, 1]: (..., 3) -> (..., 1), float32."""
    return tf.image.rgb_to_yuv(tf.cast(rgb, tf.float32))[..., :1]


def chroma(rgb):
    """BT.601 U and V of RGB in [0, 1]: (..., 3) -> (..., 2), float32."""
    return tf.image.rgb_to_yuv(tf.cast(rgb, tf.float32))[..., 1:]


def merge_luma_chroma(y, uv):
    """RGB in [0, 1] with luma ``y`` and the hue of ``uv``, chroma reduced only where needed.

    ``yuv_to_rgb(0, U, V)`` is a direction ``d`` of zero luma, so ``y + s * d`` has luma ``y`` for
    any ``s``. The largest ``s`` in [0, 1] keeping every channel in [0, 1] is taken per pixel
    (``s = 1``, the chroma unchanged, for colours inside the RGB cube).

    Args:
        y: luma, (..., 1), in [0, 1] (values outside give a gray pixel of that luma).
        uv: chroma, (..., 2), broadcastable against ``y``.

    Returns:
        float32 RGB (..., 3) whose BT.601 luma is ``y`` up to float32 rounding.
    """
    y = tf.cast(y, tf.float32)
    uv = tf.cast(uv, tf.float32)
    uv = uv + tf.zeros_like(y)  # broadcast to the full shape
    direction = tf.image.yuv_to_rgb(tf.concat([tf.zeros_like(uv[..., :1]), uv], axis=-1))
    room = tf.where(direction > 0, 1.0 - y, y)
    size = tf.abs(direction)
    limits = tf.where(size > _EPS, room / tf.maximum(size, _EPS), tf.ones_like(size))
    scale = tf.clip_by_value(tf.reduce_min(limits, axis=-1, keepdims=True), 0.0, 1.0)
    return y + scale * direction


@keras.saving.register_keras_serializable(package="kgan")
class LumaChromaMerge(keras.layers.Layer):
    """(input RGB in [-1, 1], predicted chroma in [-1, 1]) -> RGB in [-1, 1] with the input's luma.

    The chroma channels are scaled to BT.601 U (x ``U_MAX``) and V (x ``V_MAX``) and merged with
    the input's luma by ``merge_luma_chroma``. Always computed in float32 (also under mixed
    precision). The input may be gray or colour: only its luma is used.
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        image, predicted = inputs
        y = luma((tf.cast(image, tf.float32) + 1.0) * 0.5)
        uv = tf.cast(predicted, tf.float32) * tf.constant([U_MAX, V_MAX], tf.float32)
        return merge_luma_chroma(y, uv) * 2.0 - 1.0

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[0][:-1]) + (3,)


def is_colorization_model(model):
    """True when ``model`` ends in a ``LumaChromaMerge`` (a colourisation generator)."""
    return any(isinstance(layer, LumaChromaMerge) for layer in model.layers)


def colorization_generator(encoder="none", num_downs=7, name="colorize_unet", **options):
    """A UNet predicting two chroma channels, wrapped so the model's output is RGB.

    The UNet is ``unet_generator`` (``encoder="none"``) or ``encoder_unet_generator`` on a
    keras.applications body (``resnet50``, ``mobilenet_v2``), built with
    ``output_channels=2`` and its tanh head; ``LumaChromaMerge`` then rebuilds RGB from the
    input's luma. The model is flat (the UNet's layers plus the merge), so it has the UNet's
    parameters, its ``SizeCheck`` multiple, and loads with ``safe_mode=True``.

    Args:
        encoder: ``none`` (plain UNet), ``resnet50`` or ``mobilenet_v2``.
        num_downs: down steps of the plain UNet (ignored with an encoder, whose multiple is 32).
        name: the model name.
        **options: the UNet builder's other options (``ngf``, ``norm``, ``self_attention``,
            ``upsample``, ``last_cross``, ``encoder_weights``, ``decoder_convs`` ...).
            ``output_channels``, ``residual`` and ``y_range`` are fixed by this builder.

    Returns:
        A ``keras.Model`` mapping (N, H, W, 3) in [-1, 1] (gray or colour) to RGB in [-1, 1]
        whose luma is the input's.
    """
    fixed = {"output_channels", "residual", "y_range"} & set(options)
    if fixed:
        raise ValueError(f"colorization_generator fixes {', '.join(sorted(fixed))} (a 2-channel "
                         "tanh chroma head); do not pass them.")
    options = dict(options, output_channels=2, residual=False, y_range=None)
    if encoder == "none":
        base = unet_generator(num_downs=num_downs, name=name + "_chroma", **options)
    else:
        base = encoder_unet_generator(encoder=encoder, name=name + "_chroma", **options)
    outputs = LumaChromaMerge(name="luma_chroma_merge")([base.input, base.output])
    return keras.Model(base.input, outputs, name=name)
