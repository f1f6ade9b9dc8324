"""Minimal benchmark of the memory-bound ops that issue 27's profile of DeOldify's critic phase
(pretrain_d) put near the top, each kgan layer against the formulation it replaced, same
inputs, bf16, best of ``--reps`` calls, forward and forward + backward:

- ``blur``: kgan's ``Blur`` in bf16 (``mirror_pad``: the first row and column repeated by
  copies, ``MirrorPadGrad`` as the gradient) against ``tf.pad(SYMMETRIC)`` (one ``MirrorPad``),
  both then the 2x2 average; shapes ``NxHxC`` (default: Artistic's last blur at 192², batch 8,
  and its 1/2-resolution one);
- ``attention``: ``SelfAttention2D``'s scores -> softmax -> attended on bf16 scores against the
  softmax on a float32 copy of the (N, HW, HW) scores; shapes ``NxHWxC`` (default: the critic's
  attention at 192², batch 8: 48² positions, 128 channels);
- ``batchnorm`` (inference, forward only; kept out of kgan): Keras's batch norm under
  mixed_bfloat16 (a float32 round trip) against ``FusedBatchNormV3`` on bf16 and a bf16 affine
  ``x * s + b``; shapes ``NxHxC`` (default: Artistic's decoder at 192², batch 8),

with the largest output difference to the first variant::

    python benchmarks/memory_bound_ops.py
    python benchmarks/memory_bound_ops.py --blur_shapes=16x128x300 --attention_shapes=16x1024x128
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from kgan.models.decoder_layers import Blur


def best_ms(fn, x, reps):
    fn(x)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(x))
        best = min(best, time.perf_counter() - start)
    return best * 1e3


def forward_and_backward(forward):
    @tf.function
    def both(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = forward(x)
        return tape.gradient(y, x, output_gradients=y)
    return both


def blur_mirror_pad(x):
    padded = tf.pad(x, [[0, 0], [1, 0], [1, 0], [0, 0]], mode="SYMMETRIC")
    return tf.nn.avg_pool2d(padded, 2, 1, "VALID")


def attention(softmax_dtype):
    def forward(x):
        # q, k: the first C // 8 channels twice (the 1x1 convs' cost is not the point here).
        q = x[..., :x.shape[-1] // 8]
        scores = tf.matmul(q, q, transpose_b=True)
        weights = tf.nn.softmax(tf.cast(scores, softmax_dtype), axis=-1)
        return tf.matmul(tf.cast(weights, x.dtype), x)
    return forward


def batch_norms(channels, rng):
    """Keras's inference batch norm (mixed_bfloat16) and the two alternatives, same statistics."""
    layer = keras.layers.BatchNormalization(epsilon=1e-5, dtype="mixed_bfloat16")
    layer.build((None, None, None, channels))
    layer.set_weights([rng.normal(size=channels), rng.normal(size=channels),
                       rng.normal(size=channels), rng.uniform(0.5, 2.0, size=channels)])
    gamma, beta, mean, variance = layer.weights

    def fused(x):
        return tf.raw_ops.FusedBatchNormV3(x=x, scale=gamma, offset=beta, mean=mean,
                                           variance=variance, epsilon=1e-5,
                                           is_training=False)[0]

    def affine(x):
        scale = gamma * tf.math.rsqrt(variance + 1e-5)
        return x * tf.cast(scale, x.dtype) + tf.cast(beta - mean * scale, x.dtype)

    return [("Keras (kgan)", lambda x: layer(x, training=False)),
            ("FusedBatchNormV3", fused), ("bf16 affine", affine)]


def rows(kind, shapes, variants, make_input, reps, backward=True):
    """Prints a table row per variant; ``variants(shape)`` gives the (name, fn) pairs."""
    for shape in shapes:
        x = make_input(shape)
        first = None
        for name, fn in variants(shape):
            output = tf.cast(fn(x), tf.float32).numpy()
            first = output if first is None else first
            forward_ms = best_ms(tf.function(fn), x, reps)
            both = f"{best_ms(forward_and_backward(fn), x, reps):.1f}" if backward else "–"
            diff = np.abs(output - first).max()
            print(f"| {kind} | {'x'.join(map(str, shape))} | {name} | {forward_ms:.1f} | "
                  f"{both} | {diff:.2g} |")


def parse_shapes(text):
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--blur_shapes", default="8x192x300,8x96x336")
    parser.add_argument("--attention_shapes", default="8x2304x128")
    parser.add_argument("--batchnorm_shapes", default="8x96x300,8x48x768")
    parser.add_argument("--reps", type=int, default=5)
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| op | shape | variant | forward ms | forward + backward ms | max diff to the first |")
    print("|---|---|---|---|---|---|")
    rows("blur", parse_shapes(args.blur_shapes),
         lambda shape: [("MirrorPad (before)", blur_mirror_pad),
                        ("copies (kgan)", Blur(dtype="mixed_bfloat16"))],
         lambda s: tf.constant(rng.normal(size=(s[0], s[1], s[1], s[2])), tf.bfloat16),
         args.reps)
    rows("attention", parse_shapes(args.attention_shapes),
         lambda shape: [("float32 softmax (before)", attention(tf.float32)),
                        ("bf16 softmax (kgan)", attention(tf.bfloat16))],
         lambda s: tf.constant(rng.normal(size=s), tf.bfloat16), args.reps)
    rows("batchnorm", parse_shapes(args.batchnorm_shapes),
         lambda shape: batch_norms(shape[-1], rng),
         lambda s: tf.constant(rng.normal(size=(s[0], s[1], s[1], s[2])), tf.bfloat16),
         args.reps, backward=False)


if __name__ == "__main__":
    main()
