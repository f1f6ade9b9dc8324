"""Custom Keras layers used by kgan's networks.

Every layer here is registered as serializable under the ``kgan`` package so that models
saved as ``.keras`` load with ``safe_mode=True`` (no ``Lambda`` layers, no pickled Python).
The fastai decoder pieces (ICNR, PixelShuffle, Blur, SigmoidRange) live in
kgan.models.decoder_layers and the normalisation layers in kgan.models.normalization; both are
re-exported here, so ``kgan.models.layers.X`` names every custom layer.

Called by kgan.models (network builders) and by whatever loads a saved kgan model (importing
this module registers the classes).
"""

import keras
import tensorflow as tf
from keras import ops

from kgan.models.decoder_layers import (  # noqa: F401
    ICNR,
    Blur,
    DepthToSpace,
    Im2colConv2D,
    MatmulFilterGradConv2D,
    PixelShuffle,
    ResizeNearestLike,
    SigmoidRange,
    mirror_pad,
)
from kgan.models.normalization import (  # noqa: F401
    BatchNorm,
    InstanceNormalization,
    SpectralNorm,
    spectral_norm,
)


@keras.saving.register_keras_serializable(package="kgan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by reflection (PyTorch ``nn.ReflectionPad2d``).

    The padding is ``kgan.models.decoder_layers.mirror_pad``'s (copies in training and bf16,
    one ``MirrorPad`` in float32 inference, the same values).

    Args:
        padding: int, pixels added on each side of height and width.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs, training=None):
        p = self.padding
        return mirror_pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], "REFLECT", training)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s + 2 * self.padding
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


@keras.saving.register_keras_serializable(package="kgan")
class SelfAttention2D(keras.layers.Layer):
    """SAGAN self-attention (Zhang et al., arXiv 1805.08318) over all spatial positions.

    query/key are 1x1 convolutions to ``channels // 8``, value keeps ``channels``; the output is
    ``gamma * attention(x) + x`` with ``gamma`` initialised to 0, so the layer is the identity at
    initialisation.

    Args:
        spectral_norm: wrap the 1x1 convolutions in spectral normalisation (as fastai).
        kernel_initializer: initialiser of the 1x1 convolutions.
    """

    def __init__(self, spectral_norm=False, kernel_initializer="glorot_uniform", **kwargs):
        super().__init__(**kwargs)
        self.spectral_norm = bool(spectral_norm)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        channels = input_shape[-1]
        inner = max(channels // 8, 1)

        def conv(filters, name):
            # A copy per conv: one initialiser instance gives the same values on every call,
            # which would make query and key identical.
            init = keras.initializers.get(
                keras.initializers.serialize(self.kernel_initializer))
            # The sub-layers take this layer's policy, not the global one: a model saved under
            # mixed_bfloat16 and loaded under float32 would otherwise mix the two dtypes.
            layer = keras.layers.Conv2D(filters, 1, use_bias=False, name=name,
                                        kernel_initializer=init, dtype=self.dtype_policy)
            if self.spectral_norm:
                layer = SpectralNorm(layer, name=name + "_sn", dtype=self.dtype_policy)
            layer.build(input_shape)
            return layer

        self.query = conv(inner, "query")
        self.key = conv(inner, "key")
        self.value = conv(channels, "value")
        self.gamma = self.add_weight(name="gamma", shape=(), initializer="zeros")

    def call(self, inputs, training=None):
        shape = ops.shape(inputs)
        n, h, w, c = shape[0], shape[1], shape[2], shape[3]

        def flat(t):
            return ops.reshape(t, (n, h * w, ops.shape(t)[-1]))

        q = flat(self.query(inputs, training=training))
        k = flat(self.key(inputs, training=training))
        v = flat(self.value(inputs, training=training))
        scores = ops.matmul(q, ops.transpose(k, (0, 2, 1)))
        # bfloat16 scores stay bfloat16: the CPU softmax accumulates in float32 and gives the
        # float32 softmax's values, and the (N, HW, HW) casts there and back cost more than the
        # matmuls. float16 goes through float32.
        if keras.backend.standardize_dtype(scores.dtype) == "float16":
            scores = ops.cast(scores, "float32")
        attention = ops.softmax(scores, axis=-1)
        attended = ops.matmul(ops.cast(attention, v.dtype), v)
        attended = ops.reshape(attended, (n, h, w, c))
        return ops.cast(self.gamma, inputs.dtype) * attended + inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {
            **super().get_config(),
            "spectral_norm": self.spectral_norm,
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


@keras.saving.register_keras_serializable(package="kgan")
class SizeCheck(keras.layers.Layer):
    """Passes its input through, raising a clear error when the static height or width is not a
    multiple of ``multiple`` or is below ``minimum``. Costs nothing in the graph; unknown
    (dynamic) sizes pass.

    Args:
        multiple: the size multiple the network needs (1: any size).
        network: the network's name, used in the message.
        minimum: the smallest side the network accepts (None: ``multiple``).
    """

    def __init__(self, multiple, network="this network", minimum=None, **kwargs):
        super().__init__(**kwargs)
        self.multiple = int(multiple)
        self.network = str(network)
        self.minimum = None if minimum is None else int(minimum)

    def call(self, inputs):
        height, width = inputs.shape[1], inputs.shape[2]
        for side, size in (("height", height), ("width", width)):
            if size is None:
                continue
            if self.minimum is not None and size < self.minimum:
                raise ValueError(
                    f"{self.network} needs image sides of at least {self.minimum} pixels, "
                    f"but the {side} is {size}. Resize or pad the image to at least "
                    f"{self.minimum} pixels.")
            if size % self.multiple:
                fit = max(self.multiple, size // self.multiple * self.multiple)
                raise ValueError(
                    f"{self.network} needs image sides that are multiples of {self.multiple}, "
                    f"but the {side} is {size}. Resize or crop to a multiple of "
                    f"{self.multiple} (e.g. {fit}), or pad the image.")
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "multiple": self.multiple, "network": self.network,
                "minimum": self.minimum}


def leaky_relu(x, negative_slope=0.2):
    """``tf.nn.leaky_relu`` whose gradient reads the output instead of the input.

    For a slope >= 0 the output has the input's sign, so ``LeakyReluGrad`` on the output gives
    the same gradient (also at 0, where both give the slope). The input is then needed by no
    gradient op, so grappler's remapper can fuse conv + bias + LeakyRelu into one kernel; with
    the stock gradient the remapper fused them anyway and failed ("Mutation::Apply error:
    fanout .../LeakyReluGrad exist for missing node .../BiasAdd").
    """
    alpha = float(negative_slope)
    if alpha < 0:
        return tf.nn.leaky_relu(x, alpha)

    @tf.custom_gradient
    def forward(features):
        y = tf.nn.leaky_relu(features, alpha)

        def grad(dy):
            return tf.raw_ops.LeakyReluGrad(gradients=dy, features=y, alpha=alpha)

        return y, grad

    return forward(x)


@keras.saving.register_keras_serializable(package="kgan")
class LeakyReLU(keras.layers.Layer):
    """``keras.layers.LeakyReLU`` with the output-based gradient of ``leaky_relu``.

    Args:
        negative_slope: slope for negative inputs (the reference uses 0.2).
    """

    def __init__(self, negative_slope=0.2, **kwargs):
        super().__init__(**kwargs)
        self.negative_slope = float(negative_slope)

    def call(self, inputs):
        return leaky_relu(inputs, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "negative_slope": self.negative_slope}


@keras.saving.register_keras_serializable(package="kgan")
class Cropping2D(keras.layers.Cropping2D):
    """``keras.layers.Cropping2D`` (channels_last) through ``tf.slice``.

    Keras crops with a strided slice, whose gradient is ``StridedSliceGrad``: ~15 ms for a
    129x129x128 map on 2 cores, against 0.75 ms for the ``Pad`` that is ``Slice``'s gradient.
    Same values, same config.
    """

    def call(self, inputs):
        if self.data_format != "channels_last":
            return super().call(inputs)
        inputs = tf.convert_to_tensor(inputs)
        (top, bottom), (left, right) = self.cropping
        dynamic = tf.shape(inputs)
        height = inputs.shape[1] if inputs.shape[1] is not None else dynamic[1]
        width = inputs.shape[2] if inputs.shape[2] is not None else dynamic[2]
        return tf.slice(inputs, [0, top, left, 0],
                        [-1, height - top - bottom, width - left - right, -1])
