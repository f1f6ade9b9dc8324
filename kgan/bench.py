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

FLOP counting (the convention of DESIGN.md's yardsticks):

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

CLI::

    python -m kgan.bench --crop_size=256 --steps=5 --warmup=2 \
        --compare=mixed_precision=mixed_bfloat16 --output_json=bench.json
"""

import gc
import json
import os
import statistics
import sys
import tempfile
import time

import numpy as np
import tensorflow as tf

import keras

from kgan.measure import (cpu_info, current_rss_gib, cyclegan_step_flops, peak_rss_gib,
                          reset_peak_rss, time_steps)

MODELS = ("cycle_gan",)


# ----------------------------------------------------------------------------- machine


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


# ----------------------------------------------------------------------------- FLOPs


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


# ----------------------------------------------------------------------------- timing


def _sync(result):
    """Forces results to the host so that the step has finished."""
    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()
    return result


def _get_strategy(name):
    if name in (None, "", "default"):
        return tf.distribute.get_strategy()
    try:
        from kgan.distribute import get_strategy
    except ImportError as error:
        raise ValueError(f"--distribution={name} needs kgan.distribute, which is not "
                         f"importable here ({error}).") from error
    return get_strategy(name)


def bench_cyclegan_step(config):
    """Builds a CycleGAN trainer for ``config`` and times its training step on random data.

    Args:
        config: a dict of the CLI's config flags (see ``DEFAULT_CONFIG``).

    Returns:
        A dict of step timings, FLOP counts and the trainer (under ``"trainer"``).
    """
    from kgan.trainers.cyclegan import build_cyclegan

    strategy = _get_strategy(config["distribution"])
    size, batch = config["crop_size"], config["batch_size"]
    with strategy.scope():
        trainer = build_cyclegan(
            generator=config["generator"], discriminator=config["discriminator"],
            ngf=config["ngf"], ndf=config["ndf"], n_layers_d=config["n_layers_d"],
            norm=config["norm"], lambda_identity=config["lambda_identity"],
            crop_size=size, jit_compile=config["jit_compile"])
    rng = np.random.default_rng(0)
    global_batch = batch * strategy.num_replicas_in_sync
    data = tuple(tf.constant(rng.uniform(-1, 1, (global_batch, size, size, 3)), tf.float32)
                 for _ in range(2))

    if strategy.num_replicas_in_sync > 1:
        dataset = strategy.experimental_distribute_dataset(
            tf.data.Dataset.from_tensors(data).repeat())
        iterator = iter(dataset)

        @tf.function(jit_compile=False)
        def distributed_step(batch_data):
            return strategy.run(trainer.train_step, args=(batch_data,))

        step = lambda: _sync(distributed_step(next(iterator)))
    else:
        compiled = tf.function(trainer.train_step, jit_compile=bool(config["jit_compile"]),
                               reduce_retracing=True)
        step = lambda: _sync(compiled(data))
    probe = None
    if config.get("probe", True):
        bf16 = "bfloat16" in config["mixed_precision"]
        probe = matmul_probe("bfloat16" if bf16 else "float32", config.get("probe_size", 2048))
    timings = time_steps(step, config["steps"], config["warmup"], probe)
    if probe is not None:
        timings["probe_matmul_gflops"] = timings.pop("probe_values")
        timings["concurrent_matmul_peak_gflops"] = statistics.median(
            timings["probe_matmul_gflops"])

    shape = (global_batch, size, size, 3)
    g = forward_flops(trainer.generator_ab, shape)
    d = forward_flops(trainer.discriminator_a, shape)
    step_flops = cyclegan_step_flops(g, d, identity=config["lambda_identity"] > 0)
    if "concurrent_matmul_peak_gflops" in timings:
        timings["ratio_to_concurrent_matmul_peak"] = (
            step_flops / timings["step_median_s"] / 1e9
            / timings["concurrent_matmul_peak_gflops"])
    timings.update({"generator_forward_gflop": g / 1e9, "discriminator_forward_gflop": d / 1e9,
                    "step_gflop": step_flops / 1e9,
                    "achieved_gflops": step_flops / timings["step_median_s"] / 1e9,
                    "images_per_s": global_batch / timings["step_median_s"],
                    "trainer": trainer})
    return timings


def bench_input_pipeline(config, batches=30):
    """Images/s of the unpaired input pipeline on its own (built-in samples at the config's
    crop size), or None when ``kgan.data`` does not provide it."""
    try:
        from kgan.data import measure_throughput, unpaired_dataset
    except ImportError:
        return None
    options = {"load_size": config["load_size"]} if config["load_size"] else {}
    dataset, _ = unpaired_dataset(crop_size=config["crop_size"], batch_size=config["batch_size"],
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
    from kgan.export import TFLiteRunner, convert_tflite, export_saved_model

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
    results = {"keras": images_per_s(lambda: _sync(keras_fn(x_tensor)), batch)}
    with tempfile.TemporaryDirectory() as tmp:
        saved_model_dir = os.path.join(tmp, "saved_model")
        export_saved_model(generator, saved_model_dir)
        serve = tf.saved_model.load(saved_model_dir).signatures["serving_default"]
        results["saved_model"] = images_per_s(lambda: _sync(serve(images=x_tensor)), batch)
        if tflite:
            path = os.path.join(tmp, "float32.tflite")
            convert_tflite(generator, path, "float32", size)
            runner = TFLiteRunner(path, num_threads=cpu_info()["cores"])
            results["tflite_float32"] = images_per_s(lambda: runner(x[:1]), 1)
    return results


# ----------------------------------------------------------------------------- configs

DEFAULT_CONFIG = {
    "model": "cycle_gan", "generator": "resnet_9blocks", "discriminator": "basic",
    "n_layers_d": 3, "ngf": 64, "ndf": 64, "norm": "instance", "lambda_identity": 0.5,
    "crop_size": 256, "load_size": 0, "batch_size": 1, "mixed_precision": "float32",
    "jit_compile": False, "distribution": "default", "steps": 5, "warmup": 2,
    "inference": True, "tflite": True, "pipeline": True, "probe": True,
}


def _parse_value(key, text):
    default = DEFAULT_CONFIG[key]
    if isinstance(default, bool):
        if text.lower() in ("1", "true", "yes"):
            return True
        if text.lower() in ("0", "false", "no"):
            return False
        raise ValueError(f"--compare: {key} takes true or false, got {text!r}.")
    if isinstance(default, int):
        return int(text)
    if isinstance(default, float):
        return float(text)
    return text


def parse_overrides(text):
    """Parses ``--compare`` text such as ``mixed_precision=mixed_bfloat16,jit_compile=true``.

    Returns:
        A dict of config overrides.
    """
    overrides = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULT_CONFIG:
            raise ValueError(f"--compare takes FLAG=VALUE pairs of config flags "
                             f"({', '.join(sorted(DEFAULT_CONFIG))}); got {item!r}.")
        overrides[key] = _parse_value(key, value)
    return overrides


def run_config(config):
    """Runs the whole benchmark of one config under its mixed-precision policy.

    Args:
        config: the config dict.

    Returns:
        The config's result dict (JSON-serialisable).
    """
    if config["model"] not in MODELS:
        raise ValueError(f"kgan.bench benchmarks --model={' or '.join(MODELS)}; got "
                         f"{config['model']!r}.")
    previous = keras.mixed_precision.global_policy().name
    keras.mixed_precision.set_global_policy(config["mixed_precision"])
    try:
        # The peak counter is reset per config; memory an earlier config left allocated
        # still counts, so rss_before_gib is reported beside the peak.
        gc.collect()
        rss_before = current_rss_gib()
        reset_peak_rss()
        result = bench_cyclegan_step(config)
        result["rss_before_gib"] = rss_before
        trainer = result.pop("trainer")
        result["peak_rss_gib"] = peak_rss_gib()
        if config["pipeline"]:
            # (A, B) examples per second, and how many times the step's consumption that is.
            result["input_images_per_s"] = bench_input_pipeline(config)
            if result["input_images_per_s"] is not None:
                result["input_over_step_consumption"] = (result["input_images_per_s"]
                                                         / result["images_per_s"])
        if config["inference"]:
            # TFLite has no bfloat16/float16-activation kernels for these graphs: it is
            # timed on float32 configs only.
            tflite = config["tflite"] and config["mixed_precision"] == "float32"
            result["inference_images_per_s"] = bench_inference(
                trainer.generator_ab, config["crop_size"], tflite=tflite)
            result["inference_gflops_saved_model"] = (
                result["inference_images_per_s"]["saved_model"]
                * result["generator_forward_gflop"] / config["batch_size"])
    finally:
        keras.mixed_precision.set_global_policy(previous)
        keras.backend.clear_session()
    return {"config": dict(config), **result}


def add_peak_ratios(result, peaks):
    """Adds the ratios of a config's result to the measured peaks (no-op without peaks).

    The step and inference ratios use the matmul peak of the config's precision (bf16 for
    mixed_bfloat16); ``ratio_to_fp32_matmul_peak`` always uses the fp32 one.
    """
    result = dict(result)
    if peaks:
        bf16 = "bfloat16" in result["config"]["mixed_precision"]
        peak = peaks["matmul_bf16_gflops" if bf16 else "matmul_fp32_gflops"]
        result["ratio_to_matmul_peak"] = result["achieved_gflops"] / peak
        # Best step against the best-of peak: like with like on a noisy shared machine.
        result["best_step_ratio_to_matmul_peak"] = (
            result["step_gflop"] / result["step_min_s"] / peak)
        result["ratio_to_fp32_matmul_peak"] = (result["achieved_gflops"]
                                               / peaks["matmul_fp32_gflops"])
        if "inference_gflops_saved_model" in result:
            result["inference_saved_model_ratio_to_peak"] = (
                result["inference_gflops_saved_model"] / peak)
    return result


def benchmark(config, compare=None, peak_size=2048, peak_reps=20, peaks=True):
    """Measures peaks, one config (and a second one when ``compare`` is given), peaks again.

    Args:
        config: the config dict (``DEFAULT_CONFIG`` keys).
        compare: overrides giving the second config, or None.
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
    configs = [config] + ([{**config, **compare}] if compare else [])
    results = [run_config(item) for item in configs]
    if peaks:
        after = measure_peaks(peak_size, peak_reps)
        report["peaks"] = {key: max(before[key], after[key]) for key in before
                           if key.endswith("_gflops")}
        for tag in ("matmul", "conv"):
            report["peaks"][f"{tag}_bf16_over_fp32"] = (report["peaks"][f"{tag}_bf16_gflops"]
                                                        / report["peaks"][f"{tag}_fp32_gflops"])
    else:
        report["peaks"] = None
    report["configs"] = [add_peak_ratios(result, report["peaks"]) for result in results]
    if compare:
        first, second = report["configs"]
        report["comparison"] = {
            "overrides": compare,
            "step_speedup": first["step_median_s"] / second["step_median_s"],
            "first_step_ratio": second["first_step_s"] / first["first_step_s"],
        }
        if report["peaks"]:
            report["comparison"]["conv_peak_bf16_over_fp32"] = report["peaks"][
                "conv_bf16_over_fp32"]
    report["machine"]["load_average_end"] = list(os.getloadavg())
    return report


# ----------------------------------------------------------------------------- table


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


# ----------------------------------------------------------------------------- CLI


def _define_flags():
    from absl import flags

    flags.DEFINE_enum("model", "cycle_gan", list(MODELS), "Trainer to benchmark.")
    flags.DEFINE_string("generator", "resnet_9blocks", "Generator name.")
    flags.DEFINE_string("discriminator", "basic", "Discriminator name.")
    flags.DEFINE_integer("n_layers_d", 3, "PatchGAN layers for --discriminator=n_layers.")
    flags.DEFINE_integer("ngf", 64, "Generator filters.")
    flags.DEFINE_integer("ndf", 64, "Discriminator filters.")
    flags.DEFINE_string("norm", "instance", "instance, batch or none.")
    flags.DEFINE_float("lambda_identity", 0.5, "Identity weight (0 skips the identity pass).")
    flags.DEFINE_integer("crop_size", 256, "Square training crop side.")
    flags.DEFINE_integer("load_size", 0, "Input pipeline load size (0: the pipeline default).")
    flags.DEFINE_integer("batch_size", 1, "Per-replica batch size.")
    flags.DEFINE_enum("mixed_precision", "float32", ["float32", "mixed_float16", "mixed_bfloat16"],
                      "Keras mixed-precision policy.")
    flags.DEFINE_boolean("jit_compile", False, "Compile the step with XLA.")
    flags.DEFINE_string("distribution", "default", "default, mirrored, ... (kgan.distribute).")
    flags.DEFINE_integer("steps", 5, "Timed steps.")
    flags.DEFINE_integer("warmup", 2, "Untimed steps first (the first step is reported).")
    flags.DEFINE_boolean("inference", True, "Time generator inference (Keras, SavedModel).")
    flags.DEFINE_boolean("tflite", True, "Also time a float32 TFLite generator (XNNPACK).")
    flags.DEFINE_boolean("pipeline", True, "Time the input pipeline on its own.")
    flags.DEFINE_boolean("probe", True, "Run a short matmul peak probe after each timed step "
                         "(untimed) and report the step against the median probe: a peak "
                         "measured under the same load as the steps.")
    flags.DEFINE_string("compare", "", "FLAG=VALUE[,FLAG=VALUE]: run a second config with "
                        "these changes, e.g. mixed_precision=mixed_bfloat16.")
    flags.DEFINE_integer("peak_size", 2048, "Matmul peak matrix side.")
    flags.DEFINE_integer("peak_reps", 20, "Timed calls per peak (the best counts).")
    flags.DEFINE_boolean("peaks", True, "Measure the machine peaks.")
    flags.DEFINE_string("output_json", "", "Write the report as JSON here.")
    return flags.FLAGS


def main(argv):
    from absl import app, logging

    logging.set_verbosity(logging.WARNING)
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    flags = FLAGS
    config = {key: getattr(flags, key) for key in DEFAULT_CONFIG}
    try:
        compare = parse_overrides(flags.compare) if flags.compare else None
        report = benchmark(config, compare, flags.peak_size, flags.peak_reps, flags.peaks)
    except ValueError as error:
        sys.exit(f"kgan.bench: {error}")
    print(format_report(report))
    if flags.output_json:
        directory = os.path.dirname(os.path.abspath(flags.output_json))
        os.makedirs(directory, exist_ok=True)
        with open(flags.output_json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {flags.output_json}")


if __name__ == "__main__":
    from absl import app

    FLAGS = _define_flags()
    app.run(main)
