"""Exports a kgan generator's SavedModel to ONNX (tf2onnx) and verifies it with onnxruntime.

Called by ``kgan.exporting.export.export_generator(..., onnx=True)`` (``kgan.export --onnx``,
``kgan.convert --onnx``), which writes ``EXPORT_DIR/model.onnx`` beside the SavedModel and
records the entry this module returns under ``manifest["onnx"]``.

The ``serving_default`` signature is converted: float32 (N, H, W, 3) in [-1, 1] with dynamic
N, H and W (multiples of the network's size multiple). Two things in the SavedModel stop
tf2onnx as it is, and both are handled here, in the export path, not in the network:

- the signature's input and output are both called ``images``; tf2onnx renames the graph's
  tensors to those names and then loses the input, so the ONNX output is ``output_images``;
- Keras 3 runs a Conv2D whose input has no static channel count (the ResNet's last conv, after
  the dynamic crop of the transposed conv) through a ``jit_compile=True`` function, which the
  SavedModel keeps as a non-inlinable ``StatefulPartitionedCall`` that ONNX has no op for; its
  ``_XlaMustCompile`` / ``_noinline`` marks are removed from the frozen graph and grappler
  inlines the plain convolution.

tf2onnx and onnxruntime are the optional ``onnx`` extra (``pip install -e ".[onnx]"``).
"""

import logging
import os

import numpy as np

from kgan.core.errors import KganError
from kgan.exporting.verify import ERROR_BOUNDS, check_fidelity, fidelity
from kgan.models import size_multiple

ONNX_FILE = "model.onnx"
INPUT_NAME = "images"
OUTPUT_NAME = "output_images"
DEFAULT_OPSET = 17
# float32 ONNX vs Keras: the SavedModel's bound (absolute errors, PSNR and margin over a
# constant image; kgan.exporting.verify.ERROR_BOUNDS). Measured on resnet_6blocks ngf 4 at
# 37x45 and 20x28 (random photos): the right model max 1.1e-6, PSNR 139.3 dB, +117.7 dB over a
# constant image; another seed's model -4.0 dB; the zeros model's ONNX file -0.3 dB.
ERROR_BOUND = ERROR_BOUNDS["onnx"]


class OnnxMissingError(KganError, ImportError):
    """tf2onnx or onnxruntime is not installed."""


class OnnxExportError(KganError, RuntimeError):
    """tf2onnx could not convert the SavedModel, or the ONNX file does not match the model."""


def require():
    """Imports tf2onnx and onnxruntime, or raises ``OnnxMissingError`` naming the extra.

    Returns:
        ``(tf2onnx, onnxruntime)`` modules.
    """
    try:
        import onnxruntime
        import tf2onnx
    except ImportError as error:
        raise OnnxMissingError(f"ONNX export needs tf2onnx and onnxruntime ({error}); install "
                               "them with pip install -e \".[onnx]\" (or pip install tf2onnx "
                               "onnxruntime).") from error
    return tf2onnx, onnxruntime


def _inline_xla_calls(graph_def):
    """Removes the XLA must-compile / no-inline marks of every function and call node, so
    grappler inlines them. Returns how many marks were removed."""
    removed = 0
    for function in graph_def.library.function:
        for mark in ("_XlaMustCompile", "_noinline"):
            if mark in function.attr:
                del function.attr[mark]
                removed += 1
    nodes = list(graph_def.node) + [n for f in graph_def.library.function for n in f.node_def]
    for node in nodes:
        if "_XlaMustCompile" in node.attr:
            del node.attr["_XlaMustCompile"]
            removed += 1
    return removed


def export_onnx(saved_model_dir, onnx_path, opset=DEFAULT_OPSET):
    """Converts a kgan SavedModel's ``serving_default`` signature to an ONNX file.

    Args:
        saved_model_dir: the SavedModel (``EXPORT_DIR/1``).
        onnx_path: the ``.onnx`` file to write (atomically).
        opset: the ONNX opset.

    Returns:
        ``{"opset", "input", "output", "size_bytes", "inlined_xla_marks"}``.

    Raises:
        OnnxMissingError: without the ``onnx`` extra.
        OnnxExportError: when tf2onnx leaves an op it cannot convert.
    """
    tf2onnx, _ = require()
    import tensorflow as tf
    from tf2onnx import tf_loader

    # tf2onnx logs every pass at INFO and TensorFlow warns about its v1 graph APIs.
    quiet = [logging.getLogger("tf2onnx"), tf.get_logger()]
    levels = [logger.level for logger in quiet]
    for logger in quiet:
        logger.setLevel(logging.ERROR)
    try:
        graph_def, inputs, outputs, renames = tf_loader.from_saved_model(
            saved_model_dir, None, None, tag="serve", signatures=["serving_default"],
            return_tensors_to_rename=True)
        removed = _inline_xla_calls(graph_def)
        if removed:
            with tf.Graph().as_default():
                graph_def = tf_loader.tf_optimize(inputs, outputs, graph_def)
        renames = {**renames, **{name: OUTPUT_NAME for name in outputs}}
        proto, _ = tf2onnx.convert.from_graph_def(
            graph_def, input_names=inputs, output_names=outputs, opset=opset,
            tensors_to_rename=renames)
    finally:
        for logger, level in zip(quiet, levels):
            logger.setLevel(level)
    import onnx

    leftover = sorted({n.op_type for n in proto.graph.node if n.domain in ("", "ai.onnx")
                       and not onnx.defs.has(n.op_type)})
    if leftover:
        raise OnnxExportError(f"tf2onnx could not convert the TensorFlow ops {leftover} of "
                              f"{saved_model_dir}; no {onnx_path} written.")
    data = proto.SerializeToString()
    tmp = onnx_path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, onnx_path)
    return {"opset": opset, "input": [i.name for i in proto.graph.input],
            "output": [o.name for o in proto.graph.output], "size_bytes": len(data),
            "inlined_xla_marks": removed}


class OnnxRunner:
    """Runs a kgan ``.onnx`` generator with onnxruntime on float32 NHWC images in [-1, 1].

    Args:
        path: the ``.onnx`` file.
        num_threads: intra-op threads (None: onnxruntime's default).
    """

    def __init__(self, path, num_threads=None):
        _, ort = require()
        options = ort.SessionOptions()
        if num_threads:
            options.intra_op_num_threads = int(num_threads)
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input = self.session.get_inputs()[0].name

    def __call__(self, images):
        return self.session.run(None, {self.input: np.asarray(images, np.float32)})[0]


def verify_onnx(onnx_path, model, images, bound=None):
    """Compares the ONNX file with ``model`` on ``images`` (each reflect-padded to the size
    multiple, as the SavedModel's float signature is verified).

    Args:
        onnx_path: the ``.onnx`` file.
        model: the Keras generator.
        images: uint8 (H, W, 3) arrays (held-out photos).
        bound: an ``ERROR_BOUNDS`` entry (default ``ERROR_BOUND``).

    Returns:
        ``kgan.exporting.verify.fidelity``'s figures and ``"image_sizes"``.

    Raises:
        OnnxExportError: when the file does not load or is off the bound.
    """
    bound = bound or ERROR_BOUND
    try:
        runner = OnnxRunner(onnx_path)
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own exception types
        raise OnnxExportError(f"{onnx_path} does not load in onnxruntime: {error}") from error
    multiple = size_multiple(model)
    expected, actual = [], []
    for image in images:
        height, width = image.shape[:2]
        padded = np.pad(image, ((0, (-height) % multiple), (0, (-width) % multiple), (0, 0)),
                        mode="reflect")
        x = padded[np.newaxis].astype(np.float32) / 127.5 - 1.0
        expected.append(np.asarray(model(x, training=False)).reshape(-1, 3))
        actual.append(runner(x).reshape(-1, 3))
    expected, actual = np.concatenate(expected), np.concatenate(actual)
    if not np.all(np.isfinite(actual)):
        raise OnnxExportError(f"{onnx_path} produced non-finite values.")
    errors = {**fidelity(expected, actual),
              "image_sizes": [list(image.shape[:2]) for image in images]}
    check_fidelity(os.path.basename(onnx_path), errors, bound, OnnxExportError)
    return errors


def export_and_verify(saved_model_dir, export_dir, model, verify_images=None, bound=None,
                      opset=DEFAULT_OPSET):
    """Writes ``export_dir/model.onnx`` from the SavedModel and verifies it.

    Args:
        saved_model_dir: the SavedModel to convert.
        export_dir: the export folder.
        model: the Keras generator.
        verify_images: uint8 images to verify on; None skips verification.
        bound: the error bound (default ``ERROR_BOUND``).
        opset: the ONNX opset.

    Returns:
        The manifest entry: path, size, opset, names, input contract, bound, verification and
        versions.
    """
    tf2onnx, ort = require()
    bound = bound or ERROR_BOUND
    path = os.path.join(export_dir, ONNX_FILE)
    info = export_onnx(saved_model_dir, path, opset)
    multiple = size_multiple(model)
    entry = {"path": ONNX_FILE, "size_bytes": info["size_bytes"], "opset": info["opset"],
             "inputs": {info["input"][0]: "float32 (N, H, W, 3) in [-1, 1]; H, W multiples of "
                                          f"{multiple}"},
             "outputs": {info["output"][0]: "float32 (N, H, W, 3) in [-1, 1]"},
             "bound": bound,
             "versions": {"tf2onnx": tf2onnx.__version__, "onnxruntime": ort.__version__}}
    if verify_images is not None:
        entry["verification"] = verify_onnx(path, model, verify_images, bound)
    return entry
