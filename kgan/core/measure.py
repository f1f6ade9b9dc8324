"""Measurements that need no TensorFlow: the CPU, step timing, process memory, and the FLOP
count of a CycleGAN step.

``kgan.benchmarking.bench`` builds on these; so do the peer benchmarks in ``benchmarks/``, including
the PyTorch one, which runs where TensorFlow is not installed (``kgan/__init__`` imports nothing
heavy).
"""

import os
import platform
import resource
import statistics
import time

import numpy as np

CPU_FEATURES = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def cpu_info():
    """The CPU model, usable cores and the bf16/AVX-512/AMX features of /proc/cpuinfo.

    Returns:
        A dict with ``model``, ``cores`` and ``features`` (the ``CPU_FEATURES`` present).
    """
    model, flags = platform.processor() or "unknown", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {"model": model, "cores": cores,
            "features": [name for name in CPU_FEATURES if name in flags]}


def reset_peak_rss():
    """Resets the kernel's peak-RSS counter (VmHWM) so a config's own peak can be read."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _status_gib(field):
    """A memory field of /proc/self/status (e.g. ``VmRSS``) in GiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 2 ** 20
    except OSError:
        pass
    return None


def current_rss_gib():
    """Current resident memory of this process in GiB (VmRSS), or None off Linux."""
    return _status_gib("VmRSS")


def peak_rss_gib():
    """Peak resident memory of this process in GiB (VmHWM, else ``getrusage``)."""
    peak = _status_gib("VmHWM")
    if peak is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20
    return peak


def cyclegan_step_flops(generator_flops, discriminator_flops, identity=True):
    """FLOPs of one CycleGAN training step from one G and one D forward (see module doc).

    Args:
        generator_flops, discriminator_flops: forward FLOPs of one network at the batch.
        identity: whether the identity loss runs (``lambda_identity > 0``).

    Returns:
        ``3 * g_forwards * G + (2 * 2 + 4 * 3) * D`` with 6 (or 4) generator forwards.
    """
    g_forwards = 6 if identity else 4
    return 3 * g_forwards * generator_flops + (2 * 2 + 4 * 3) * discriminator_flops


def _percentile(values, q):
    return float(np.percentile(np.asarray(values), q))


def time_steps(step, steps, warmup, probe=None):
    """Times ``step()`` calls: the first one, ``warmup - 1`` more untimed, then ``steps``.

    Args:
        step: a function running one step and returning once it is done.
        steps: timed steps (at least 1).
        warmup: steps before timing, the first one included (at least 1).
        probe: optional function run after each timed step (untimed), e.g.
            ``matmul_probe()``; its return values are kept under ``probe_values``.

    Returns:
        A dict with ``first_step_s``, ``step_median_s``, ``step_min_s``, ``step_p10_s``,
        ``step_p90_s``, ``step_times_s``, ``step_cpu_s`` (process CPU seconds per step) and
        ``cpu_utilisation`` (median CPU seconds / (wall seconds * usable cores): near 1 when
        the step had the machine to itself), plus ``probe_values`` with a probe.
    """
    if steps < 1 or warmup < 1:
        raise ValueError(f"--steps and --warmup must be >= 1, got {steps} and {warmup}.")
    start = time.perf_counter()
    step()
    first = time.perf_counter() - start
    for _ in range(warmup - 1):
        step()
    times, cpu, probes = [], [], []
    for _ in range(steps):
        cpu_start, start = time.process_time(), time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
        cpu.append(time.process_time() - cpu_start)
        if probe is not None:
            probes.append(probe())
    cores = cpu_info()["cores"]
    result = {"first_step_s": first, "step_median_s": statistics.median(times),
              "step_min_s": min(times),
              "step_p10_s": _percentile(times, 10), "step_p90_s": _percentile(times, 90),
              "step_times_s": times, "step_cpu_s": cpu,
              "cpu_utilisation": statistics.median(c / (t * cores) for c, t in zip(cpu, times))}
    if probe is not None:
        result["probe_values"] = probes
    return result


def pix2pix_step_flops(generator_flops, discriminator_flops):
    """FLOPs of one pix2pix training step (the reference's update order).

    The discriminator update runs D on (A, real B) and (A, G(A)) as trained forwards (3x each);
    the generator update runs G trained (3x) and D once with the gradient flowing through it to
    G but not to D's weights (2x): ``3*G + 8*D``.
    """
    return 3 * generator_flops + 8 * discriminator_flops


def summarize_probe(result):
    """Turns a step result's ``probe_values`` (the matmul probe after each timed step) into
    ``probe_matmul_gflops``, their median ``concurrent_matmul_peak_gflops`` and the step's
    ``ratio_to_concurrent_matmul_peak`` (needs ``achieved_gflops``). No-op without probes."""
    if "probe_values" not in result:
        return result
    result["probe_matmul_gflops"] = result.pop("probe_values")
    result["concurrent_matmul_peak_gflops"] = statistics.median(result["probe_matmul_gflops"])
    if result.get("achieved_gflops") is not None:
        result["ratio_to_concurrent_matmul_peak"] = (result["achieved_gflops"]
                                                     / result["concurrent_matmul_peak_gflops"])
    return result


def best_peaks(before, after):
    """The best of two peak measurements (``*_gflops`` keys), with bf16/fp32 ratios."""
    peaks = {key: max(before[key], after[key]) for key in before if key.endswith("_gflops")}
    for tag in ("matmul", "conv"):
        if f"{tag}_bf16_gflops" in peaks and f"{tag}_fp32_gflops" in peaks:
            peaks[f"{tag}_bf16_over_fp32"] = (peaks[f"{tag}_bf16_gflops"]
                                              / peaks[f"{tag}_fp32_gflops"])
    return peaks


def add_peak_ratios(result, peaks, bf16):
    """Adds a step result's ratios to the machine peaks (kgan.benchmarking.bench and the peer
    benchmarks use this one definition). No-op when ``peaks`` is empty.

    The step and inference ratios use the peak of the step's precision (bf16 for
    mixed_bfloat16) — matmul, and the 3x3 conv peak — and ``ratio_to_fp32_matmul_peak``
    always the fp32 one.

    Args:
        result: the step result dict (``achieved_gflops``; optionally ``step_gflop`` and
            ``step_min_s``, ``inference_gflops_saved_model``).
        peaks: the peak dict (``matmul_fp32_gflops``, ``conv_bf16_gflops``, ...).
        bf16: whether the step ran in bfloat16.

    Returns:
        ``result`` with the ratios added.
    """
    if not peaks or result.get("achieved_gflops") is None:
        return result
    tag = "bf16" if bf16 else "fp32"
    peak = peaks[f"matmul_{tag}_gflops"]
    result["ratio_to_matmul_peak"] = result["achieved_gflops"] / peak
    if f"conv_{tag}_gflops" in peaks:
        result["ratio_to_conv_peak"] = result["achieved_gflops"] / peaks[f"conv_{tag}_gflops"]
    if "step_gflop" in result and "step_min_s" in result:
        # Best step against the best-of peak: like with like on a noisy shared machine.
        result["best_step_ratio_to_matmul_peak"] = (
            result["step_gflop"] / result["step_min_s"] / peak)
    result["ratio_to_fp32_matmul_peak"] = result["achieved_gflops"] / peaks["matmul_fp32_gflops"]
    if "inference_gflops_saved_model" in result:
        result["inference_saved_model_ratio_to_peak"] = (
            result["inference_gflops_saved_model"] / peak)
    return result


def nogan_step_flops(phase, generator_flops, critic_flops=0, vgg_flops=0):
    """FLOPs of one NoGAN (restore / colorize) update of ``phase`` (kgan.training.trainers.pretrain,
    critic, nogan), with the convention of ``cyclegan_step_flops``: a trained network's
    forward costs 3x, a forward only differentiated through 2x, a forward without gradient 1x.

    - ``pretrain_g``: G trained (3G); the perceptual loss runs the frozen VGG16 on the
      generated image (gradient through it to G: 2V) and on the target (no gradient: 1V).
    - ``pretrain_d``: G without gradient (1G); the critic trained on the real and on the
      generated image (2 x 3C).
    - ``gan``: a generator update is 3G + 2C (critic differentiated through) + 3V; a critic
      update is 1G + 6C, as ``pretrain_d``.

    Args:
        phase: ``pretrain_g``, ``pretrain_d``, ``gan_generator`` or ``gan_critic``.
        generator_flops, critic_flops: forward FLOPs of G and of the critic at the batch.
        vgg_flops: forward FLOPs of the perceptual loss's VGG16 feature network on one batch
            of images (0 for a pixel content loss).

    Returns:
        The update's FLOPs.
    """
    g, c, v = generator_flops, critic_flops, vgg_flops
    counts = {"pretrain_g": 3 * g + 3 * v, "pretrain_d": g + 6 * c,
              "gan_generator": 3 * g + 2 * c + 3 * v, "gan_critic": g + 6 * c}
    if phase not in counts:
        raise ValueError(f"Unknown NoGAN update {phase!r}; use one of {', '.join(counts)}.")
    return counts[phase]


def add_inference_peak_ratios(result, peaks):
    """Adds ``inference_{fp32,bf16}_ratio_to_conv_peak``: inference GFLOP/s
    (``inference_{tag}_gflops``) over the 3x3 conv peak of the same precision. No-op without
    peaks."""
    for tag in ("fp32", "bf16"):
        gflops = result.get(f"inference_{tag}_gflops")
        if peaks and gflops is not None and f"conv_{tag}_gflops" in peaks:
            result[f"inference_{tag}_ratio_to_conv_peak"] = gflops / peaks[f"conv_{tag}_gflops"]
    return result
