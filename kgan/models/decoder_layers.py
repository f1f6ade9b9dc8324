"""The fastai / DeOldify decoder layers: the ICNR initialiser, the pixel-shuffle upsampler it
feeds, the blur that removes pixel-shuffle checkerboards, the sigmoid range head, and the
matmul form of a convolution for DeOldify's huge middle convs and the convolution with a
matmul filter gradient for its full-resolution last block. All are registered
serializable (``kgan`` package) and re-exported by kgan.models.layers.

Called by kgan.models (UNet decoders) through kgan.models.layers.
"""

import functools

import keras
import tensorflow as tf
from keras import ops

from kgan.core.measure import cpu_info


@keras.saving.register_keras_serializable(package="kgan")
class ICNR(keras.initializers.Initializer):
    """ICNR initialiser (Aitken et al., arXiv 1707.02937) for a conv feeding a pixel shuffle.

    Draws a kernel for ``filters // scale**2`` output channels and repeats each one
    ``scale**2`` times in the channel order ``tf.nn.depth_to_space`` expects, so the
    conv + shuffle starts as nearest-neighbour upsampling: no checkerboard at init.

    Args:
        scale: the pixel-shuffle factor.
        initializer: the base initialiser for the reduced kernel.
    """

    def __init__(self, scale=2, initializer="he_normal"):
        self.scale = int(scale)
        self.initializer = keras.initializers.get(initializer)

    def __call__(self, shape, dtype=None):
        kh, kw, cin, cout = shape
        sub = self.scale ** 2
        if cout % sub:
            raise ValueError(f"ICNR needs filters divisible by scale**2={sub}, got {cout}.")
        base = self.initializer((kh, kw, cin, cout // sub), dtype=dtype)
        # depth_to_space reads channel index as (dy * scale + dx) * C_out + c: repeat the whole
        # block of C_out channels scale**2 times.
        return ops.tile(base, (1, 1, 1, sub))

    def get_config(self):
        return {"scale": self.scale,
                "initializer": keras.initializers.serialize(self.initializer)}


@keras.saving.register_keras_serializable(package="kgan")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: a 1x1 conv to ``filters * scale**2`` channels, ICNR-initialised,
    optionally ReLU, then ``depth_to_space`` (fastai ``PixelShuffle_ICNR``).

    Args:
        filters: output channels.
        scale: upsampling factor.
        activation: applied before the shuffle (fastai uses ReLU).
        kernel_initializer: base initialiser given to ICNR.
    """

    def __init__(self, filters, scale=2, activation="relu", kernel_initializer="he_normal",
                 **kwargs):
        super().__init__(**kwargs)
        self.filters = int(filters)
        self.scale = int(scale)
        self.activation = keras.activations.get(activation)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)

    def build(self, input_shape):
        self.conv = keras.layers.Conv2D(
            self.filters * self.scale ** 2, 1, name="conv",
            kernel_initializer=ICNR(self.scale, self.kernel_initializer))
        self.conv.build(input_shape)

    def call(self, inputs):
        y = self.activation(self.conv(inputs))
        return tf.nn.depth_to_space(y, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, _ = input_shape
        up = lambda s: None if s is None else s * self.scale
        return (n, up(h), up(w), self.filters)

    def get_config(self):
        return {
            **super().get_config(),
            "filters": self.filters,
            "scale": self.scale,
            "activation": keras.activations.serialize(self.activation),
            "kernel_initializer": keras.initializers.serialize(self.kernel_initializer),
        }


def mirror_pad(x, paddings, mode, training=None):
    """``tf.pad(x, paddings, mode)`` for ``mode`` REFLECT or SYMMETRIC on NHWC height and width.

    Training and bfloat16/float16 graphs pad with concatenations of reversed slices, whose
    copies beat the ``MirrorPad`` kernel (64x64x256 REFLECT by 1: 0.54 vs 0.83 ms; Artistic's
    last blur, 192², batch 8, bf16: 99 vs 141 ms forward, ``benchmarks/memory_bound_ops.py``),
    with TF's own ``MirrorPadGrad`` as the gradient (autodiff through the slices is slower).
    float32 inference, and so the TFLite graphs, keeps one ``MirrorPad`` (a TFLite builtin);
    bfloat16/float16 graphs never go to TFLite. Both give the same values.

    Args:
        x: NHWC tensor.
        paddings: ``[[0, 0], [top, bottom], [left, right], [0, 0]]``.
        mode: ``"REFLECT"`` or ``"SYMMETRIC"``.
        training: the calling layer's training flag.

    Returns:
        The padded tensor.
    """
    x = tf.convert_to_tensor(x)
    if training is not True and x.dtype == tf.float32:
        return tf.pad(x, paddings, mode=mode)
    if not any(paddings[1] + paddings[2]):
        return x
    # REFLECT mirrors about the edge pixel, SYMMETRIC repeats it.
    skip = 1 if mode == "REFLECT" else 0

    @tf.custom_gradient
    def forward(x):
        y = x
        for axis, (before, after) in ((1, paddings[1]), (2, paddings[2])):
            parts = [y]
            if before:
                parts.insert(0, tf.reverse(_slice(y, axis, skip, skip + before), [axis]))
            if after:
                parts.append(tf.reverse(_slice(y, axis, -skip - after, -skip or None), [axis]))
            if len(parts) > 1:
                y = tf.concat(parts, axis)

        def grad(dy):
            return tf.raw_ops.MirrorPadGrad(input=dy, paddings=paddings, mode=mode)

        return y, grad

    return forward(x)


def _slice(x, axis, start, stop):
    return x[:, start:stop] if axis == 1 else x[:, :, start:stop]


@keras.saving.register_keras_serializable(package="kgan")
class Blur(keras.layers.Layer):
    """fastai's blur after pixel shuffle (arXiv 1806.02658): replicate-pad left/top by 1, then
    a 2x2 average with stride 1. Keeps the spatial size.

    The padding is ``mirror_pad``'s (copies in training and bf16, one ``MirrorPad`` in float32
    inference).
    """

    def call(self, inputs, training=None):
        x = mirror_pad(inputs, [[0, 0], [1, 0], [1, 0], [0, 0]], "SYMMETRIC", training)
        return ops.average_pool(x, pool_size=2, strides=1, padding="valid")

    def compute_output_shape(self, input_shape):
        return input_shape


@keras.saving.register_keras_serializable(package="kgan")
class SigmoidRange(keras.layers.Layer):
    """``sigmoid(x) * (high - low) + low`` (fastai's y_range head), computed in float32.

    Args:
        low: lower bound of the output.
        high: upper bound of the output.
    """

    def __init__(self, low=-1.0, high=1.0, **kwargs):
        super().__init__(**kwargs)
        self.low = float(low)
        self.high = float(high)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        return ops.sigmoid(x) * (self.high - self.low) + self.low

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "low": self.low, "high": self.high}


@keras.saving.register_keras_serializable(package="kgan")
class DepthToSpace(keras.layers.Layer):
    """``tf.nn.depth_to_space``: channel ``(dy * scale + dx) * C + c`` goes to pixel (dy, dx)
    of channel ``c`` (PyTorch's ``PixelShuffle`` reads ``c * scale**2 + dy * scale + dx``:
    converted weights permute their output channels).

    Args:
        scale: the upsampling factor.
    """

    def __init__(self, scale=2, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, inputs):
        return tf.nn.depth_to_space(inputs, self.scale)

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        up = lambda s: None if s is None else s * self.scale
        return (n, up(h), up(w), None if c is None else c // self.scale ** 2)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="kgan")
class ResizeNearestLike(keras.layers.Layer):
    """Resizes ``inputs[0]`` to the height and width of ``inputs[1]`` as PyTorch's
    ``F.interpolate(mode='nearest')`` does (source index ``floor(i * in / out)``, no half-pixel
    centres); the identity when the sizes agree. fastai's UNet blocks do this when an
    upsampled map and its skip differ (sides that are multiples of 16 but not of 32)."""

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        return tf.raw_ops.ResizeNearestNeighbor(images=x, size=size, align_corners=False,
                                                half_pixel_centers=False)

    def compute_output_shape(self, input_shape):
        x, reference = input_shape
        return (x[0], reference[1], reference[2], x[3])


@keras.saving.register_keras_serializable(package="kgan")
class Im2colConv2D(keras.layers.Conv2D):
    """A stride-1 ``"same"`` ``Conv2D`` computed as one matmul over the k*k shifted copies of
    its input (im2col): the same weights (``kernel``, ``bias``), the same outputs.

    Where a kernel is huge and the grid tiny — DeOldify Stable / Video's middle convs, 3x3
    2048 -> 4096 -> 2048 at 1/32 of the image — TensorFlow's oneDNN conv kernels run at
    40-120 GFLOP/s in a training step (the bf16 filter gradient at 39) on a CPU whose conv peak
    is 450. As this layer, the 4x4 grid of a 128^2 batch of 4 is 2.1x faster forward and 3.2x
    in its two gradients in bf16 (3.6x / 1.7x in fp32), a 192^2 batch of 8 1.3x / 2.1x
    (``benchmarks/im2col_conv.py``; on a CPU with AMX 3.6x / 2.7x and 2.5x / 3.1x). On
    smaller kernels Conv2D's kernels are as fast or faster, so the builders pick this layer by
    kernel size (``kgan.models.deoldify``). The taps take k*k times the input's memory, which
    on a 1/32 grid is small.

    Args:
        filters, kernel_size and the rest: as ``keras.layers.Conv2D``, with ``strides=1``,
            ``dilation_rate=1``, ``groups=1``, ``padding="same"``, ``channels_last`` and an
            odd kernel (ValueError otherwise).
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        _check_same_stride_one(self)

    def convolution_op(self, inputs, kernel):
        k_h, k_w = self.kernel_size
        shape = tf.shape(inputs)
        # Tap (i, j) of input channel c is column (i * k_w + j) * C + c: the kernel's own
        # (k_h, k_w, C, filters) order, so the kernel is used as a plain matrix.
        taps = tf.concat(list(_taps(inputs, self.kernel_size)), axis=-1)
        rows = k_h * k_w * int(kernel.shape[2])
        outputs = tf.matmul(tf.reshape(taps, [-1, rows]),
                            tf.reshape(kernel, [rows, self.filters]))
        return tf.reshape(outputs, tf.concat([shape[:3], [self.filters]], axis=0))


@keras.saving.register_keras_serializable(package="kgan")
class MatmulFilterGradConv2D(keras.layers.Conv2D):
    """A stride-1 ``"same"`` ``Conv2D`` whose filter gradient is computed as k*k matmuls (one
    per kernel tap: shifted input^T @ output gradient); forward and input gradient are
    TensorFlow's own conv kernels. The same weights, outputs and gradients as ``Conv2D``.

    TensorFlow's oneDNN filter gradient is the slow third of a conv's training cost at large
    grids with few channels: for DeOldify's last block (3x3, 259 -> 259 on the full 192^2
    grid, batch 8) on an AVX-512 CPU without AMX it runs at 250-260 GFLOP/s in bf16 and 120 in
    fp32 while forward and input gradient run at 415-420 / 180-210; as nine matmuls it is 1.2x
    faster in bf16 and 1.3x in fp32 (``benchmarks/bf16_conv_grad.py --batch=8 --size=192
    --channels=259``). With AMX, oneDNN's bf16 filter gradient is 1.9x faster than the
    matmuls (1,090 against 561 GFLOP/s), so ``"auto"`` keeps TensorFlow's kernel for bf16 on
    such CPUs. It is not faster on small grids (a CycleGAN block, 256 channels on 64^2 at
    batch 1), so the builders pick this layer for such full-resolution convs only
    (``kgan.models.deoldify``).

    Args:
        filters, kernel_size and the rest: as ``Im2colConv2D`` (stride-1 "same" convs only).
        filter_gradient: ``"matmuls"`` (the k*k tap matmuls), ``"conv"`` (TensorFlow's
            ``Conv2DBackpropFilter``: the layer trains exactly as ``Conv2D``) or ``"auto"``
            (``"conv"`` when computing in bfloat16 on a CPU with AMX, else ``"matmuls"``;
            decided when the layer's call is traced, so a saved model decides again where it
            is loaded).
    """

    FILTER_GRADIENTS = ("auto", "matmuls", "conv")

    def __init__(self, *args, filter_gradient="auto", **kwargs):
        super().__init__(*args, **kwargs)
        _check_same_stride_one(self)
        if filter_gradient not in self.FILTER_GRADIENTS:
            raise ValueError(f"filter_gradient must be one of {self.FILTER_GRADIENTS}, got "
                             f"{filter_gradient!r}.")
        self.filter_gradient = filter_gradient

    def uses_matmuls(self):
        """Whether the filter gradient is the tap matmuls here (``"auto"`` resolved for this
        layer's compute dtype on this CPU)."""
        if self.filter_gradient == "auto":
            return not (self.compute_dtype == "bfloat16" and _cpu_has_amx_bf16())
        return self.filter_gradient == "matmuls"

    def get_config(self):
        return {**super().get_config(), "filter_gradient": self.filter_gradient}

    def convolution_op(self, inputs, kernel):
        if not self.uses_matmuls():
            return super().convolution_op(inputs, kernel)
        kernel_size = self.kernel_size

        # The kernel arrives as a (possibly autocast) variable: read it outside the custom
        # gradient so the function sees tensors only and the variable gets the kernel's
        # gradient through the read.
        @tf.custom_gradient
        def convolve(x, w):
            def gradients(dy):
                dx = tf.raw_ops.Conv2DBackpropInput(
                    input_sizes=tf.shape(x), filter=w, out_backprop=dy, strides=[1, 1, 1, 1],
                    padding="SAME")
                return dx, _filter_gradient_by_taps(x, dy, w, kernel_size)

            return tf.nn.conv2d(x, w, 1, "SAME"), gradients

        return convolve(inputs, tf.convert_to_tensor(kernel))


@functools.lru_cache(maxsize=None)
def _cpu_has_amx_bf16():
    """Whether this CPU has AMX bf16 tiles (oneDNN's bf16 conv kernels are then several times
    faster than its AVX-512 ones, the filter gradient included)."""
    return "amx_bf16" in cpu_info()["features"]


def _filter_gradient_by_taps(x, dy, kernel, kernel_size):
    """A stride-1 "same" conv's kernel gradient as k*k matmuls per image: for tap (i, j),
    image b's shifted input^T @ its output gradient, summed over the batch in float32.

    Image by image and one tap copy at a time (each made after the previous tap's matmul, the
    loop not running images in parallel), so the copies take 1/batch of the input's memory
    once: all k*k copies of a full-resolution batch would be +5-6 GiB at DeOldify's 192^2,
    batch 8, fp32. Per image is as fast as per batch (Stable's last block at 192^2, batch 8:
    bf16 301 against 274 GFLOP/s, fp32 165 against 170).
    """
    k_h, k_w = kernel_size
    channels, filters = int(kernel.shape[2]), int(kernel.shape[3])

    def add_image(b, total):
        dy_rows = tf.reshape(dy[b], [-1, filters])
        products, taps = [], _taps(x[b][tf.newaxis], kernel_size)
        for _ in range(k_h * k_w):
            with tf.control_dependencies(products[-1:]):
                tap = tf.reshape(next(taps), [-1, channels])
            products.append(tf.matmul(tap, dy_rows, transpose_a=True))
        return b + 1, total + tf.cast(tf.stack(products), tf.float32)

    _, total = tf.while_loop(lambda b, _: b < tf.shape(x)[0], add_image,
                             (tf.constant(0), tf.zeros([k_h * k_w, channels, filters])),
                             parallel_iterations=1)
    return tf.cast(tf.reshape(total, tf.shape(kernel)), kernel.dtype)


def _check_same_stride_one(layer):
    """ValueError unless ``layer`` is a stride-1, undilated, ungrouped "same" channels_last
    conv with an odd kernel (what Im2colConv2D and MatmulFilterGradConv2D compute)."""
    if (layer.strides != (1, 1) or layer.dilation_rate != (1, 1) or layer.groups != 1
            or layer.padding != "same" or layer.data_format != "channels_last"
            or any(k % 2 == 0 for k in layer.kernel_size)):
        raise ValueError(f"{type(layer).__name__} computes stride-1, undilated, ungrouped "
                         "'same' channels_last convolutions with odd kernels; use Conv2D for "
                         f"{layer.name}.")


def _taps(x, kernel_size):
    """The k_h * k_w shifted copies of NHWC ``x`` (zero-padded "same"), in the kernel's
    (k_h, k_w) order: tap (i, j) is the input under kernel position (i, j). A generator: each
    copy's op is made when it is drawn (under the caller's control dependencies)."""
    k_h, k_w = kernel_size
    shape = tf.shape(x)
    h, w = shape[1], shape[2]
    padded = tf.pad(x, [[0, 0], [k_h // 2] * 2, [k_w // 2] * 2, [0, 0]])
    for i in range(k_h):
        for j in range(k_w):
            yield padded[:, i:i + h, j:j + w]
