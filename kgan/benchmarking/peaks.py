"""The machine's yardsticks and FLOP counting for kgan.benchmarking.bench: the best matmul and 3x3
conv GFLOP/s in float32 and bfloat16 measured in this process (TF's own kernels, not the CPU's
theoretical peak), a short matmul probe run between timed steps, and the convolution/matmul FLOPs of
a traced Keras forward pass.

Called by kgan.benchmarking.bench and the peer benchmarks in benchmarks/.
"""

import time

import numpy as np
import tensorflow as tf


def _best_seconds(fn, args, reps):
    fn(*args)  # trace and warm up
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        result = fn(*args)
        _ = result.shape
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak(dtype="float32", size=2048, reps=20):
    """Best GFLOP/s of a (size x size) @ (size x size) matmul in a ``tf.function``.

    Args:
        dtype: ``float32`` or ``bfloat16``.
        size: matrix side.
        reps: timed calls (the best one counts).

    Returns:
        GFLOP/s (2 * size^3 FLOPs per call).
    """
    rng = tf.random.Generator.from_seed(0)
    a = tf.cast(rng.uniform((size, size)), dtype)
    b = tf.cast(rng.uniform((size, size)), dtype)
    fn = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    return 2.0 * size ** 3 / _best_seconds(fn, (a, b), reps) / 1e9


def matmul_probe(dtype="float32", size=2048, reps=3):
    """A reusable short matmul peak measurement, run between timed steps.

    On a shared machine the best-of peaks (measured in quiet moments) and a step median
    (measured through whatever load there is) see different machines. The probe measures
    what the machine gives *now*, next to each step, so that a step can be compared with a
    peak taken under the same load.

    Returns:
        A function returning the best GFLOP/s of ``reps`` calls (about 0.1 s in fp32 at 2048).
    """
    rng = tf.random.Generator.from_seed(2)
    a = tf.cast(rng.uniform((size, size)), dtype)
    b = tf.cast(rng.uniform((size, size)), dtype)
    fn = tf.function(lambda x, y: tf.linalg.matmul(x, y))
    fn(a, b)
    return lambda: 2.0 * size ** 3 / _best_seconds(fn, (a, b), reps) / 1e9


def conv_peak(dtype="float32", size=64, channels=256, kernel=3, batch=1, reps=20):
    """Best GFLOP/s of a (kernel x kernel, channels -> channels) 'same' conv at size x size.

    Returns:
        GFLOP/s (2 * K^2 * C^2 * H * W * batch FLOPs per call).
    """
    rng = tf.random.Generator.from_seed(1)
    x = tf.cast(rng.uniform((batch, size, size, channels)), dtype)
    w = tf.cast(rng.normal((kernel, kernel, channels, channels), stddev=0.05), dtype)
    fn = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "SAME"))
    flops = 2.0 * kernel * kernel * channels * channels * size * size * batch
    return flops / _best_seconds(fn, (x, w), reps) / 1e9


def measure_peaks(size=2048, reps=20, conv_size=64):
    """Matmul and conv peaks in float32 and bfloat16 (GFLOP/s), plus their bf16/fp32 ratios."""
    peaks = {}
    for dtype, tag in (("float32", "fp32"), ("bfloat16", "bf16")):
        peaks[f"matmul_{tag}_gflops"] = matmul_peak(dtype, size, reps)
        peaks[f"conv_{tag}_gflops"] = conv_peak(dtype, conv_size, reps=reps)
    peaks["matmul_bf16_over_fp32"] = peaks["matmul_bf16_gflops"] / peaks["matmul_fp32_gflops"]
    peaks["conv_bf16_over_fp32"] = peaks["conv_bf16_gflops"] / peaks["conv_fp32_gflops"]
    return peaks


def _dims(tensor, what):
    dims = tensor.shape.as_list()
    if any(d is None for d in dims):
        raise ValueError(f"Cannot count FLOPs of {what}: shape {dims} is not static; pass a "
                         "fully defined input_shape.")
    return dims


def graph_flops(graph):
    """Sums convolution and matmul FLOPs over the ops of a traced graph.

    Conv2D: 2*K*K*Cin*Cout*Hout*Wout*N (grouped convs count their per-group Cin).
    Conv2DBackpropInput (a transposed conv's forward): 2*K*K*Cin*Cout*Hin*Win*N on its input
    grid. DepthwiseConv2dNative: 2*K*K*Cout*Hout*Wout*N. MatMul / BatchMatMul: 2*M*K*N per
    batch element. Everything else counts 0.

    Args:
        graph: a ``tf.Graph`` (e.g. a concrete function's ``.graph``).

    Returns:
        The FLOP count (int).
    """
    total = 0
    for op in graph.get_operations():
        kind = op.type
        if kind in ("Conv2D", "Conv2DBackpropInput", "DepthwiseConv2dNative"):
            nchw = op.get_attr("data_format") == b"NCHW"
            kh, kw, k_in, k_out = _dims(op.inputs[1], op.name)
            grid = op.inputs[2] if kind == "Conv2DBackpropInput" else op.outputs[0]
            n, a, b, c = _dims(grid, op.name)
            spatial = a * b * n if not nchw else b * c * n
            # Depthwise filters are (K, K, Cin, multiplier): the same product.
            total += 2 * kh * kw * k_in * k_out * spatial
        elif kind in ("MatMul", "BatchMatMul", "BatchMatMulV2", "BatchMatMulV3"):
            a = _dims(op.inputs[0], op.name)
            out = _dims(op.outputs[0], op.name)
            transpose = op.get_attr("transpose_a" if kind == "MatMul" else "adj_x")
            inner = a[-2] if transpose else a[-1]
            total += 2 * int(np.prod(out)) * inner
    return total


def forward_flops(model, input_shape, dtype="float32"):
    """Forward FLOPs of a Keras model at a fixed input shape, from its traced graph.

    Nothing is executed: the forward pass is only traced.

    Args:
        model: a ``keras.Model``.
        input_shape: the full input shape, batch included, e.g. ``(1, 256, 256, 3)``.
        dtype: the input dtype.

    Returns:
        The FLOP count (int); see ``graph_flops`` for what counts.
    """
    fn = tf.function(lambda x: model(x, training=False))
    return graph_flops(fn.get_concrete_function(tf.TensorSpec(input_shape, dtype)).graph)


def sync(result):
    """Forces results to the host so that the step has finished."""
    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()
    return result
