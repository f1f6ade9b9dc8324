"""kgan.benchmarking.bench's plain-text table: the peaks line, one column per config (training step,
memory, input pipeline, inference in fp32 and bf16 beside the conv peak of that precision,
NoGAN phase FLOPs), the profile's op time by kind when one was taken, and the comparison
line.

Called by kgan.benchmarking.bench (``format_report``) and so by ``python -m kgan.bench``.
"""


def _fmt(value, digits=2):
    if value is None:
        return "n/a"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _percent(key):
    return lambda c: 100 * c[key] if c.get(key) is not None else None


def _config_label(config):
    label = config["mixed_precision"] + (" xla" if config["jit_compile"] else "")
    if config["model"] in ("restore", "colorize"):
        label += " " + ("gan" if config["phase"] == "nogan" else config["phase"])
    return label


def _step_rows(row):
    row("first step (s)", lambda c: c["first_step_s"])
    row("step median (s)", lambda c: c["step_median_s"])
    row("step p10 / p90 (s)", lambda c: f"{c['step_p10_s']:.2f} / {c['step_p90_s']:.2f}")
    row("updates per timed step", lambda c: c.get("updates_per_step", 1))
    row("step GFLOP", lambda c: c["step_gflop"])
    row("  G / D (critic) / VGG forward GFLOP",
        lambda c: " / ".join(_fmt(c.get(k)) for k in (
            "generator_forward_gflop", "discriminator_forward_gflop", "vgg_forward_gflop")))
    row("achieved GFLOP/s", lambda c: c["achieved_gflops"])
    row("% of matmul peak (same dtype)", _percent("ratio_to_matmul_peak"))
    row("% of conv peak (same dtype)", _percent("ratio_to_conv_peak"))
    row("% of matmul peak, best step", _percent("best_step_ratio_to_matmul_peak"))
    row("% of concurrent matmul peak", _percent("ratio_to_concurrent_matmul_peak"))
    row("concurrent matmul peak GFLOP/s", lambda c: c.get("concurrent_matmul_peak_gflops"))
    row("CPU utilisation (step)", lambda c: c.get("cpu_utilisation"))
    row("% of fp32 matmul peak", _percent("ratio_to_fp32_matmul_peak"))
    row("peak RSS (GiB)", lambda c: c["peak_rss_gib"])
    row("RSS before config (GiB)", lambda c: c.get("rss_before_gib"))
    row("input pipeline img/s", lambda c: c.get("input_images_per_s"))
    row("input / step consumption (x)", lambda c: c.get("input_over_step_consumption"))


def _inference_rows(row):
    for name in ("keras", "saved_model", "tflite_float32"):
        row(f"inference {name} img/s",
            lambda c, name=name: (c.get("inference_images_per_s") or {}).get(name))
    row("inference SavedModel % peak", _percent("inference_saved_model_ratio_to_peak"))
    for tag in ("fp32", "bf16"):
        row(f"inference {tag} img/s (Keras)", lambda c, t=tag: c.get(f"inference_{t}_images_per_s"))
        row(f"inference {tag} GFLOP/s", lambda c, t=tag: c.get(f"inference_{t}_gflops"))
        row(f"inference {tag} % of {tag} conv peak",
            _percent(f"inference_{tag}_ratio_to_conv_peak"))
    row("bf16 - fp32 output, uint8 mean / max",
        lambda c: None if c.get("inference_bf16_vs_fp32_mean_uint8") is None else
        f"{c['inference_bf16_vs_fp32_mean_uint8']:.3f} / "
        f"{c['inference_bf16_vs_fp32_max_uint8']:.0f}")


def _profile_lines(label, split):
    """``kgan.benchmarking.profiling.split_by_kind``'s dict as two lines and the top op types."""
    kinds = sorted(split["kinds"].items(), key=lambda item: -item[1]["ms"])
    lines = [f"profile {label}: op time {split['op_ms_per_step']:.0f} ms/step (wall span "
             f"{split['wall_ms_per_step']:.0f} ms/step)",
             "  by kind: " + ", ".join(f"{kind} {100 * v['share']:.1f}%" for kind, v in kinds
                                       if v["ms"] > 0)]
    lines += [f"  {op_type:36s} {ms:9.1f} ms {calls:6.0f} calls {100 * share:5.1f}%"
              for op_type, ms, calls, share in split["top_types"]]
    return lines


def format_report(report):
    """Renders a benchmark report (``kgan.benchmarking.bench.benchmark``'s dict) as a plain-text table."""
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
    rows = [("", *(_config_label(c["config"]) for c in report["configs"]))]

    def row(label, fn):
        rows.append((label, *(_fmt(fn(c)) for c in report["configs"])))

    _step_rows(row)
    _inference_rows(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    header = report["configs"][0]["config"]
    lines.append(f"config: {header['model']} {header['generator']} + {header['discriminator']} "
                 f"D, ngf {header['ngf']}, ndf {header['ndf']}, {header['crop_size']}^2, batch "
                 f"{header['batch_size']}, distribution {header['distribution']}, "
                 f"{header['steps']} steps after {header['warmup']} warm-up")
    if header["model"] in ("restore", "colorize"):
        lines.append(f"content loss: {report['configs'][0].get('content_loss', 'n/a')}; "
                     f"critic nf {header['critic_nf']}")
    for r in rows:
        lines.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths)))
    for config in report["configs"]:
        if config.get("profile"):
            lines += _profile_lines(_config_label(config["config"]), config["profile"])
    if "comparison" in report:
        comparison = report["comparison"]
        text = f"step speed-up of the second config: {comparison['step_speedup']:.2f}x"
        if "conv_peak_bf16_over_fp32" in comparison:
            text += (f" (conv peak bf16/fp32 {comparison['conv_peak_bf16_over_fp32']:.2f}x; "
                     f"target >= {comparison['conv_peak_bf16_over_fp32'] / 2:.2f}x)")
        lines.append(text)
    return "\n".join(lines)
