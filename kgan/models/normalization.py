"""Normalisation layers: instance norm (PyTorch's ``InstanceNorm2d``), Keras's batch norm
with a fused training pass, and Keras's spectral normalisation computed in the kernel's dtype.
Registered serializable (``kgan`` package) and re-exported by kgan.models.layers.

Called by kgan.models (network builders) through kgan.models.layers.
"""

import keras
import tensorflow as tf
from keras import ops

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
    in DeOldify Stable's pretrain_g step at 192^2, batch 8 (a ResNet-101 body) the moments
    formula took about 13 % of the bf16 op time on a CPU with AMX, and this layer made the
    step 1.16-1.20x faster. The kernel's batch variance is Bessel-corrected; the moving
    variance gets Keras's biased one. Inference, masks, renorm and other axes run Keras's
    own code.

    Args:
        as ``keras.layers.BatchNormalization``.
    """

    def call(self, inputs, training=None, mask=None):
        inputs = tf.convert_to_tensor(inputs)
        if not (training and self.trainable and mask is None and not self.renorm
                and inputs.shape.rank == 4 and self.axis in (-1, 3)
                and inputs.shape[-1] is not None and inputs.dtype in _FUSED_NORM_DTYPES):
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
        previous_u = vector_u = ops.convert_to_tensor(self.vector_u)
        for _ in range(self.power_iterations):
            vector_v = ops.normalize(ops.matmul(vector_u, ops.transpose(weights)), axis=None)
            v_weights = ops.matmul(vector_v, weights)
            vector_u = ops.normalize(v_weights, axis=None)
        sigma = ops.stop_gradient(ops.sum(v_weights * vector_u))
        return ops.cond(sigma == 0, lambda: (previous_u, kernel),
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
