"""Custom Keras layers used by kgan's networks.

Every layer here is registered as serializable under the ``kgan`` package so that models
saved as ``.keras`` load with ``safe_mode=True`` (no ``Lambda`` layers, no pickled Python).
The fastai decoder pieces (ICNR, PixelShuffle, Blur, SigmoidRange) live in
kgan.models.decoder_layers and are re-exported here, so ``kgan.models.layers.X`` names every custom
layer.

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
)


def reflection_pad(x, padding):
    """Reflect-pads height and width of NHWC ``x`` by ``padding`` (``tf.pad`` REFLECT) with
    two concatenations, whose copies are ~30 % faster than the ``MirrorPad`` kernel on CPU
    (64x64x256: 0.54 vs 0.83 ms); the gradient is TF's own ``MirrorPadGrad``."""
    p = int(padding)
    paddings = [[0, 0], [p, p], [p, p], [0, 0]]
    if p == 0:
        return x

    @tf.custom_gradient
    def forward(x):
        top = tf.reverse(x[:, 1:p + 1], [1])
        bottom = tf.reverse(x[:, -p - 1:-1], [1])
        y = tf.concat([top, x, bottom], 1)
        left = tf.reverse(y[:, :, 1:p + 1], [2])
        right = tf.reverse(y[:, :, -p - 1:-1], [2])
        y = tf.concat([left, y, right], 2)

        def grad(dy):
            return tf.raw_ops.MirrorPadGrad(input=dy, paddings=paddings, mode="REFLECT")

        return y, grad

    return forward(x)


@keras.saving.register_keras_serializable(package="kgan")
class ReflectionPadding2D(keras.layers.Layer):
    """Pads height and width by reflection (PyTorch ``nn.ReflectionPad2d``).

    Training and bfloat16/float16 inference run ``reflection_pad`` (faster copies); float32
    inference, and so the TFLite graphs, one ``MirrorPad`` (a TFLite builtin). Both give the
    same values.

    Args:
        padding: int, pixels added on each side of height and width.
    """

    def __init__(self, padding=1, **kwargs):
        super().__init__(**kwargs)
        self.padding = int(padding)

    def call(self, inputs, training=None):
        p = self.padding
        inputs = tf.convert_to_tensor(inputs)
        # bfloat16/float16 graphs (mixed-precision training, bf16 inference) never go to
        # TFLite, so they take the faster copies in inference too.
        if p > 0 and (training is True or inputs.dtype != tf.float32):
            return reflection_pad(inputs, p)
        return ops.pad(inputs, [[0, 0], [p, p], [p, p], [0, 0]], mode="reflect")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda s: None if s is None else s + 2 * self.padding
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}


_FUSED_NORM_DTYPES = (tf.float32, tf.bfloat16, tf.float16)


def _fused_instance_norm(x, epsilon, gamma=None, beta=None):
    """Instance norm of NHWC ``x`` through one ``FusedBatchNormV3`` (training mode).

    Batch norm in training mode normalises each channel over (N, H, W) with the biased
    variance; with the batch folded into the channels, (1, H, W, N*C), that is instance norm.
    The op (oneDNN on x86) keeps its statistics in float32 for bfloat16/float16 inputs, so no
    casts are needed, and its gradient is one ``FusedBatchNormGradV3``: about 2.5-4x faster
    than the ~20 elementwise/reduction ops of the moments formula and its autodiff at 256^2.
    """
    n, channels = x.shape[0], x.shape[-1]
    folded = n != 1
    if folded:
        shape = tf.shape(x)
        n, h, w = shape[0], shape[1], shape[2]
        x = tf.reshape(tf.transpose(x, [1, 2, 0, 3]), [1, h, w, n * channels])
    if gamma is None:
        scale = tf.ones([n * channels], tf.float32)
        offset = tf.zeros([n * channels], tf.float32)
    else:
        scale = tf.tile(tf.cast(gamma, tf.float32), [n])
        offset = tf.tile(tf.cast(beta, tf.float32), [n])
    empty = tf.zeros([0], tf.float32)
    y = tf.raw_ops.FusedBatchNormV3(x=x, scale=scale, offset=offset, mean=empty,
                                    variance=empty, epsilon=epsilon, is_training=True)[0]
    if folded:
        y = tf.transpose(tf.reshape(y, [h, w, n, channels]), [2, 0, 1, 3])
    return y


def _spatial_mean(x):
    """Mean over height then width (keepdims): two short float32 sums instead of one over
    H*W values. TFLite's MEAN accumulates sequentially, and at 256^2 one long sum made an
    exported resnet_9blocks differ from Keras by 4e-4; two stages cut the error of an instance
    norm there ~17x (4.4e-5 -> 2.6e-6 on 256x256x64)."""
    return ops.mean(ops.mean(x, axis=2, keepdims=True), axis=1, keepdims=True)


@keras.saving.register_keras_serializable(package="kgan")
class InstanceNormalization(keras.layers.Layer):
    """Normalises each sample and channel over height and width.

    Matches PyTorch ``nn.InstanceNorm2d`` (epsilon 1e-5, no running statistics, affine off by
    default as in the reference). Statistics are always computed in float32, so the layer is
    safe under ``mixed_float16`` / ``mixed_bfloat16``.

    In training (``training=True``), and in inference on bfloat16/float16 inputs, the layer
    runs one fused batch-norm kernel (see ``_fused_instance_norm``); float32 inference, and so
    every TFLite graph (TFLite has no training-mode batch norm), runs the moments formula.
    Both compute the same function.

    Args:
        epsilon: added to the variance.
        affine: learn a per-channel scale (init 1) and offset (init 0).
    """

    def __init__(self, epsilon=1e-5, affine=False, **kwargs):
        super().__init__(**kwargs)
        self.epsilon = float(epsilon)
        self.affine = bool(affine)

    def build(self, input_shape):
        channels = input_shape[-1]
        if self.affine:
            # Not autocast: the scale and offset are used in float32 even under mixed precision.
            self.gamma = self.add_weight(name="gamma", shape=(channels,), initializer="ones",
                                         autocast=False)
            self.beta = self.add_weight(name="beta", shape=(channels,), initializer="zeros",
                                        autocast=False)

    def call(self, inputs, training=None):
        inputs = tf.convert_to_tensor(inputs)
        # The fused kernel in training, and in bfloat16/float16 inference too (a graph that
        # never goes to TFLite; the moments formula there would cast to float32 and back
        # around ~10 elementwise ops: 3x the norm's time in bf16 inference at 256^2).
        if ((training is True or inputs.dtype != tf.float32) and inputs.shape.rank == 4
                and inputs.shape[-1] is not None and inputs.dtype in _FUSED_NORM_DTYPES):
            if self.affine:
                return _fused_instance_norm(inputs, self.epsilon, self.gamma, self.beta)
            return _fused_instance_norm(inputs, self.epsilon)
        x = ops.cast(inputs, "float32")
        mean = _spatial_mean(x)
        centred = x - mean
        y = centred * ops.rsqrt(_spatial_mean(ops.square(centred)) + self.epsilon)
        if self.affine:
            y = y * ops.cast(self.gamma, "float32") + ops.cast(self.beta, "float32")
        return ops.cast(y, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "epsilon": self.epsilon, "affine": self.affine}


@keras.saving.register_keras_serializable(package="kgan")
class BatchNorm(keras.layers.BatchNormalization):
    """``keras.layers.BatchNormalization`` (the same weights, outputs and moving statistics)
    whose training-mode pass is one fused batch-norm kernel.

    Keras 3 normalises through the moments formula: the bf16 input cast to float32, ~10
    elementwise and reduction ops forward and their autodiff backward. ``FusedBatchNormV3``
    (oneDNN on x86) reads bf16 directly, keeps float32 statistics and has a one-op gradient;
    in DeOldify Stable's training step (a ResNet-101 body) the moments formula took about
    13 % of the bf16 op time. The kernel's batch variance is Bessel-corrected; the moving
    variance gets Keras's biased one. Inference, masks, renorm and other axes run Keras's
    own code.

    Args:
        as ``keras.layers.BatchNormalization``.
    """

    def call(self, inputs, training=None, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        if not (training and self.trainable and mask is None and not self.renorm
                and inputs.shape.rank == 4 and self.axis in (-1, 3)
                and inputs.dtype in _FUSED_NORM_DTYPES):
            return super().call(inputs, training=training, mask=mask)
        channels = inputs.shape[-1]
        scale = (tf.convert_to_tensor(self.gamma) if self.scale
                 else tf.ones([channels], tf.float32))
        offset = (tf.convert_to_tensor(self.beta) if self.center
                  else tf.zeros([channels], tf.float32))
        empty = tf.zeros([0], tf.float32)
        y, mean, variance = tf.raw_ops.FusedBatchNormV3(
            x=inputs, scale=tf.cast(scale, tf.float32), offset=tf.cast(offset, tf.float32),
            mean=empty, variance=empty, epsilon=self.epsilon, is_training=True)[:3]
        count = tf.cast(tf.size(inputs) // channels, tf.float32)
        variance = variance * tf.maximum(count - 1.0, 0.0) / count
        for moving, batch in ((self.moving_mean, mean), (self.moving_variance, variance)):
            moving.assign(tf.convert_to_tensor(moving) * self.momentum
                          + tf.stop_gradient(batch) * (1.0 - self.momentum))
        return tf.cast(y, self.compute_dtype)


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
        attention = ops.softmax(ops.cast(scores, "float32"), axis=-1)
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
class SpectralNorm(keras.layers.SpectralNormalization):
    """``keras.layers.SpectralNormalization`` (the same weights, the same normalised kernel
    stored at each training call) computed in the kernel's own dtype.

    Under ``mixed_bfloat16`` Keras's wrapper reads its float32 kernel through the bf16
    autocast: the power iteration and the division by sigma run in bf16 and the float32
    master kernel is overwritten with a bf16-rounded copy at every training call (updates
    smaller than bf16's resolution are lost), and the kernel is read five times (the
    all-zero check, the iteration, sigma, the division, the wrapped layer's own cast). Here
    the normalisation reads the float32 kernel once for the iteration, takes sigma from it
    (``(v W) . u``, Keras's formula) and divides in float32; only the wrapped layer casts
    the kernel to its compute dtype. A zero kernel is left as it is (as Keras's). This holds
    inside a model or another layer: Keras autocasts a mixed-precision layer called on its
    own whatever its ``autocast`` setting.

    Args:
        layer: a layer with a ``kernel`` (Conv2D, Dense, ...).
        power_iterations: power-iteration steps per training call.
        **kwargs: as ``keras.layers.Wrapper`` (``name``, ``dtype``, ...).
    """

    def __init__(self, layer, power_iterations=1, **kwargs):
        # No autocast: this wrapper's own reads of the kernel stay float32; the wrapped
        # layer autocasts its kernel and inputs itself.
        kwargs["autocast"] = False
        super().__init__(layer, power_iterations=power_iterations, **kwargs)

    def call(self, inputs, training=False):
        if training:
            vector_u, kernel = self.normalized_weights()
            self.vector_u.assign(vector_u)
            self.kernel.assign(kernel)
        return ops.cast(self.layer(inputs), self.compute_dtype)

    def normalized_weights(self):
        """The next ``vector_u`` and the kernel divided by its spectral norm (float32)."""
        kernel = ops.convert_to_tensor(self.kernel)
        weights = ops.reshape(kernel, [-1, self.kernel_shape[-1]])
        vector_u = ops.convert_to_tensor(self.vector_u)
        for _ in range(self.power_iterations):
            vector_v = ops.normalize(ops.matmul(vector_u, ops.transpose(weights)), axis=None)
            v_weights = ops.matmul(vector_v, weights)
            vector_u = ops.normalize(v_weights, axis=None)
        sigma = ops.stop_gradient(ops.sum(v_weights * vector_u))
        return ops.cond(sigma == 0, lambda: (ops.convert_to_tensor(self.vector_u), kernel),
                        lambda: (ops.stop_gradient(vector_u), kernel / sigma))


def spectral_norm(layer, power_iterations=1):
    """Wraps ``layer`` in spectral normalisation (``SpectralNorm``).

    Args:
        layer: a Conv2D or Dense layer.
        power_iterations: power-iteration steps per training call.

    Returns:
        The wrapped layer.
    """
    return SpectralNorm(layer, power_iterations=power_iterations, name=layer.name + "_sn")


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
