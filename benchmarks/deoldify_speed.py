"""DeOldify's networks in PyTorch against kgan's, on the same machine, in alternating processes.

Issue 23's speed check: for ``stable`` (``video`` runs Stable's network) and ``artistic``, each
configuration runs in its own process, in rounds A/B/A/B (the order reversed every other
round), so that a noisy shared machine is seen alike by all of them:

- ``torch``: DeOldify's network rebuilt in PyTorch with DeOldify's exact module tree
  (``tests/fixtures/deoldify_reference.py``; spectral norm computed at each forward, as
  DeOldify's eval mode does), ``torch.set_num_threads(--threads)``, ``eval()``,
  ``torch.inference_mode()``, float32 and ``torch.autocast("cpu", dtype=torch.bfloat16)``.
  No TensorFlow in that process (kgan.core.measure is loaded from its file).
- ``kgan``: the same weights converted by ``python -m kgan.convert`` into ``generator.keras``,
  loaded with ``kgan.serving.loading.load_model(path, precision=...)`` -- what
  ``python -m kgan.colorize --precision=float32|bfloat16`` runs -- timed through the
  translator's ``translate_float`` (the call DeOldify's pipeline makes on the render square).
  The same process then times the whole photo path (``kgan.colorization.colorizer.Colorizer``,
  DeOldify's pipeline, render factor 35, a gray sample photo) and the video path
  (``kgan.video.pipeline.process_video`` with the temporal stabiliser, render factor 21, a
  synthetic 854x480 clip written with kgan.video.ffmpeg), each after one warm-up call.

Per process: the first forward (trace and first call) and ``--repeats`` timed forwards at each
render size (16 x render factor: 560^2 and 336^2), the median and the best; peak RSS (VmHWM,
reset once the model is loaded, so load-time transients are left out and the resident weights
are in) and the RSS after loading; the 3x3 conv peaks of that framework in fp32 and bf16
(kgan: ``kgan.benchmarking.peaks.measure_peaks``, best of before and after the forwards;
torch: the same 256-channel 64^2 conv in torch). Forward FLOPs are counted from the Keras model's
traced graph (``kgan.benchmarking.peaks.forward_flops``: Conv2D 2*K^2*Cin*Cout per output
position, the self-attention's two batched matmuls 2*M*K*N; pooling, resize, norms and
elementwise ops count 0); the PyTorch network is the same network, so it gets the same count.

Weights are random (the published files cannot be downloaded here; random weights time the
same): ``prepare`` builds the PyTorch network with seed 0, saves its state dict and converts it
with ``kgan.convert --noexport``; the PyTorch workers rebuild it with seed 0 (the same weights,
no load transient).

Run (minutes: full-size Stable is ~1.4 TFLOP per 560^2 forward)::

    .venv/bin/python benchmarks/deoldify_speed.py --rounds=3 --output_json=/tmp/deoldify.json
    .venv/bin/python benchmarks/deoldify_speed.py --quick        # tiny networks, seconds

A measurement tool (docs/speed.md holds its table), not part of the package; its test is
tests/benchmarking/test_deoldify_speed.py, which runs ``--quick``.
"""

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMPLS = ("torch", "kgan")
PRECISIONS = ("float32", "bfloat16")
VARIANTS = ("stable", "artistic")
FULL = {"width": 64, "blocks": None, "wide_nf": None, "photo_rf": 35, "video_rf": 21,
        "clip": (854, 480, 6), "peak_size": 2048, "peak_reps": 10, "repeats": 2, "rounds": 3}
QUICK = {"width": 8, "blocks": (1, 1, 1, 1), "wide_nf": 64, "photo_rf": 4, "video_rf": 3,
         "clip": (96, 64, 3), "peak_size": 256, "peak_reps": 2, "repeats": 2, "rounds": 1}


def _load_file(name, path):
    """Imports a module from its file without importing its package (kgan/__init__ would
    import TensorFlow into the PyTorch process)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _measure():
    return _load_file("kgan_measure", os.path.join(ROOT, "kgan", "core", "measure.py"))


def _timed(fn, repeats, delay_s=0.0):
    """First call, then ``repeats`` timed calls: {first_s, times_s, median_s, best_s}."""
    start = time.perf_counter()
    fn()
    first = time.perf_counter() - start
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        if delay_s:
            time.sleep(delay_s)
        times.append(time.perf_counter() - start)
    return {"first_s": first, "times_s": times, "median_s": statistics.median(times),
            "best_s": min(times)}


def _sizes(args):
    return sorted({16 * args.photo_rf, 16 * args.video_rf}, reverse=True)


# ----------------------------------------------------------------------------- PyTorch side


def _torch_network(args, variant):
    import torch

    reference = _load_file("deoldify_reference",
                           os.path.join(ROOT, "tests", "fixtures", "deoldify_reference.py"))
    torch.manual_seed(0)
    kwargs = {"width": args.width}
    if args.blocks:
        kwargs["blocks"] = tuple(args.blocks)
    if variant == "artistic":
        return reference.artistic(**kwargs).eval()
    return reference.stable(wide_nf=args.wide_nf, **kwargs).eval()


def _torch_peaks(reps):
    peak = _load_file("torch_conv_peak", os.path.join(ROOT, "benchmarks", "torch_conv_peak.py"))
    return peak.conv_peaks(reps)


def run_torch(args):
    """One PyTorch process: DeOldify's network forward at each render size."""
    import torch

    measure = _measure()
    torch.set_num_threads(args.threads)
    net = _torch_network(args, args.variant)
    bf16 = args.precision == "bfloat16"
    record = {"rss_after_load_gib": measure.current_rss_gib(), "torch": torch.__version__,
              "threads": torch.get_num_threads(),
              "params": sum(p.numel() for p in net.parameters())}
    measure.reset_peak_rss()
    before = _torch_peaks(args.peak_reps)
    record["forward"] = {}
    for size in _sizes(args):
        x = torch.rand(1, 3, size, size) * 4 - 2  # ImageNet-normalised range

        def forward(x=x):
            with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16,
                                                        enabled=bf16):
                return net(x).float()

        record["forward"][str(size)] = _timed(forward, args.repeats, args.slow_torch_s)
    record["peak_rss_gib"] = measure.peak_rss_gib()
    after = _torch_peaks(args.peak_reps)
    record["peaks"] = {k: max(before[k], after[k]) for k in before}
    return record


def run_prepare(args):
    """The ``prepare`` process: DeOldify's network with seed 0 saved as a bare state dict."""
    import torch

    torch.save(_torch_network(args, args.variant).state_dict(), args.pth)


def prepare(args, variant, folder):
    """Random-weight DeOldify .pth (seed 0) and its kgan conversion; returns generator.keras."""
    keras_path = os.path.join(folder, "generator.keras")
    if os.path.exists(keras_path):
        return keras_path
    pth = folder + "_gen.pth"
    os.makedirs(os.path.dirname(folder), exist_ok=True)
    _run([sys.executable, os.path.abspath(__file__), "--role=prepare", f"--variant={variant}",
          f"--pth={pth}", *_network_flags(args)], "prepare (PyTorch)")
    _run([sys.executable, "-m", "kgan.convert", f"--pytorch={pth}",
          f"--generator=deoldify_{variant}", f"--output_dir={folder}", "--noexport",
          "--overwrite"], "kgan.convert")
    os.remove(pth)
    return keras_path


# ----------------------------------------------------------------------------- kgan side


def _gray_photo():
    import numpy as np
    from skimage import data

    rgb = data.astronaut().astype(np.float32)
    return np.round(rgb @ np.array([0.299, 0.587, 0.114], np.float32)).astype(np.uint8)


def _write_clip(path, width, height, frames):
    import numpy as np
    from PIL import Image

    from kgan.video.ffmpeg import FrameWriter

    photo = np.asarray(Image.fromarray(_gray_photo()).resize((width, height)))
    writer = FrameWriter(path, width, height, 24)
    for i in range(frames):
        writer.write(np.repeat(np.roll(photo, 4 * i, axis=1)[..., None], 3, axis=-1))
    writer.close()


def run_kgan(args):
    """One kgan process: the forward kgan.colorize runs, then a photo and a clip end to end."""
    import numpy as np

    import kgan  # noqa: F401  (quiet TensorFlow, registered layers)
    from kgan.benchmarking.peaks import forward_flops, measure_peaks
    from kgan.colorization.colorizer import Colorizer
    from kgan.core import measure
    from kgan.serving.loading import load_model

    translator = load_model(args.model, precision=args.precision)
    record = {"rss_after_load_gib": measure.current_rss_gib(),
              "params": int(translator.model.count_params())}
    measure.reset_peak_rss()
    before = measure_peaks(args.peak_size, args.peak_reps)
    record["forward"], record["forward_gflop"] = {}, {}
    for size in _sizes(args):
        record["forward_gflop"][str(size)] = forward_flops(translator.model,
                                                           (1, size, size, 3)) / 1e9
        square = np.full((1, size, size, 3), 128, np.uint8)
        square[:, ::7] = 30  # not a constant image
        record["forward"][str(size)] = _timed(
            lambda square=square: translator.translate_float(square), args.repeats)
    record["peak_rss_forward_gib"] = measure.peak_rss_gib()
    after = measure_peaks(args.peak_size, args.peak_reps)
    record["peaks"] = {k: max(before[k], after[k]) for k in before if k.endswith("_gflops")}
    if args.e2e:
        record["e2e"] = _end_to_end(args, translator, Colorizer)
    record["peak_rss_gib"] = measure.peak_rss_gib()
    return record


def _end_to_end(args, translator, colorizer_class):
    from kgan.video.pipeline import process_video
    from kgan.video.stabilize import TemporalStabilizer

    def quiet(message):
        del message

    photo = _gray_photo()
    colorizer = colorizer_class(translator, args.photo_rf, log=quiet)
    result = {"photo_shape": list(photo.shape), "pipeline": colorizer.pipeline,
              "photo": _timed(lambda: colorizer.colorize(photo), args.e2e_repeats)}
    width, height, frames = args.clip
    with tempfile.TemporaryDirectory(prefix="kgan_deoldify_clip_") as folder:
        clip, out = os.path.join(folder, "clip.mp4"), os.path.join(folder, "out.mp4")
        _write_clip(clip, width, height, frames)
        video = colorizer_class(translator, args.video_rf, log=quiet)
        video.colorize(_gray_photo())  # warm-up at the video render size
        start = time.perf_counter()
        process_video(clip, out, frame_fn=video.colorize, stabilizer=TemporalStabilizer(),
                      resume=False, progress=False)
        seconds = time.perf_counter() - start
    result["video"] = {"frames": frames, "size": [width, height], "seconds": seconds,
                       "frames_per_s": frames / seconds}
    return result


# ----------------------------------------------------------------------------- driver


def _run(command, what):
    proc = subprocess.run(command, check=False, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{what} failed (exit {proc.returncode}):\n{proc.stdout[-3000:]}\n"
                         f"{proc.stderr[-3000:]}")
    return proc


def _network_flags(args):
    flags = [f"--width={args.width}", f"--wide_nf={args.wide_nf or 0}"]
    if args.blocks:
        flags.append(f"--blocks={','.join(map(str, args.blocks))}")
    return flags


def _worker(args, impl, variant, precision, model, e2e):
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    command = [sys.executable, os.path.abspath(__file__), f"--role={impl}",
               f"--variant={variant}", f"--precision={precision}", f"--output_json={out}",
               f"--threads={args.threads}", f"--repeats={args.repeats}",
               f"--e2e_repeats={args.e2e_repeats}",
               f"--photo_rf={args.photo_rf}", f"--video_rf={args.video_rf}",
               f"--peak_size={args.peak_size}", f"--peak_reps={args.peak_reps}",
               f"--clip={','.join(map(str, args.clip))}", *_network_flags(args)]
    if impl == "torch":
        command.append(f"--slow_torch_s={args.slow_torch_s}")
    else:
        command += [f"--model={model}", f"--e2e={int(e2e)}"]
    start = time.perf_counter()
    _run(command, f"{impl} {variant} {precision}")
    with open(out) as f:
        record = json.load(f)
    os.remove(out)
    record.update(impl=impl, variant=variant, precision=precision,
                  process_s=time.perf_counter() - start, load_average=list(os.getloadavg()))
    return record


def drive(args):
    """Prepares the models, runs the rounds of worker processes and summarises them."""
    measure = _measure()
    work = args.work_dir or tempfile.mkdtemp(prefix="kgan_deoldify_speed_")
    tag = "quick" if args.quick else "full"
    machine = {**measure.cpu_info(), "nproc": os.cpu_count(),
               "load_average_start": list(os.getloadavg())}
    models = {v: prepare(args, v, os.path.join(work, f"{tag}_w{args.width}_{v}"))
              for v in args.variants}
    order = [(impl, precision) for precision in PRECISIONS for impl in IMPLS]
    records = []
    for round_index in range(args.rounds):
        for variant in args.variants:
            for impl, precision in (order if round_index % 2 == 0 else order[::-1]):
                e2e = variant == "stable" and round_index < args.e2e_rounds
                record = _worker(args, impl, variant, precision, models[variant], e2e)
                record["round"] = round_index
                records.append(record)
                print(f"round {round_index + 1}/{args.rounds} {variant:8s} {impl:5s} "
                      f"{precision:8s} " + ", ".join(
                          f"{s}^2 {r['median_s']:.3f} s" for s, r in record["forward"].items()),
                      file=sys.stderr, flush=True)
    machine["load_average_end"] = list(os.getloadavg())
    command = "benchmarks/deoldify_speed.py " + " ".join(args.argv)
    report = {"machine": machine, "command": command.strip(), "config": {
        k: getattr(args, k) for k in ("quick", "rounds", "repeats", "e2e_repeats", "threads",
                                      "width",
                                      "photo_rf", "video_rf", "variants", "slow_torch_s")},
              "records": records}
    report["summary"] = summarize(records)
    return report


def _median_of(records, key):
    values = [key(r) for r in records]
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(records):
    """The table's numbers from the per-process records (nothing else goes in).

    Per (variant, size, impl, precision): the median of the processes' median forward times,
    the best single forward, the range of the medians. Per (variant, size): the PyTorch
    network's fastest mode (lowest median), kgan bf16's speed-up over it (its median time
    over kgan bf16's; also best over best), and for every config the achieved GFLOP/s
    (kgan's FLOP count over the time) as a share of the same process's conv peak of its
    precision (median of the processes; the best forward against the best peak too).
    """
    summary = {}
    by = {}
    for r in records:
        by.setdefault((r["variant"], r["impl"], r["precision"]), []).append(r)
    gflop = {}
    for r in records:
        for size, value in r.get("forward_gflop", {}).items():
            gflop[(r["variant"], size)] = value
    for (variant, impl, precision), group in sorted(by.items()):
        tag = "bf16" if precision == "bfloat16" else "fp32"
        for size in group[0]["forward"]:
            forwards = [r["forward"][size] for r in group]
            medians = [f["median_s"] for f in forwards]
            entry = {"processes": len(group), "median_s": statistics.median(medians),
                     "best_s": min(f["best_s"] for f in forwards),
                     "median_range_s": [min(medians), max(medians)],
                     "first_s": statistics.median(f["first_s"] for f in forwards),
                     "peak_rss_gib": max(r["peak_rss_gib"] for r in group),
                     "rss_after_load_gib": max(r["rss_after_load_gib"] for r in group),
                     "conv_peak_gflops": _median_of(
                         group, lambda r, t=tag: r["peaks"][f"conv_{t}_gflops"])}
            flops = gflop.get((variant, size))
            if flops:
                entry["gflop"] = flops
                entry["achieved_gflops"] = flops / entry["median_s"]
                entry["ratio_to_conv_peak"] = _median_of(group, lambda r, s=size, t=tag, g=flops: (
                    g / r["forward"][s]["median_s"] / r["peaks"][f"conv_{t}_gflops"]))
                entry["best_ratio_to_conv_peak"] = (
                    flops / entry["best_s"]
                    / max(r["peaks"][f"conv_{tag}_gflops"] for r in group))
            summary.setdefault(variant, {}).setdefault(size, {})[f"{impl} {precision}"] = entry
    for variant, sizes in summary.items():
        for size, entries in sizes.items():
            torch_modes = {k: v for k, v in entries.items() if k.startswith("torch")}
            kgan_bf16 = entries.get("kgan bfloat16")
            if not torch_modes or not kgan_bf16:
                continue
            fastest = min(torch_modes, key=lambda k: torch_modes[k]["median_s"])
            entries["ratios"] = {
                "torch_fastest_mode": fastest,
                "kgan_bf16_speedup_over_torch_fastest":
                    torch_modes[fastest]["median_s"] / kgan_bf16["median_s"],
                "kgan_bf16_speedup_over_torch_fastest_best":
                    min(v["best_s"] for v in torch_modes.values()) / kgan_bf16["best_s"]}
            if "kgan float32" in entries:
                entries["ratios"]["kgan_bf16_over_fp32_speedup"] = (
                    entries["kgan float32"]["median_s"] / kgan_bf16["median_s"])
    e2e = {}
    for r in records:
        if r.get("e2e"):
            e2e.setdefault(r["precision"], []).append(r["e2e"])
    summary["e2e"] = {precision: {
        "processes": len(items),
        "photo_s": statistics.median(i["photo"]["median_s"] for i in items),
        "photo_best_s": min(i["photo"]["best_s"] for i in items),
        "photo_first_s": statistics.median(i["photo"]["first_s"] for i in items),
        "video_fps": statistics.median(i["video"]["frames_per_s"] for i in items),
        "video": items[0]["video"]} for precision, items in e2e.items()}
    return summary


def _fmt(value, digits=2, unit=""):
    return "n/a" if value is None else f"{value:.{digits}f}{unit}"


def format_table(report):
    """The report as the markdown table of docs/speed.md (plus the ratios under it)."""
    machine, summary = report["machine"], report["summary"]
    loads = [" ".join(f"{x:.2f}" for x in machine[key])
             for key in ("load_average_start", "load_average_end")]
    lines = [(f"CPU: {machine['model']}, nproc {machine['nproc']}, features "
              f"{', '.join(machine['features']) or 'none'}; load average {loads[0]} at the "
              f"start, {loads[1]} at the end"),
             f"command: {report['command']}", "",
             ("| network, render size | config | forward median (range of process medians) | "
              "best | first call | GFLOP/s | % of same-run conv peak (median / best) | "
              "peak RSS (after load) |"), "|---|---|---|---|---|---|---|---|"]
    for variant in VARIANTS:
        for size, entries in summary.get(variant, {}).items():
            for key in ("torch float32", "torch bfloat16", "kgan float32", "kgan bfloat16"):
                e = entries.get(key)
                if e is None:
                    continue
                low, high = e["median_range_s"]
                ratio = (f"{_fmt(100 * e['ratio_to_conv_peak'], 1)} / "
                         f"{_fmt(100 * e['best_ratio_to_conv_peak'], 1)} "
                         f"(peak {_fmt(e['conv_peak_gflops'], 0)})"
                         if "ratio_to_conv_peak" in e else "n/a")
                lines.append(
                    f"| {variant} {size}² | {key} ×{e['processes']} | {e['median_s']:.3f} s "
                    f"({low:.3f}–{high:.3f}) | {e['best_s']:.3f} s | {e['first_s']:.2f} s | "
                    f"{_fmt(e.get('achieved_gflops'), 0)} | {ratio} | "
                    f"{e['peak_rss_gib']:.2f} GiB ({e['rss_after_load_gib']:.2f}) |")
    lines.append("")
    for variant in VARIANTS:
        for size, entries in summary.get(variant, {}).items():
            ratios = entries.get("ratios")
            if ratios:
                lines.append(
                    f"- {variant} {size}²: kgan bf16 is "
                    f"{ratios['kgan_bf16_speedup_over_torch_fastest']:.2f}× the PyTorch "
                    f"network's fastest mode ({ratios['torch_fastest_mode']}) by median, "
                    f"{ratios['kgan_bf16_speedup_over_torch_fastest_best']:.2f}× best against "
                    f"best; kgan bf16 over kgan fp32 "
                    f"{_fmt(ratios.get('kgan_bf16_over_fp32_speedup'))}×")
    for precision, e in summary.get("e2e", {}).items():
        video = e["video"]
        lines.append(
            f"- kgan.colorize path ({precision}, Stable's network, ×{e['processes']}): photo "
            f"{e['photo_s']:.2f} s (best {e['photo_best_s']:.2f}); {video['size'][0]}x{video['size'][1]} clip of {video['frames']} frames "
            f"{e['video_fps']:.2f} frames/s (decode, stabiliser, x264 included)")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- command line


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--role", default="driver", choices=("driver", "prepare", "torch", "kgan"))
    parser.add_argument("--quick", action="store_true",
                        help="tiny networks at render factors 4 / 3: a smoke test in seconds")
    parser.add_argument("--variants", default="stable,artistic",
                        type=lambda s: [v for v in s.split(",") if v])
    parser.add_argument("--variant", default="stable", choices=VARIANTS)
    parser.add_argument("--precision", default="float32", choices=PRECISIONS)
    parser.add_argument("--rounds", type=int, default=None,
                        help="alternations of the processes (3; --quick: 1)")
    parser.add_argument("--e2e_rounds", type=int, default=1,
                        help="rounds whose kgan Stable processes also time photo and clip")
    parser.add_argument("--repeats", type=int, default=None, help="timed forwards per size")
    parser.add_argument("--e2e_repeats", type=int, default=1,
                        help="timed photos per kgan process (after one untimed)")
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--photo_rf", type=int, default=None)
    parser.add_argument("--video_rf", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--blocks", default=None,
                        type=lambda s: tuple(int(b) for b in s.split(",")) if s else None)
    parser.add_argument("--wide_nf", type=int, default=None)
    parser.add_argument("--peak_size", type=int, default=None)
    parser.add_argument("--peak_reps", type=int, default=None)
    parser.add_argument("--clip", default=None, type=lambda s: tuple(int(v) for v in
                                                                      s.split(",")),
                        help="width,height,frames of the synthetic clip")
    parser.add_argument("--slow_torch_s", type=float, default=0.0,
                        help="sleep added to each timed PyTorch forward (tests only)")
    parser.add_argument("--model", default="")
    parser.add_argument("--pth", default="")
    parser.add_argument("--e2e", type=int, default=1, help="kgan role: also time the "
                        "photo and clip paths (0: forward only)")
    parser.add_argument("--work_dir", default="", help="where the converted models are kept")
    parser.add_argument("--output_json", default="")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    defaults = QUICK if args.quick else FULL
    for key, value in defaults.items():
        if getattr(args, key) is None:
            setattr(args, key, value)
    if args.wide_nf == 0:
        args.wide_nf = None
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        parser.error(f"--variants: unknown {', '.join(sorted(unknown))}; use "
                     f"{', '.join(VARIANTS)} (video runs Stable's network)")
    return args


def main(argv=None):
    args = parse_args(argv)
    if args.role == "prepare":
        run_prepare(args)
        return
    if args.role == "torch":
        result = run_torch(args)
    elif args.role == "kgan":
        result = run_kgan(args)
    else:
        result = drive(args)
        print(format_table(result))
    if args.output_json:
        with open(args.output_json, "w") as f:
            json.dump(result, f, indent=2)


if __name__ == "__main__":
    main()
