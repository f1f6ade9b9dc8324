"""Running a trained generator on uint8 images of any size: reflect padding to the network's
size multiple, the ``translate_uint8`` graph function the SavedModel signatures are built from,
the TFLite runner, and the translators over a SavedModel export, a ``.tflite`` file or a
``.keras`` generator, each in float32 or bfloat16 compute (``precision=``; kgan.serving.precision).
A SavedModel's graph is fixed float32, so bfloat16 from an export runs the ``.keras`` generator
it was exported from (``manifest.json``'s ``source.checkpoint``).

Called by kgan.exporting.saved_model (signatures), kgan.exporting.verify (TFLite runner),
kgan.serving.inference and the translate / evaluate / bench / demo CLIs. A translator is a callable
``uint8 (N, H, W, 3) -> uint8 (N, H, W, 3)`` with a ``fixed_size`` attribute (None, or the square
side of a TFLite file), ``pixel_limit`` (the largest H·W it translates in one piece; larger images
go through tiles, kgan.serving.tiling) and ``multiple`` (the network's size multiple). The
in-process translators also have ``translate_float``: the same images to the model's float32
output in [-1, 1] before rounding (DeOldify's pipeline truncates it, kgan.colorization).
"""

import numpy as np
import tensorflow as tf

from kgan.core.errors import ModelFileError
from kgan.core.pixels import to_float, to_uint8
from kgan.core.tf_import import native_lines_dropped
from kgan.models import size_multiple
from kgan.serving.exports import read_manifest, resolve_saved_model
from kgan.serving.precision import check_precision, computes_in_float32, with_precision
from kgan.serving.tiling import DEFAULT_TILE, whole_image_pixel_limit


def _reflect_indices(size, before, after):
    """Indices into [0, size) that reflect-pad a side by ``before``/``after`` (any amounts, also
    more than ``size - 1``: the reflection repeats, as ``numpy.pad(mode="reflect")``)."""
    positions = tf.range(-before, size + after)
    period = tf.maximum(2 * (size - 1), 1)
    folded = tf.math.floormod(positions, period)
    return tf.where(folded >= size, period - folded, folded) * tf.cast(size > 1, tf.int32)


def reflect_pad_to_multiple(images, multiple):
    """Reflect-pads NHWC ``images`` so that height and width are multiples of ``multiple``.

    Padding is split between both sides so that the network sees the image centred.

    Args:
        images: (N, H, W, C) tensor of any size.
        multiple: the network's size multiple.

    Returns:
        ``(padded, top, left)``; crop ``padded[:, top:top + H, left:left + W]`` after the network.
    """
    shape = tf.shape(images)
    height, width = shape[1], shape[2]
    pad_h = (-height) % multiple
    pad_w = (-width) % multiple
    top, left = pad_h // 2, pad_w // 2
    images = tf.gather(images, _reflect_indices(height, top, pad_h - top), axis=1)
    images = tf.gather(images, _reflect_indices(width, left, pad_w - left), axis=2)
    return images, top, left


def make_translate_uint8(model, multiple=None, rounded=True):
    """Returns ``fn(uint8 (N, H, W, 3)) -> uint8 (N, H, W, 3)`` for images of any size: reflect
    pad to the network multiple, run ``model``, crop back, round.

    Args:
        model: a kgan generator (float32 [-1, 1] in and out).
        multiple: the size multiple; default ``kgan.models.size_multiple(model)``.
        rounded: False returns the float32 output in [-1, 1] instead of rounding it to uint8.

    Returns:
        A Python function of one uint8 tensor (trace it with ``tf.function``).
    """
    multiple = int(multiple or size_multiple(model))

    def translate_uint8(images):
        shape = tf.shape(images)
        padded, top, left = reflect_pad_to_multiple(to_float(images), multiple)
        outputs = model(padded, training=False)
        outputs = outputs[:, top:top + shape[1], left:left + shape[2], :]
        return to_uint8(outputs) if rounded else tf.cast(outputs, tf.float32)

    return translate_uint8


class TFLiteRunner:
    """Runs a kgan ``.tflite`` generator with ``ai_edge_litert`` on float images in [-1, 1],
    quantising the input and dequantising the output when the file has integer edges.

    Args:
        path: the ``.tflite`` file.
        num_threads: interpreter threads (None: the interpreter's default).
    """

    def __init__(self, path, num_threads=None):
        from ai_edge_litert.interpreter import Interpreter

        self.path = path
        with native_lines_dropped("Created TensorFlow Lite XNNPACK delegate"):
            self.interpreter = Interpreter(model_path=path, num_threads=num_threads)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.size = int(self.input["shape"][1])

    def __call__(self, images):
        """float32 (N, size, size, 3) in [-1, 1] -> float32 (N, size, size, 3)."""
        images = np.asarray(images, np.float32)
        if images.shape[1:] != (self.size, self.size, 3):
            raise ValueError(f"{self.path} takes (N, {self.size}, {self.size}, 3) images, "
                             f"got {images.shape}.")
        return np.concatenate([self._run_one(x[np.newaxis]) for x in images])

    def _run_one(self, x):
        dtype = self.input["dtype"]
        if np.issubdtype(dtype, np.integer):
            scale, zero = self.input["quantization"]
            info = np.iinfo(dtype)
            x = np.clip(np.round(x / scale + zero), info.min, info.max).astype(dtype)
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])
        if np.issubdtype(y.dtype, np.integer):
            scale, zero = self.output["quantization"]
            y = (y.astype(np.float32) - zero) * scale
        return y.astype(np.float32)


class SavedModelTranslator:
    """uint8 (N, H, W, 3) -> uint8 through a SavedModel's ``translate_uint8`` signature (any size).

    Args:
        path: an export directory (holding ``1/``) or a SavedModel directory.
    """

    fixed_size = None
    precision = "float32"

    def __init__(self, path):
        self.path = resolve_saved_model(path)
        manifest = read_manifest(self.path)
        self.multiple = manifest.get("model", {}).get("size_multiple", 1)
        self.pixel_limit = manifest.get("whole_image_pixel_limit", DEFAULT_TILE * DEFAULT_TILE)
        self.loaded = tf.saved_model.load(self.path)
        if "translate_uint8" not in self.loaded.signatures:
            raise ModelFileError(f"{self.path} has no translate_uint8 signature; export it with "
                                 "python -m kgan.export.")
        self.function = self.loaded.signatures["translate_uint8"]

    def __call__(self, images):
        return self.function(images=tf.constant(images, tf.uint8))["images"].numpy()

    def translate_float(self, images):
        """uint8 (N, H, W, 3) -> the model's float32 output in [-1, 1] (``serving_default``,
        reflect-padded to the network multiple and cropped back)."""
        images = tf.constant(images, tf.uint8)
        padded, top, left = reflect_pad_to_multiple(to_float(images), self.multiple)
        outputs = self.loaded.signatures["serving_default"](images=padded)["images"]
        return outputs[:, top:top + images.shape[1], left:left + images.shape[2]].numpy()


class KerasTranslator:
    """uint8 (N, H, W, 3) -> uint8 with a live Keras generator (any size: reflect padded to the
    network's multiple, cropped back).

    Args:
        model: a kgan generator.
        precision: ``float32`` or ``bfloat16`` compute (a converted copy of ``model`` runs
            when its layers compute in another dtype; ``model`` itself is not changed, and
            weights loaded into it later do not reach the copy).

    Example:

    >>> import numpy as np
    >>> from kgan.models import build_generator
    >>> translator = KerasTranslator(build_generator("resnet_6blocks", ngf=8))
    >>> translator(np.zeros((2, 50, 70, 3), np.uint8)).shape  # any size, padded and cropped
    (2, 50, 70, 3)
    """

    fixed_size = None

    def __init__(self, model, precision="float32"):
        self.precision = check_precision(precision)
        if precision == "bfloat16" or not computes_in_float32(model):
            model = with_precision(model, precision)
        self.model = model
        self.multiple = size_multiple(model)
        self.pixel_limit = whole_image_pixel_limit(model)
        spec = [tf.TensorSpec((None, None, None, 3), tf.uint8)]
        self.function = tf.function(make_translate_uint8(model), input_signature=spec)
        self.float_function = tf.function(make_translate_uint8(model, rounded=False),
                                          input_signature=spec)

    def __call__(self, images):
        return self.function(tf.constant(images, tf.uint8)).numpy()

    def translate_float(self, images):
        """uint8 (N, H, W, 3) -> the model's float32 output in [-1, 1], not rounded."""
        return self.float_function(tf.constant(images, tf.uint8)).numpy()


class TFLiteTranslator:
    """uint8 (N, h, w, 3) -> uint8 with a fixed-size ``.tflite`` generator; images up to its
    size are reflect-padded to it and cropped back (larger ones go through tiles).

    Args:
        path: the ``.tflite`` file.
    """

    precision = "float32"  # of its inputs and outputs; the file's own variant sets the compute

    def __init__(self, path):
        self.runner = TFLiteRunner(path)
        self.fixed_size = self.runner.size
        self.multiple = 1
        self.pixel_limit = self.fixed_size * self.fixed_size

    def __call__(self, images):
        return to_uint8(self.translate_float(images))

    def translate_float(self, images):
        """uint8 (N, h, w, 3) -> the file's float32 output in [-1, 1], not rounded."""
        images = np.asarray(images)
        height, width = images.shape[1:3]
        size = self.fixed_size
        if height > size or width > size:
            raise ValueError(f"The TFLite model takes at most {size}x{size}; got {height}x{width}.")
        top, left = (size - height) // 2, (size - width) // 2
        padded = np.pad(images, ((0, 0), (top, size - height - top), (left, size - width - left),
                                 (0, 0)), mode="reflect")
        outputs = self.runner(to_float(padded))
        return outputs[:, top:top + height, left:left + width]
