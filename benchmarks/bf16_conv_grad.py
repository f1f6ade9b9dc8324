"""Minimal benchmark of the op that bounds kgan's bf16 training steps: a 3x3 C -> C
convolution (padded input, VALID), forward, input gradient and filter gradient (TF's oneDNN
kernels), and the filter gradient as 9 matmuls (``kgan.models.layers.MatmulFilterGradConv2D``,
which DeOldify's full-resolution last block uses: 1.0-1.2x faster in bf16 and 1.3-1.4x in fp32
at its shapes) or one im2col matmul (not faster). Best of 15 calls each, in bf16 and fp32.

The default shape is a CycleGAN resnet block (batch 1, 64x64, 256 channels); DeOldify's
last block (2 x 3x3 convs at full resolution on 303 channels for Artistic, 259 for Stable: 55 %
of the generator's FLOPs) is ``--batch=4 --size=128 --channels=303``::

    python benchmarks/bf16_conv_grad.py
    python benchmarks/bf16_conv_grad.py --batch=4 --size=128 --channels=303,304
"""

import argparse
import time

import tensorflow as tf


def best_seconds(fn, *args, reps=15):
    fn(*args)
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        fn(*args).numpy()
        best = min(best, time.perf_counter() - start)
    return best


def conv_ops(batch, size, c):
    """(name, function, argument names) for the forward and gradients of one 3x3 conv."""
    strides = [1, 1, 1, 1]
    pixels = batch * size * size
    forward = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "VALID"))
    input_grad = tf.function(lambda w, dy: tf.raw_ops.Conv2DBackpropInput(
        input_sizes=[batch, size + 2, size + 2, c], filter=w, out_backprop=dy,
        strides=strides, padding="VALID"))
    filter_grad = tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
        input=x, filter_sizes=[3, 3, c, c], out_backprop=dy, strides=strides,
        padding="VALID"))

    @tf.function
    def nine_matmuls(x, dy):
        d = tf.reshape(dy, [pixels, c])
        taps = [tf.matmul(tf.reshape(x[:, i:i + size, j:j + size], [pixels, c]), d,
                          transpose_a=True) for i in range(3) for j in range(3)]
        return tf.reshape(tf.stack(taps), [3, 3, c, c])

    @tf.function
    def im2col(x, dy):
        patches = tf.concat([x[:, i:i + size, j:j + size] for i in range(3) for j in range(3)],
                            -1)
        return tf.reshape(tf.matmul(tf.reshape(patches, [pixels, 9 * c]),
                                    tf.reshape(dy, [pixels, c]), transpose_a=True),
                          [3, 3, c, c])

    return (("forward", forward, ("x", "w")), ("input gradient", input_grad, ("w", "dy")),
            ("filter gradient", filter_grad, ("x", "dy")),
            ("filter gradient, 9 matmuls", nine_matmuls, ("x", "dy")),
            ("filter gradient, im2col matmul", im2col, ("x", "dy")))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--channels", default="256", help="comma-separated channel counts")
    args = parser.parse_args()
    for c in (int(v) for v in args.channels.split(",")):
        flops = 2 * 9 * c * c * args.size * args.size * args.batch
        print(f"3x3 conv {c} -> {c}, batch {args.batch}, {args.size}x{args.size}: "
              f"{flops / 1e9:.1f} GFLOP")
        for dtype in ("bfloat16", "float32"):
            rng = tf.random.Generator.from_seed(0)
            tensors = {
                "x": tf.cast(rng.normal((args.batch, args.size + 2, args.size + 2, c)), dtype),
                "w": tf.cast(rng.normal((3, 3, c, c), stddev=0.05), dtype),
                "dy": tf.cast(rng.normal((args.batch, args.size, args.size, c)), dtype)}
            for name, fn, names in conv_ops(args.batch, args.size, c):
                seconds = best_seconds(fn, *(tensors[n] for n in names))
                print(f"{dtype:9s} {name:31s} {seconds * 1e3:8.2f} ms "
                      f"{flops / seconds / 1e9:6.0f} GFLOP/s", flush=True)


if __name__ == "__main__":
    main()
