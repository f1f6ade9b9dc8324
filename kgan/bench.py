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
- ``--compare=mixed_precision=mixed_bfloat16`` runs a second config (the first with those
  flags changed) in the same process and prints the step-rate ratio.

Every model is built by its recipe (kgan.recipes) from the same flags as ``kgan.train``
(``--batch_size`` is the global batch, as in training); one batch of the recipe's own input
pipeline is reused for every timed step. FLOPs are counted for cycle_gan and pix2pix steps;
restore (``--phase``: pretrain_g, pretrain_d or gan; nogan times gan) reports times without
FLOP ratios, since its GAN step alternates between critic and generator updates.

FLOP counting (kgan.peaks; the convention of the README's speed yardsticks):

- forward FLOPs come from the traced forward graph of each network: 2*K*K*Cin*Cout*Hout*Wout
  per convolution (``Conv2D``), transposed convolutions on their input grid
  (2*K*K*Cin*Cout*Hin*Win), 2*M*K*N per matmul; normalisation, padding, activations and
  biases are not counted. resnet_9blocks at 256^2 is 99.1 GFLOP, the basic D 6.29 GFLOP.
- a CycleGAN training step runs each generator forward three times (translation, cycle,
  identity: 6 G forwards, 4 without identity) and the discriminators forward 2 times in the
  generator update and 4 times in the discriminator update. A forward whose network is
  trained costs 3x its forward FLOPs (forward, input gradient, weight gradient); the
  generator update's D forwards cost 2x (the gradient flows through D to G, D's weights get
  none). So a step is 3*6*G + (2*2 + 4*3)*D = 1.88 TFLOP at 256^2 with the reference nets.

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

import numpy as np
import tensorflow as tf

import keras

from kgan import losses
from kgan.errors import UsageError
from kgan.measure import (add_peak_ratios, best_peaks, cpu_info, current_rss_gib,
                          cyclegan_step_flops, peak_rss_gib, pix2pix_step_flops,
                          reset_peak_rss, summarize_probe, time_steps)
from kgan.peaks import forward_flops, matmul_probe, measure_peaks, sync
from kgan.recipes import get_recipe, setup
from kgan.recipes import restore as restore_recipe

MODELS = ("cycle_gan", "pix2pix", "restore")


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


def _build_trainer(config, strategy):
    """(trainer, one global batch, step FLOPs or None, the generator) for a config."""
    if config.model == "restore":
        phase = "gan" if config.phase == "nogan" else config.phase
        dataset, info = restore_recipe.restoration_data(config, "train")
        content_loss, _ = losses.build_content_loss(config.content_loss, config.vgg_weights,
                                                    config.perceptual_preset)
        trainer, generator, _ = restore_recipe.build_phase(
            config, strategy, phase, content_loss, config.pretrain_g_steps,
            config.steps_per_epoch or info.steps_per_epoch, load_previous=False)
        return trainer, next(iter(dataset)), None, generator
    parts = get_recipe(config.model).build(config, strategy)
    batch = next(iter(parts.dataset))
    shape = tuple(int(d) for d in batch[0].shape)
    if config.model == "cycle_gan":
        trainer = parts.trainer
        g = forward_flops(trainer.generator_ab, shape)
        d = forward_flops(trainer.discriminator_a, shape)
        flops = cyclegan_step_flops(g, d, identity=config.lambda_identity > 0)
        return trainer, batch, (flops, g, d), trainer.generator_ab
    trainer = parts.trainer
    g = forward_flops(trainer.generator, shape)
    d = forward_flops(trainer.discriminator, shape[:3] + (6,))
    return trainer, batch, (pix2pix_step_flops(g, d), g, d), trainer.generator


def bench_step(config, options):
    """Builds ``config``'s trainer with its recipe and times its training step.

    Args:
        config: a ``TrainConfig``.
        options: a ``BenchOptions``.

    Returns:
        A dict of step timings and FLOP counts, plus the generator (under ``"generator"``).
    """
    strategy = setup(config)
    trainer, data, flops, generator = _build_trainer(config, strategy)
    if strategy.num_replicas_in_sync > 1:
        iterator = iter(strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(data).repeat()))

        @tf.function(jit_compile=False)
        def distributed_step(batch_data):
            return strategy.run(trainer.train_step, args=(batch_data,))

        step = lambda: sync(distributed_step(next(iterator)))  # noqa: E731
    else:
        compiled = tf.function(trainer.train_step, jit_compile=bool(config.jit_compile),
                               reduce_retracing=True)
        step = lambda: sync(compiled(data))  # noqa: E731
    probe = None
    if options.probe:
        bf16 = "bfloat16" in config.mixed_precision
        probe = matmul_probe("bfloat16" if bf16 else "float32", options.probe_size)
    timings = time_steps(step, options.steps, options.warmup, probe)
    batch = int(data[0].shape[0])
    timings["images_per_s"] = batch / timings["step_median_s"]
    if flops:
        step_flops, g, d = flops
        timings.update({"generator_forward_gflop": g / 1e9,
                        "discriminator_forward_gflop": d / 1e9,
                        "step_gflop": step_flops / 1e9,
                        "achieved_gflops": step_flops / timings["step_median_s"] / 1e9})
    else:
        timings.update({"generator_forward_gflop": forward_flops(
            generator, (batch,) + tuple(int(x) for x in data[0].shape[1:])) / 1e9,
            "step_gflop": None, "achieved_gflops": None})
    summarize_probe(timings)
    timings["generator"] = generator
    return timings


def bench_input_pipeline(config, batches=30):
    """Images/s of the unpaired input pipeline on its own (built-in samples at the config's
    crop size), or None when ``kgan.data`` does not provide it."""
    try:
        from kgan.data import measure_throughput, unpaired_dataset
    except ImportError:
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
    from kgan.export import convert_tflite, export_saved_model
    from kgan.serving import TFLiteRunner

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
        result["peak_rss_gib"] = peak_rss_gib()
        if options.pipeline and config.model == "cycle_gan":
            # (A, B) examples per second, and how many times the step's consumption that is.
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
        add_peak_ratios(result, report["peaks"],
                        "bfloat16" in result["config"]["mixed_precision"])
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


def _fmt(value, digits=2):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def format_report(report):
    """Renders a benchmark report as a plain-text table."""
    machine = report["machine"]
    lines = [f"CPU: {machine['model']} ({machine['cores']} cores), features: "
             f"{', '.join(machine['features']) or 'none found'}; load "
             f"{', '.join(f'{x:.2f}' for x in machine['load_average'])}"]
    peaks = report.get("peaks")
    if peaks:
        lines.append(
            f"peaks GFLOP/s: matmul fp32 {peaks['matmul_fp32_gflops']:.0f}, bf16 "
            f"{peaks['matmul_bf16_gflops']:.0f} ({peaks['matmul_bf16_over_fp32']:.2f}x); conv3x3 "
            f"fp32 {peaks['conv_fp32_gflops']:.0f}, bf16 {peaks['conv_bf16_gflops']:.0f} "
            f"({peaks['conv_bf16_over_fp32']:.2f}x)")
    rows = [("", *(c["config"]["mixed_precision"] + (" xla" if c["config"]["jit_compile"]
                                                        else "")
                   for c in report["configs"]))]

    def row(label, fn):
        rows.append((label, *(_fmt(fn(c)) for c in report["configs"])))

    row("first step (s)", lambda c: c["first_step_s"])
    row("step median (s)", lambda c: c["step_median_s"])
    row("step p10 / p90 (s)", lambda c: f"{c['step_p10_s']:.2f} / {c['step_p90_s']:.2f}")
    row("step GFLOP", lambda c: c["step_gflop"])
    row("achieved GFLOP/s", lambda c: c["achieved_gflops"])
    row("% of matmul peak (same dtype)",
        lambda c: 100 * c["ratio_to_matmul_peak"] if "ratio_to_matmul_peak" in c else None)
    row("% of matmul peak, best step",
        lambda c: 100 * c["best_step_ratio_to_matmul_peak"]
        if "best_step_ratio_to_matmul_peak" in c else None)
    row("% of concurrent matmul peak",
        lambda c: 100 * c["ratio_to_concurrent_matmul_peak"]
        if "ratio_to_concurrent_matmul_peak" in c else None)
    row("concurrent matmul peak GFLOP/s", lambda c: c.get("concurrent_matmul_peak_gflops"))
    row("CPU utilisation (step)", lambda c: c.get("cpu_utilisation"))
    row("% of fp32 matmul peak",
        lambda c: 100 * c["ratio_to_fp32_matmul_peak"] if "ratio_to_fp32_matmul_peak" in c
        else None)
    row("peak RSS (GiB)", lambda c: c["peak_rss_gib"])
    row("RSS before config (GiB)", lambda c: c.get("rss_before_gib"))
    row("input pipeline img/s", lambda c: c.get("input_images_per_s"))
    row("input / step consumption (x)", lambda c: c.get("input_over_step_consumption"))
    for name in ("keras", "saved_model", "tflite_float32"):
        row(f"inference {name} img/s",
            lambda c, name=name: c.get("inference_images_per_s", {}).get(name))
    row("inference SavedModel % peak",
        lambda c: 100 * c["inference_saved_model_ratio_to_peak"]
        if "inference_saved_model_ratio_to_peak" in c else None)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    header = report["configs"][0]["config"]
    lines.append(f"config: {header['model']} {header['generator']} + {header['discriminator']} "
                 f"D, ngf {header['ngf']}, ndf {header['ndf']}, {header['crop_size']}^2, batch "
                 f"{header['batch_size']}, distribution {header['distribution']}, "
                 f"{header['steps']} steps after {header['warmup']} warm-up")
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
    if "comparison" in report:
        comparison = report["comparison"]
        text = f"step speed-up of the second config: {comparison['step_speedup']:.2f}x"
        if "conv_peak_bf16_over_fp32" in comparison:
            text += (f" (conv peak bf16/fp32 {comparison['conv_peak_bf16_over_fp32']:.2f}x; "
                     f"target >= {comparison['conv_peak_bf16_over_fp32'] / 2:.2f}x)")
        lines.append(text)
    return "\n".join(lines)


if __name__ == "__main__":
    from kgan.cli.bench import main

    main()
