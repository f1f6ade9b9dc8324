"""Minimal benchmark of the op that bounds kgan's bf16 CycleGAN step: a resnet block's 3x3
256 -> 256 convolution at 64x64 (reflection-padded input, VALID), forward, input gradient and
filter gradient (TF's oneDNN kernels), and the filter gradient as 9 matmuls or one im2col
matmul (alternatives that did not beat it). Best of 15 calls each, in bf16 and fp32.

    python benchmarks/bf16_conv_grad.py
"""

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


def main():
    flops = 2 * 9 * 256 * 256 * 64 * 64
    strides = [1, 1, 1, 1]
    for dtype in ("bfloat16", "float32"):
        rng = tf.random.Generator.from_seed(0)
        x = tf.cast(rng.normal((1, 66, 66, 256)), dtype)
        w = tf.cast(rng.normal((3, 3, 256, 256), stddev=0.05), dtype)
        dy = tf.cast(rng.normal((1, 64, 64, 256)), dtype)
        forward = tf.function(lambda x, w: tf.nn.conv2d(x, w, 1, "VALID"))
        input_grad = tf.function(lambda w, dy: tf.raw_ops.Conv2DBackpropInput(
            input_sizes=[1, 66, 66, 256], filter=w, out_backprop=dy, strides=strides,
            padding="VALID"))
        filter_grad = tf.function(lambda x, dy: tf.raw_ops.Conv2DBackpropFilter(
            input=x, filter_sizes=[3, 3, 256, 256], out_backprop=dy, strides=strides,
            padding="VALID"))

        @tf.function
        def nine_matmuls(x, dy):
            d = tf.reshape(dy, [4096, 256])
            taps = [tf.matmul(tf.reshape(x[0, i:i + 64, j:j + 64], [4096, 256]), d,
                              transpose_a=True) for i in range(3) for j in range(3)]
            return tf.reshape(tf.stack(taps), [3, 3, 256, 256])

        @tf.function
        def im2col(x, dy):
            patches = tf.concat([x[0, i:i + 64, j:j + 64] for i in range(3) for j in range(3)],
                                -1)
            return tf.reshape(tf.matmul(tf.reshape(patches, [4096, 2304]),
                                        tf.reshape(dy, [4096, 256]), transpose_a=True),
                              [3, 3, 256, 256])

        for name, fn, args in (("forward", forward, (x, w)), ("input gradient", input_grad,
                                                             (w, dy)),
                               ("filter gradient", filter_grad, (x, dy)),
                               ("filter gradient, 9 matmuls", nine_matmuls, (x, dy)),
                               ("filter gradient, im2col matmul", im2col, (x, dy))):
            seconds = best_seconds(fn, *args)
            print(f"{dtype:9s} {name:31s} {seconds * 1e3:7.2f} ms {flops / seconds / 1e9:6.0f} "
                  "GFLOP/s")


if __name__ == "__main__":
    main()
