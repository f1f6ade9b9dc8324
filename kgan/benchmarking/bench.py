"""Speed benchmark: machine peaks and a training configuration, measured in one process.

Machines here are shared and noisy, so kgan reports speed as a ratio to peaks measured in the
same process, not as seconds. ``python -m kgan.bench`` measures:

- the matmul (``--peak_size`` square) and conv (3x3, 256 -> 256 channels, 64x64) peaks in
  float32 and bfloat16, best of ``--peak_reps`` calls of a ``tf.function``, measured before
  and after the configs (the best of both is kept), and the CPU features found in
  /proc/cpuinfo (avx512f, avx512_bf16, amx_bf16, ...). TF's own matmul and conv kernels are
  the yardstick, not the CPU's theoretical peak: a whole network's convs can run faster than
  the single measured op, so ratios above 100 percent are possible;
- for the chosen config: the first step (trace + compile + run), the median and p10/p90 of
  the step time over ``--steps`` steps after ``--warmup`` steps, achieved GFLOP/s and its ratio
  to the matmul peak of the step's precision and to a *concurrent* peak (the median of a
  short matmul probe run after each timed step: the machine as the steps saw it, so that
  load on a shared machine does not bias the ratio), the steps' CPU utilisation, the peak
  RSS of the config, the input pipeline's images/s on its own, and generator inference
  images/s (Keras, SavedModel and TFLite with XNNPACK);
- generator inference on the bench input in float32 and in bfloat16 (a
  ``kgan.serving.precision.with_precision`` copy: the path of ``kgan.translate
  --precision=bfloat16``), images/s, GFLOP/s and the ratio to the 3x3 conv peak of the same
  precision (``inference_{fp32,bf16}_images_per_s``, ``_gflops``, ``_ratio_to_conv_peak``), and how
  far the bf16 output is from float32 in uint8 levels (``inference_bf16_vs_fp32_mean_uint8``,
  ``_max_uint8``);
- ``--profile_steps=N`` profiles N more steps after the timed ones (TF profiler) and reports
  the op time per step by kind (conv forward, conv input / filter gradient, matmul, casts,
  normalisation, optimizer, other; kgan.benchmarking.profiling.split_by_kind) and the top op
  types. Op times add up to the wall time only with one inter-op thread
  (``TF_NUM_INTEROP_THREADS=1``); otherwise overlapping ops make their sum larger;
- ``--compare=mixed_precision=mixed_bfloat16`` runs a second config (the first with those
  flags changed) in the same process and prints the step-rate ratio.

Every model is built by its recipe (kgan.recipes) from the same flags as ``kgan.train``
(``--batch_size`` is the global batch, as in training); one batch of the recipe's own input
pipeline is reused for every timed step. FLOPs are counted for every model: cycle_gan,
pix2pix, and restore / colorize per ``--phase`` (pretrain_g, pretrain_d or gan; nogan times
gan). The GAN phase's switcher alternates critic and generator updates depending on the
critic's loss, so its timed step is a pair, one critic update then one generator update
(``updates_per_step`` 2; kgan.benchmarking.nogan).

FLOP counting (kgan.benchmarking.peaks; the convention of the speed yardsticks in docs/speed.md):

- forward FLOPs come from the traced forward graph of each network: 2*K*K*Cin*Cout*Hout*Wout
  per convolution (``Conv2D``), transposed convolutions on their input grid
  (2*K*K*Cin*Cout*Hin*Win), 2*M*K*N per matmul; normalisation, padding, activations and
  biases are not counted. resnet_9blocks at 256^2 is 99.1 GFLOP, the basic D 6.29 GFLOP.
- A forward whose network is trained costs 3x its forward FLOPs (forward, input gradient,
  weight gradient); a forward only differentiated through (its weights get no gradient) 2x;
  a forward without gradient 1x.
- a CycleGAN training step runs each generator forward three times (translation, cycle,
  identity: 6 G forwards, 4 without identity) and the discriminators forward 2 times in the
  generator update and 4 times in the discriminator update; the generator update's D
  forwards cost 2x. So a step is 3*6*G + (2*2 + 4*3)*D = 1.88 TFLOP at 256^2 with the
  reference nets.
- pix2pix (vanilla/lsgan/hinge): G trained (3G), D trained on (A, B) and (A, G(A)) (2 x 3D),
  D differentiated through in the generator update (2D): 3*G + 8*D (D on 6 channels).
- restore / colorize (kgan.core.measure.nogan_step_flops): G = the UNet, C = the critic on G's
  output, V = the frozen VGG16 of the perceptual loss up to its deepest compared layer, on one
  batch (0 with a pixel content loss; the Gram matrices are not counted). The VGG runs on
  the generated image with the gradient flowing through it to G (2V) and on the target
  without gradient (1V). pretrain_g: 3G + 3V; pretrain_d: G (no gradient) + the critic
  trained on real and generated (6C); gan: a generator update 3G + 2C + 3V, a critic update
  G + 6C, the timed pair 4G + 8C + 3V.

Called by kgan.cli.bench (``python -m kgan.bench`` runs it). CLI::

    python -m kgan.bench --crop_size=256 --steps=5 --warmup=2 \
        --compare=mixed_precision=mixed_bfloat16 --output_json=bench.json
"""

import dataclasses
import gc
import os
import statistics
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from kgan.benchmarking.nogan import NOGAN_MODELS, build_nogan, nogan_input_dataset
from kgan.benchmarking.peaks import forward_flops, matmul_probe, measure_peaks, sync
from kgan.benchmarking.profiling import profile, split_by_kind
from kgan.benchmarking.table import format_report  # noqa: F401  (kgan.benchmarking.bench.format_report)
from kgan.core.errors import UsageError
from kgan.core.measure import (
    add_inference_peak_ratios,
    add_peak_ratios,
    best_peaks,
    cpu_info,
    current_rss_gib,
    cyclegan_step_flops,
    peak_rss_gib,
    pix2pix_step_flops,
    reset_peak_rss,
    summarize_probe,
    time_steps,
)
from kgan.core.pixels import to_uint8
from kgan.data import measure_throughput, unpaired_dataset
from kgan.exporting.saved_model import export_saved_model
from kgan.exporting.tflite import convert_tflite
from kgan.recipes import get_recipe, setup
from kgan.serving.precision import with_precision
from kgan.serving.translators import TFLiteRunner

MODELS = ("cycle_gan", "pix2pix") + NOGAN_MODELS


@dataclasses.dataclass
class BenchOptions:
    """What to measure beside the training step (the ``kgan.bench``-only flags)."""

    steps: int = 5
    warmup: int = 2
    inference: bool = True
    tflite: bool = True
    pipeline: bool = True
    probe: bool = True
    probe_size: int = 2048
    profile_steps: int = 0


def _build_trainer(config, strategy):
    """(trainer, one global batch, FLOP result keys or None, the generator, generator modes
    per timed step or None) for a config."""
    if config.model in NOGAN_MODELS:
        nogan = build_nogan(config, strategy)
        return nogan.trainer, nogan.batch, nogan.flops, nogan.generator, nogan.modes
    parts = get_recipe(config.model).build(config, strategy)
    batch = next(iter(parts.dataset_at(0)))
    shape = tuple(int(d) for d in batch[0].shape)
    trainer = parts.trainer
    if config.model == "cycle_gan":
        generator = trainer.generator_ab
        g = forward_flops(generator, shape)
        d = forward_flops(trainer.discriminator_a, shape)
        step_flops = cyclegan_step_flops(g, d, identity=config.lambda_identity > 0)
    else:
        generator = trainer.generator
        g = forward_flops(generator, shape)
        d = forward_flops(trainer.discriminator, shape[:3] + (6,))
        step_flops = pix2pix_step_flops(g, d)
    flops = {"generator_forward_gflop": g / 1e9, "discriminator_forward_gflop": d / 1e9,
             "step_gflop": step_flops / 1e9}
    return trainer, batch, flops, generator, None


def bench_step(config, options):
    """Builds ``config``'s trainer with its recipe and times its training step.

    Args:
        config: a ``TrainConfig``.
        options: a ``BenchOptions``.

    Returns:
        A dict of step timings and FLOP counts, plus the generator (under ``"generator"``).
    """
    strategy = setup(config)
    trainer, data, flops, generator, modes = _build_trainer(config, strategy)
    with strategy.scope():
        trainer.on_train_start()
    if strategy.num_replicas_in_sync > 1:
        iterator = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(data).repeat()))

        @tf.function(jit_compile=False)
        def distributed_step(batch_data):
            return strategy.run(trainer.train_step, args=(batch_data,))

        call = lambda: sync(distributed_step(next(iterator)))  # noqa: E731
    else:
        compiled = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile),
                               reduce_retracing=True)
        call = lambda: sync(compiled(data))  # noqa: E731
    if modes:
        # The NoGAN GAN phase: one critic update, then one generator update.
        def step():
            for generator_mode in modes:
                trainer.generator_mode.assign(generator_mode)
                call()
    else:
        step = call
    probe = None
    if options.probe:
        bf16 = "bfloat16" in config.mixed_precision
        probe = matmul_probe("bfloat16" if bf16 else "float32", options.probe_size)
    timings = time_steps(step, options.steps, options.warmup, probe)
    if options.profile_steps:
        timings["profile"] = split_by_kind(profile(step, options.profile_steps),
                                           options.profile_steps)
    batch = int(data[0].shape[0])
    timings["updates_per_step"] = len(modes) if modes else 1
    timings["images_per_s"] = batch * timings["updates_per_step"] / timings["step_median_s"]
    timings.update(flops)
    timings["achieved_gflops"] = flops["step_gflop"] / timings["step_median_s"]
    summarize_probe(timings)
    timings["generator"] = generator
    timings["inputs"] = data[0]
    return timings


def bench_input_pipeline(config, batches=30):
    """Examples/s of the config's input pipeline on its own: the NoGAN models' recipe pipeline
    (restore: crappified, colorize: gray inputs made on the fly), or cycle_gan's unpaired
    pipeline on the built-in samples at the config's crop size; None for other models."""
    if config.model in NOGAN_MODELS:
        return float(measure_throughput(nogan_input_dataset(config), batches))
    if config.model != "cycle_gan":
        return None
    options = {"load_size": config.load_size} if config.load_size else {}
    dataset, _ = unpaired_dataset(crop_size=config.crop_size, batch_size=config.batch_size,
                                  repeat=True, seed=0, **options)
    return float(measure_throughput(dataset, batches))


def bench_inference(generator, size, batch=1, reps=5, tflite=True):
    """Generator inference images/s through Keras, a SavedModel and TFLite (XNNPACK).

    Args:
        generator: a kgan generator.
        size: the square input size.
        batch: images per call (TFLite always runs one at a time).
        reps: timed calls (the median counts).
        tflite: also convert and time a float32 TFLite file.

    Returns:
        ``{"keras": ips, "saved_model": ips, "tflite_float32": ips}`` (images per second).
    """

    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (batch, size, size, 3)).astype(np.float32)
    x_tensor = tf.constant(x)

    def images_per_s(fn, images_per_call):
        fn()
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            fn()
            times.append(time.perf_counter() - start)
        return images_per_call / statistics.median(times)

    keras_fn = tf.function(lambda images: generator(images, training=False))
    results = {"keras": images_per_s(lambda: sync(keras_fn(x_tensor)), batch)}
    with tempfile.TemporaryDirectory() as tmp:
        saved_model_dir = os.path.join(tmp, "saved_model")
        export_saved_model(generator, saved_model_dir)
        serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
        results["saved_model"] = images_per_s(lambda: sync(serve(images=x_tensor)), batch)
        if tflite:
            path = os.path.join(tmp, "float32.tflite")
            convert_tflite(generator, path, "float32", size)
            runner = TFLiteRunner(path, num_threads=cpu_info()["cores"])
            results["tflite_float32"] = images_per_s(lambda: runner(x[:1]), 1)
    return results


def bench_inference_precisions(generator, inputs, generator_gflop, reps=5):
    """Keras generator inference in float32 and in bfloat16 on the bench input.

    Each precision runs a ``kgan.serving.precision.with_precision`` copy of ``generator`` (bf16: the
    path of ``kgan.translate --precision=bfloat16``; float32: also for a generator trained
    under mixed_bfloat16) in a ``tf.function``, the median of ``reps`` calls counting.

    Args:
        generator: a kgan generator.
        inputs: one batch of G's input, float32 in [-1, 1] (the recipe's own).
        generator_gflop: G's forward GFLOP at that batch.
        reps: timed calls.

    Returns:
        ``inference_{fp32,bf16}_images_per_s`` and ``_gflops``, and the bf16 output's
        difference from float32 in uint8 levels (``inference_bf16_vs_fp32_mean_uint8``,
        ``_max_uint8``).
    """
    x = tf.convert_to_tensor(inputs, tf.float32)
    batch = int(x.shape[0])
    result, outputs = {}, {}
    for precision, tag in (("float32", "fp32"), ("bfloat16", "bf16")):
        model = with_precision(generator, precision)
        fn = tf.function(lambda images, model=model: model(images, training=False))
        outputs[tag] = np.asarray(to_uint8(sync(fn(x))), np.int32)
        times = []
        for _ in range(reps):
            start = time.perf_counter()
            sync(fn(x))
            times.append(time.perf_counter() - start)
        ips = batch / statistics.median(times)
        result[f"inference_{tag}_images_per_s"] = ips
        result[f"inference_{tag}_gflops"] = ips * generator_gflop / batch
    difference = np.abs(outputs["bf16"] - outputs["fp32"])
    result["inference_bf16_vs_fp32_mean_uint8"] = float(difference.mean())
    result["inference_bf16_vs_fp32_max_uint8"] = float(difference.max())
    return result


def parse_overrides(text, config, options):
    """Parses ``--compare`` text such as ``mixed_precision=mixed_bfloat16,jit_compile=true``
    into overrides of the training config and the bench options.

    Returns:
        ``(config overrides, options overrides)`` dicts.
    """
    fields = {f.name: f for f in dataclasses.fields(config)}
    bench_fields = {f.name: f for f in dataclasses.fields(options)}
    config_changes, option_changes = {}, {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or (key not in fields and key not in bench_fields):
            raise UsageError(f"--compare takes FLAG=VALUE pairs of kgan.train/kgan.bench flags "
                             f"(e.g. mixed_precision=mixed_bfloat16); got {item!r}.")
        target, current = ((config_changes, getattr(config, key)) if key in fields
                           else (option_changes, getattr(options, key)))
        target[key] = _parse_value(key, value, current)
    return config_changes, option_changes


def _parse_value(key, text, current):
    if isinstance(current, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise UsageError(f"--compare: {key} takes true or false, got {text!r}.")
    if isinstance(current, int):
        return int(text)
    if isinstance(current, float):
        return float(text)
    return text


def run_config(config, options):
    """Runs the whole benchmark of one config under its mixed-precision policy.

    Returns:
        The config's result dict (JSON-serialisable).
    """
    if config.model not in MODELS:
        raise UsageError(f"kgan.bench benchmarks --model={'|'.join(MODELS)}; got "
                         f"{config.model!r}.")
    previous = keras.mixed_precision.global_policy().name
    try:
        # The peak counter is reset per config; memory an earlier config left allocated
        # still counts, so rss_before_gib is reported beside the peak.
        gc.collect()
        rss_before = current_rss_gib()
        reset_peak_rss()
        result = bench_step(config, options)
        result["rss_before_gib"] = rss_before
        generator = result.pop("generator")
        inputs = result.pop("inputs")
        result["peak_rss_gib"] = peak_rss_gib()
        if options.pipeline:
            # Examples per second ((A, B) or (input, target)), and how many times the step's
            # consumption that is.
            result["input_images_per_s"] = bench_input_pipeline(config)
            if result["input_images_per_s"] is not None:
                result["input_over_step_consumption"] = (result["input_images_per_s"]
                                                         / result["images_per_s"])
        if options.inference:
            # TFLite has no bfloat16/float16-activation kernels for these graphs: it is
            # timed on float32 configs only.
            tflite = options.tflite and config.mixed_precision == "float32"
            result["inference_images_per_s"] = bench_inference(generator, config.crop_size,
                                                               tflite=tflite)
            result["inference_gflops_saved_model"] = (
                result["inference_images_per_s"]["saved_model"]
                * result["generator_forward_gflop"] / config.batch_size)
            result.update(bench_inference_precisions(generator, inputs,
                                                     result["generator_forward_gflop"]))
    finally:
        keras.mixed_precision.set_global_policy(previous)
        keras.backend.clear_session()
    return {"config": {**dataclasses.asdict(config), **dataclasses.asdict(options)}, **result}


def benchmark(config, options, compare=None, peak_size=2048, peak_reps=20, peaks=True):
    """Measures peaks, one config (and a second one when ``compare`` is given), peaks again.

    Args:
        config: a ``TrainConfig``.
        options: a ``BenchOptions``.
        compare: ``(config overrides, options overrides)`` giving the second config, or None.
        peak_size, peak_reps: matmul peak size and repetitions.
        peaks: measure the peaks (off only to save time in tests).

    Returns:
        The JSON-serialisable result dict.
    """
    report = {"machine": {**cpu_info(), "load_average": list(os.getloadavg()),
                          "tensorflow": tf.__version__, "keras": keras.__version__,
                          "python": sys.version.split()[0]}}
    # Peaks are measured before and after the configs and the best of both is kept, so that
    # a busy moment on a shared machine does not deflate them.
    before = measure_peaks(peak_size, peak_reps) if peaks else None
    runs = [(config, options)]
    if compare:
        runs.append((dataclasses.replace(config, **compare[0]),
                     dataclasses.replace(options, **compare[1])))
    results = [run_config(*item) for item in runs]
    report["peaks"] = best_peaks(before, measure_peaks(peak_size, peak_reps)) if peaks else None
    report["configs"] = [
        add_inference_peak_ratios(add_peak_ratios(
            result, report["peaks"], "bfloat16" in result["config"]["mixed_precision"]),
            report["peaks"])
        for result in results]
    if compare:
        first, second = report["configs"]
        report["comparison"] = {
            "overrides": {**compare[0], **compare[1]},
            "step_speedup": first["step_median_s"] / second["step_median_s"],
            "first_step_ratio": second["first_step_s"] / first["first_step_s"],
        }
        if report["peaks"]:
            report["comparison"]["conv_peak_bf16_over_fp32"] = report["peaks"][
                "conv_bf16_over_fp32"]
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report
