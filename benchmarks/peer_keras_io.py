"""Peer benchmark: a plain Keras 3 CycleGAN train step in the style of the keras-io example.

This is the "keras-io CycleGAN" yardstick of docs/speed.md rebuilt for timing on the machine
at hand, in the style of https://keras.io/examples/generative/cyclegan/ (Keras 3, TF backend):

- ``ReflectionPadding2D`` is a layer calling ``ops.pad(..., mode="reflect")``;
- instance norm is ``keras.layers.GroupNormalization(groups=-1)`` (one group per channel),
  here with ``center=False, scale=False`` and epsilon 1e-5 like PyTorch's
  ``InstanceNorm2d(affine=False)`` (the example keeps gamma/beta with a N(0, 0.02) gamma
  initialiser; ``--norm_affine`` restores that: the cost is one multiply-add per element);
- resnet generator: 7x7 conv, two stride-2 3x3 downsamplings, 9 residual blocks (reflect
  pad 1, 3x3 conv, norm, ReLU, reflect pad 1, 3x3 conv, norm, add), two stride-2 3x3
  ``Conv2DTranspose`` upsamplings, reflect pad 3, 7x7 conv, tanh; ngf 64; convs followed by
  a norm have no bias, as in the example;
- 70x70 PatchGAN, ndf 64: 4x4 convs, stride 2, 2, 2, 1, then a 4x4 conv to 1 channel,
  LeakyReLU 0.2, norm after all but the first. The example pads these convs "same", which
  gives a 32x32 patch map and a 6.56 GFLOP D forward; by default they are padded by 1 and
  "valid" like the PyTorch reference (30x30, 6.29 GFLOP) so that the FLOP count equals
  kgan's and the PyTorch reference's; ``--d_padding=same`` gives the example's;
- LSGAN (MSE) adversarial losses, L1 cycle loss x10, L1 identity loss x10 x0.5, D loss
  0.5 x (real + fake); one persistent ``GradientTape`` over both generators and both
  discriminators and four ``tape.gradient`` calls, four ``Adam(2e-4, beta_1=0.5)``
  optimizers (one per network, as the example has; two optimizers over the pairs would do
  the same arithmetic);
- the train step is one ``tf.function`` (no XLA: Keras 3's ``jit_compile="auto"`` turns XLA
  off on CPU-only machines).

With ``--precision=mixed_bfloat16`` the global Keras policy is set before the models are
built; the final tanh (G) and the last conv's output (D) are float32, as the Keras mixed
precision guide recommends.

Timing, FLOP counting, peaks and peak RSS reuse ``kgan.benchmarking.bench`` and
``kgan.core.measure`` so that the figures are comparable with ``python -m kgan.bench``: the
matmul/conv peaks in fp32 and bf16 are measured before and after the step (best of both), the first
step (trace + run), the median of ``--steps`` steps after ``--warmup`` (the first included), a short
matmul probe after each timed step (the "concurrent" peak), forward FLOPs from the traced graphs and
``cyclegan_step_flops`` for the step (1.88 TFLOP at 256^2 by kgan's convention; the example shares
its D forwards between the G and D losses and so executes a little less). Peak RSS is the process's
VmHWM after a reset taken just before the models are built.

Usage::

    .venv/bin/python benchmarks/peer_keras_io.py --precision=float32 --steps=5 --warmup=2 \
        --output_json=/tmp/peer_keras_io_fp32.json
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from keras import layers, ops  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import peer_report  # noqa: E402  (this folder, on sys.path when run as a script)

from kgan.benchmarking import peaks  # noqa: E402
from kgan.core import measure

KERNEL_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02)
GAMMA_INIT = keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


class ReflectionPadding2D(layers.Layer):
    """Reflection padding, as in the keras-io example (``ops.pad`` with mode "reflect")."""

    def __init__(self, padding=(1, 1), **kwargs):
        self.padding = tuple(padding)
        super().__init__(**kwargs)

    def call(self, input_tensor, mask=None):
        padding_width, padding_height = self.padding
        padding_tensor = [[0, 0], [padding_height, padding_height],
                          [padding_width, padding_width], [0, 0]]
        return ops.pad(input_tensor, padding_tensor, mode="reflect")


def instance_norm(affine):
    if affine:
        return layers.GroupNormalization(groups=-1, epsilon=1e-5, gamma_initializer=GAMMA_INIT)
    return layers.GroupNormalization(groups=-1, epsilon=1e-5, center=False, scale=False)


def residual_block(x, affine):
    dim = x.shape[-1]
    input_tensor = x
    x = ReflectionPadding2D()(input_tensor)
    x = layers.Conv2D(dim, 3, kernel_initializer=KERNEL_INIT, padding="valid", use_bias=False)(x)
    x = instance_norm(affine)(x)
    x = layers.Activation("relu")(x)
    x = ReflectionPadding2D()(x)
    x = layers.Conv2D(dim, 3, kernel_initializer=KERNEL_INIT, padding="valid", use_bias=False)(x)
    x = instance_norm(affine)(x)
    return layers.add([input_tensor, x])


def downsample(x, filters, activation, affine, kernel_size=3, strides=2, padding="same"):
    if padding == "torch":  # PyTorch's padding=1 with a valid conv
        x = layers.ZeroPadding2D(1)(x)
        padding = "valid"
    x = layers.Conv2D(filters, kernel_size, strides=strides, kernel_initializer=KERNEL_INIT,
                      padding=padding, use_bias=False)(x)
    x = instance_norm(affine)(x)
    if activation:
        x = activation(x)
    return x


def upsample(x, filters, affine):
    x = layers.Conv2DTranspose(filters, 3, strides=2, padding="same",
                               kernel_initializer=KERNEL_INIT, use_bias=False)(x)
    x = instance_norm(affine)(x)
    return layers.Activation("relu")(x)


def get_resnet_generator(size, filters=64, num_residual_blocks=9, affine=False, residual=False,
                         name=None):
    """The example's generator; ``residual``: no tanh, ``clip(input + correction, -1, 1)``
    from the same final conv (Keras' default Glorot kernel and zero bias), as a plain Keras
    global skip (benchmarks/residual_generalisation.py)."""
    img_input = layers.Input(shape=(size, size, 3), name=name + "_img_input")
    x = ReflectionPadding2D(padding=(3, 3))(img_input)
    x = layers.Conv2D(filters, 7, kernel_initializer=KERNEL_INIT, use_bias=False)(x)
    x = instance_norm(affine)(x)
    x = layers.Activation("relu")(x)
    for _ in range(2):
        filters *= 2
        x = downsample(x, filters, layers.Activation("relu"), affine)
    for _ in range(num_residual_blocks):
        x = residual_block(x, affine)
    for _ in range(2):
        filters //= 2
        x = upsample(x, filters, affine)
    x = ReflectionPadding2D(padding=(3, 3))(x)
    x = layers.Conv2D(3, 7, padding="valid")(x)
    if residual:
        x = ops.clip(img_input + ops.cast(x, "float32"), -1.0, 1.0)  # tf.clip_by_value
    else:
        x = layers.Activation("tanh", dtype="float32")(x)
    return keras.Model(img_input, x, name=name)


def get_discriminator(size, filters=64, affine=False, padding="torch", name=None):
    img_input = layers.Input(shape=(size, size, 3), name=name + "_img_input")

    def conv(x, n, strides, **kwargs):
        if padding == "torch":
            x = layers.ZeroPadding2D(1)(x)
        return layers.Conv2D(n, 4, strides=strides, kernel_initializer=KERNEL_INIT,
                             padding="valid" if padding == "torch" else "same", **kwargs)(x)

    x = conv(img_input, filters, 2)
    x = layers.LeakyReLU(negative_slope=0.2)(x)
    num_filters = filters
    for block in range(3):
        num_filters *= 2
        x = downsample(x, num_filters, layers.LeakyReLU(negative_slope=0.2), affine,
                       kernel_size=4, strides=2 if block < 2 else 1, padding=padding)
    x = conv(x, 1, 1)
    x = layers.Activation("linear", dtype="float32")(x)
    return keras.Model(img_input, x, name=name)


class CycleGan(keras.Model):
    """The keras-io example's CycleGan model (train_step only)."""

    def __init__(self, generator_G, generator_F, discriminator_X, discriminator_Y,
                 lambda_cycle=10.0, lambda_identity=0.5):
        super().__init__()
        self.gen_G, self.gen_F = generator_G, generator_F
        self.disc_X, self.disc_Y = discriminator_X, discriminator_Y
        self.lambda_cycle, self.lambda_identity = lambda_cycle, lambda_identity
        adam = lambda: keras.optimizers.Adam(learning_rate=2e-4, beta_1=0.5)  # noqa: E731
        self.gen_G_optimizer, self.gen_F_optimizer = adam(), adam()
        self.disc_X_optimizer, self.disc_Y_optimizer = adam(), adam()
        adv_loss_fn = keras.losses.MeanSquaredError()
        self.generator_loss_fn = lambda fake: adv_loss_fn(ops.ones_like(fake), fake)
        self.discriminator_loss_fn = lambda real, fake: 0.5 * (
            adv_loss_fn(ops.ones_like(real), real) + adv_loss_fn(ops.zeros_like(fake), fake))
        self.cycle_loss_fn = keras.losses.MeanAbsoluteError()
        self.identity_loss_fn = keras.losses.MeanAbsoluteError()

    def build_optimizers(self):
        for opt, model in ((self.gen_G_optimizer, self.gen_G), (self.gen_F_optimizer, self.gen_F),
                           (self.disc_X_optimizer, self.disc_X),
                           (self.disc_Y_optimizer, self.disc_Y)):
            opt.build(model.trainable_variables)

    def train_step(self, batch_data):
        real_x, real_y = batch_data
        with tf.GradientTape(persistent=True) as tape:
            fake_y = self.gen_G(real_x, training=True)
            fake_x = self.gen_F(real_y, training=True)
            cycled_x = self.gen_F(fake_y, training=True)
            cycled_y = self.gen_G(fake_x, training=True)
            same_x = self.gen_F(real_x, training=True)
            same_y = self.gen_G(real_y, training=True)
            disc_real_x = self.disc_X(real_x, training=True)
            disc_fake_x = self.disc_X(fake_x, training=True)
            disc_real_y = self.disc_Y(real_y, training=True)
            disc_fake_y = self.disc_Y(fake_y, training=True)
            gen_G_loss = self.generator_loss_fn(disc_fake_y)
            gen_F_loss = self.generator_loss_fn(disc_fake_x)
            cycle_loss_G = self.cycle_loss_fn(real_y, cycled_y) * self.lambda_cycle
            cycle_loss_F = self.cycle_loss_fn(real_x, cycled_x) * self.lambda_cycle
            id_loss_G = (self.identity_loss_fn(real_y, same_y) * self.lambda_cycle
                         * self.lambda_identity)
            id_loss_F = (self.identity_loss_fn(real_x, same_x) * self.lambda_cycle
                         * self.lambda_identity)
            total_loss_G = gen_G_loss + cycle_loss_G + id_loss_G
            total_loss_F = gen_F_loss + cycle_loss_F + id_loss_F
            disc_X_loss = self.discriminator_loss_fn(disc_real_x, disc_fake_x)
            disc_Y_loss = self.discriminator_loss_fn(disc_real_y, disc_fake_y)
        grads_G = tape.gradient(total_loss_G, self.gen_G.trainable_variables)
        grads_F = tape.gradient(total_loss_F, self.gen_F.trainable_variables)
        disc_X_grads = tape.gradient(disc_X_loss, self.disc_X.trainable_variables)
        disc_Y_grads = tape.gradient(disc_Y_loss, self.disc_Y.trainable_variables)
        self.gen_G_optimizer.apply_gradients(zip(grads_G, self.gen_G.trainable_variables))
        self.gen_F_optimizer.apply_gradients(zip(grads_F, self.gen_F.trainable_variables))
        self.disc_X_optimizer.apply_gradients(zip(disc_X_grads, self.disc_X.trainable_variables))
        self.disc_Y_optimizer.apply_gradients(zip(disc_Y_grads, self.disc_Y.trainable_variables))
        return {"G_loss": total_loss_G, "F_loss": total_loss_F,
                "D_X_loss": disc_X_loss, "D_Y_loss": disc_Y_loss}


def count_params(model):
    return int(sum(np.prod(v.shape) for v in model.trainable_variables))


def run(args):
    report = {"peer": "keras_io", "precision": args.precision,
              "machine": {**measure.cpu_info(), "load_average": list(os.getloadavg()),
                          "tensorflow": tf.__version__, "keras": keras.__version__}}
    peaks_before = peaks.measure_peaks(args.peak_size, args.peak_reps) if args.peaks else None

    keras.mixed_precision.set_global_policy(args.precision)
    measure.reset_peak_rss()
    size, batch = args.crop_size, args.batch_size
    gen_G = get_resnet_generator(size, affine=args.norm_affine, name="generator_G")
    gen_F = get_resnet_generator(size, affine=args.norm_affine, name="generator_F")
    disc_X = get_discriminator(size, affine=args.norm_affine, padding=args.d_padding,
                               name="discriminator_X")
    disc_Y = get_discriminator(size, affine=args.norm_affine, padding=args.d_padding,
                               name="discriminator_Y")
    model = CycleGan(gen_G, gen_F, disc_X, disc_Y)
    model.build_optimizers()
    rng = np.random.default_rng(0)
    data = tuple(tf.constant(rng.uniform(-1, 1, (batch, size, size, 3)), tf.float32)
                 for _ in range(2))
    compiled = tf.function(model.train_step, jit_compile=args.jit_compile)
    step = lambda: peaks.sync(compiled(data))  # noqa: E731
    probe = None
    if args.probe:
        probe = peaks.matmul_probe("bfloat16" if "bfloat16" in args.precision else "float32",
                                   args.peak_size)
    timings = measure.time_steps(step, args.steps, args.warmup, probe)
    peak_rss = measure.peak_rss_gib()

    shape = (batch, size, size, 3)
    g = peaks.forward_flops(gen_G, shape)
    d = peaks.forward_flops(disc_X, shape)
    step_flops = measure.cyclegan_step_flops(g, d, identity=True)
    peaks_after = peaks.measure_peaks(args.peak_size, args.peak_reps) if args.peaks else None
    keras.mixed_precision.set_global_policy("float32")

    result = {**timings, "peak_rss_gib": peak_rss,
              "generator_forward_gflop": g / 1e9, "discriminator_forward_gflop": d / 1e9,
              "step_gflop": step_flops / 1e9,
              "achieved_gflops": step_flops / timings["step_median_s"] / 1e9,
              "generator_params": count_params(gen_G),
              "discriminator_params": count_params(disc_X)}
    peer_report.add_peak_ratios(report, result, "bfloat16" in args.precision,
                                peaks_before, peaks_after)
    report["config"] = vars(args)
    report["result"] = result
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report


def parse_args(argv=None):
    parser = peer_report.common_parser(__doc__.split("\n\n")[0],
                                       ["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument("--norm_affine", action="store_true",
                        help="GroupNormalization with gamma/beta, as in the example.")
    parser.add_argument("--d_padding", default="torch", choices=["torch", "same"],
                        help="torch: pad 1 + valid (30x30 patches, 6.29 GFLOP, the default); "
                        "same: the example's 'same' padding (32x32, 6.56 GFLOP).")
    parser.add_argument("--jit_compile", action="store_true")
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    peer_report.print_and_write(run(args), "keras-io CycleGAN peer", args.output_json)


if __name__ == "__main__":
    main()
