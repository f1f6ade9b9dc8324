"""Minimal benchmark of a "same" 3x3 conv with a huge kernel on a tiny grid — DeOldify Stable /
Video's middle convs (2048 -> 4096 -> 2048 at 1/32 of the image) — in TensorFlow's oneDNN
``Conv2D`` against kgan's ``Im2colConv2D`` (one matmul over the stacked taps; same weights):
forward, and input + filter gradients together, best of ``--reps`` calls, bf16 and fp32, and the
largest difference between the two layers' outputs.

Shapes are ``NxHxCINxCOUT``: the defaults are Stable's middle conv at 128^2 batch 4, at 192^2
batch 8 and at render factor 35 (560 px, batch 1), then two smaller kernels where Conv2D is as
fast or faster (Stable's 1536 -> 512 at 1/16 and Artistic's 512 -> 1024 middle conv), the reason
kgan.models.deoldify uses Im2colConv2D only from 2**25 kernel weights::

    python benchmarks/im2col_conv.py
    python benchmarks/im2col_conv.py --shapes=4x4x2048x4096 --reps=5
"""

import argparse
import time

import keras
import tensorflow as tf

from kgan.models.layers import Im2colConv2D

DEFAULT_SHAPES = "4x4x2048x4096,8x6x2048x4096,1x18x2048x4096,4x8x1536x512,8x4x512x1024"


def best_seconds(fn, *args, reps=10):
    tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
    best = float("inf")
    for _ in range(reps):
        start = time.perf_counter()
        tf.nest.map_structure(lambda t: t.numpy(), fn(*args))
        best = min(best, time.perf_counter() - start)
    return best


def measure(shape, dtype, reps):
    """{layer name: (forward s, gradients s)} and the max output difference for one shape."""
    n, size, c_in, c_out = shape
    policy = "mixed_bfloat16" if dtype == "bfloat16" else "float32"
    layers = {"Conv2D": keras.layers.Conv2D(c_out, 3, padding="same", dtype=policy),
              "Im2colConv2D": Im2colConv2D(c_out, 3, padding="same", dtype=policy)}
    x = tf.random.stateless_normal((n, size, size, c_in), seed=(0, 0))
    dy = tf.cast(tf.random.stateless_normal((n, size, size, c_out), seed=(1, 0)), dtype)
    for layer in layers.values():
        layer.build(x.shape)
    layers["Im2colConv2D"].set_weights(layers["Conv2D"].get_weights())
    times, outputs = {}, {}
    for name, layer in layers.items():
        forward = tf.function(lambda t, layer=layer: layer(t))

        @tf.function
        def gradients(t, layer=layer):
            with tf.GradientTape() as tape:
                tape.watch(t)
                y = layer(t)
            return tape.gradient(y, [t, layer.kernel], output_gradients=dy)

        times[name] = (best_seconds(forward, x, reps=reps), best_seconds(gradients, x, reps=reps))
        outputs[name] = tf.cast(forward(x), tf.float32)
    difference = float(tf.reduce_max(tf.abs(outputs["Conv2D"] - outputs["Im2colConv2D"])))
    return times, difference


def parse_shapes(text):
    return [tuple(int(v) for v in item.split("x")) for item in text.split(",") if item]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="NxHxCINxCOUT[,...]")
    parser.add_argument("--reps", type=int, default=10)
    parser.add_argument("--precisions", default="bfloat16,float32")
    args = parser.parse_args(argv)
    for shape in parse_shapes(args.shapes):
        n, size, c_in, c_out = shape
        gflop = 2 * 9 * c_in * c_out * n * size * size / 1e9
        print(f"3x3 conv {c_in} -> {c_out} on {n} x {size}x{size}: {gflop:.2f} GFLOP forward")
        for dtype in args.precisions.split(","):
            times, difference = measure(shape, dtype, args.reps)
            for name, (forward, grads) in times.items():
                print(f"  {dtype:8s} {name:12s} forward {1e3 * forward:8.1f} ms "
                      f"({gflop / forward:5.0f} GFLOP/s)   input + filter gradients "
                      f"{1e3 * grads:8.1f} ms ({2 * gflop / grads:5.0f} GFLOP/s)")
            conv, im2col = times["Conv2D"], times["Im2colConv2D"]
            print(f"  {dtype:8s} Im2colConv2D speed-up: forward {conv[0] / im2col[0]:.2f}x, "
                  f"gradients {conv[1] / im2col[1]:.2f}x; max |difference| {difference:.3g}")


if __name__ == "__main__":
    main()
