"""kgan's NoGAN colourisation training step against PyTorch's, in alternating processes (issue 27).

For each config (generator x phase x size/batch x precision) the driver runs
``python -m kgan.bench --model=colorize --phase=...`` and the PyTorch peer
(``benchmarks/peer_nogan_torch.py``: the same networks, losses and Adam in PyTorch,
``torch.autocast`` bf16) as separate processes, one after the other, the order reversed from
one config to the next (and every other round), so that a noisy shared machine is seen alike
by both. Each process gets ``--threads`` threads (torch: ``torch.set_num_threads``; TensorFlow:
``TF_NUM_INTRAOP_THREADS`` and ``OMP_NUM_THREADS``).

Each run's JSON is kept in ``--output_dir`` (``<impl>_<generator>_<phase>_<size>_b<batch>_
<precision>_r<round>.json``); a run whose file exists is not repeated, so an interrupted
measurement resumes where it stopped. The table is made from those files only (``--table_only``
prints it without running anything).

The table: per config, the median step time of each implementation (median of its processes'
median step over ``--steps`` steps after ``--warmup``; ``gan`` is the pair, one critic then one
generator update, as kgan.bench times it), kgan's speed over PyTorch's (torch s / kgan s), the
most kgan could lead by (torch s over kgan's FLOPs at kgan's same-run conv peak: where the
target is above it, the convolution kernels are the limit, not the step around them), kgan's
GFLOP/s as a share of the same process's 3x3 conv peak of the step's precision (kgan.bench's
``ratio_to_conv_peak``) and torch's against torch's own conv peak, both with kgan's FLOP count
(kgan.bench's ``step_gflop``: kgan.core.measure.nogan_step_flops on traced forward FLOPs; the
peer's own FlopCounterMode count is checked against it and shown when it differs), each
implementation's bf16 speed-up over its fp32 step, the peak RSS of each, and the load average.
Where other jobs share the CPU, the process CPU seconds per step (median of the timed steps'
``step_cpu_s``) and the CPU utilisation (CPU s / (wall s x usable cores)) are shown too: a step
that got half the machine shows it, and the CPU-second ratio is the less load-sensitive view.

Run (each process at 128^2 batch 8 takes minutes on 2 cores)::

    .venv/bin/python benchmarks/nogan_speed.py --output_dir=runs/nogan_speed \\
        --generators=deoldify_artistic --sizes=128x8 --phases=pretrain_g,pretrain_d,gan
    .venv/bin/python benchmarks/nogan_speed.py --quick --output_dir=/tmp/nogan_quick  # smoke

A measurement tool, not part of the package; tests/benchmarking/test_nogan_speed.py checks the
table's arithmetic.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PEER = os.path.join(ROOT, "benchmarks", "peer_nogan_torch.py")
IMPLS = ("kgan", "torch")
PHASES = ("pretrain_g", "pretrain_d", "gan")
PRECISIONS = ("float32", "bfloat16")


def configs(args):
    """The configs in run order: generator, size/batch, phase, precision."""
    return [{"generator": g, "phase": p, "crop_size": s, "batch_size": b, "precision": q}
            for g in args.generators for s, b in args.sizes for p in args.phases
            for q in args.precisions]


def run_name(impl, config, round_index):
    return (f"{impl}_{config['generator']}_{config['phase']}_{config['crop_size']}"
            f"_b{config['batch_size']}_{config['precision']}_r{round_index}.json")


def kgan_command(args, config, output_json):
    command = [sys.executable, "-m", "kgan.bench", "--model=colorize",
               f"--generator={config['generator']}", f"--phase={config['phase']}",
               f"--crop_size={config['crop_size']}", f"--batch_size={config['batch_size']}",
               f"--steps={args.steps}", f"--warmup={args.warmup}",
               f"--peak_reps={args.peak_reps}", f"--peak_size={args.peak_size}",
               "--content_loss=perceptual", "--vgg_weights=none", "--noinference",
               "--noprobe", f"--ngf={args.width}", f"--output_json={output_json}"]
    if config["precision"] == "bfloat16":
        command.append("--mixed_precision=mixed_bfloat16")
    return command


def torch_command(args, config, output_json):
    return [sys.executable, PEER, f"--generator={config['generator']}",
            f"--phase={config['phase']}", f"--crop_size={config['crop_size']}",
            f"--batch_size={config['batch_size']}", f"--precision={config['precision']}",
            f"--steps={args.steps}", f"--warmup={args.warmup}", f"--threads={args.threads}",
            f"--memory_format={args.memory_format}", f"--vgg_batch={args.vgg_batch}",
            f"--width={args.width}", f"--peak_reps={args.peak_reps}",
            f"--output_json={output_json}"]


def run_one(args, impl, config, path):
    """Runs one process and writes its record (the process's own JSON under ``report``)."""
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as f:
        out = f.name
    make = kgan_command if impl == "kgan" else torch_command
    command = make(args, config, out)
    env = dict(os.environ, TF_NUM_INTRAOP_THREADS=str(args.threads),
               OMP_NUM_THREADS=str(args.threads), TF_CPP_MIN_LOG_LEVEL="2")
    load_before, start = list(os.getloadavg()), time.perf_counter()
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True,
                          check=False)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{impl} {config} failed (exit {proc.returncode}):\n"
                         f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    with open(out) as f:
        report = json.load(f)
    os.remove(out)
    record = {"impl": impl, "config": config, "command": " ".join(command[1:]),
              "threads": args.threads, "process_s": wall, "load_average_before": load_before,
              "load_average_after": list(os.getloadavg()), "report": report}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(record, f, indent=1)
    os.replace(tmp, path)
    return record


def drive(args):
    """Runs every missing (config, impl, round) process, alternating the order."""
    os.makedirs(args.output_dir, exist_ok=True)
    index = 0
    for round_index in range(args.rounds):
        for config in configs(args):
            order = IMPLS if (index + round_index) % 2 == 0 else IMPLS[::-1]
            index += 1
            for impl in order:
                path = os.path.join(args.output_dir, run_name(impl, config, round_index))
                if os.path.exists(path):
                    continue
                record = run_one(args, impl, config, path)
                step = step_result(record)
                print(f"r{round_index} {impl:5s} {config['generator']} {config['phase']:10s} "
                      f"{config['crop_size']}^2 b{config['batch_size']} "
                      f"{config['precision']:8s} step {step['step_median_s']:.3f} s "
                      f"(process {record['process_s']:.0f} s, load "
                      f"{record['load_average_after'][0]:.2f})", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- the table


def step_result(record):
    """The step's result dict of a record (kgan.bench: ``configs[0]``; the peer: ``result``)."""
    report = record["report"]
    return report["configs"][0] if record["impl"] == "kgan" else report["result"]


def conv_peak(record):
    tag = "bf16" if record["config"]["precision"] == "bfloat16" else "fp32"
    peaks = record["report"].get("peaks") or {}
    return peaks.get(f"conv_{tag}_gflops")


def load_records(output_dir, rounds=None):
    """The records in ``output_dir`` (of the rounds ``rounds`` only, when given)."""
    records = []
    for name in sorted(os.listdir(output_dir)):
        if rounds is not None and name.rsplit("_r", 1)[-1][:-len(".json")] not in rounds:
            continue
        if name.endswith(".json") and name.split("_", 1)[0] in IMPLS:
            with open(os.path.join(output_dir, name)) as f:
                records.append(json.load(f))
    return records


def _key(config, precision=None):
    return (config["generator"], config["phase"], config["crop_size"], config["batch_size"],
            precision or config["precision"])


def summarize(records):
    """Per config key (generator, phase, size, batch, precision) and impl: the median of the
    processes' median steps, kgan's step GFLOP, the share of the conv peak, peak RSS; per key
    the ratios (``kgan_speedup``: torch s / kgan s; ``kgan_speedup_ceiling``: torch s over the
    time kgan's FLOPs take at kgan's same-run conv peak, the most kgan could lead by unless it
    ran faster than its conv kernels; ``bf16_speedup``: fp32 s / bf16 s of each implementation,
    on bf16 keys)."""
    groups = {}
    for r in records:
        groups.setdefault(_key(r["config"]), {}).setdefault(r["impl"], []).append(r)
    summary = {}
    for key, impls in groups.items():
        kgan_gflop = None
        if "kgan" in impls:
            kgan_gflop = step_result(impls["kgan"][0])["step_gflop"]
        entry = {}
        for impl, group in impls.items():
            results = [step_result(r) for r in group]
            median = statistics.median(x["step_median_s"] for x in results)
            gflop = kgan_gflop if kgan_gflop is not None else results[0]["step_gflop"]
            ratios = [gflop / x["step_median_s"] / conv_peak(r)
                      for x, r in zip(results, group) if conv_peak(r)]
            entry[impl] = {
                "processes": len(group), "step_s": median,
                "best_step_s": min(x["step_min_s"] for x in results),
                "cpu_s": statistics.median(statistics.median(x["step_cpu_s"])
                                           for x in results),
                "cpu_utilisation": statistics.median(x["cpu_utilisation"] for x in results),
                "step_gflop": gflop, "own_step_gflop": results[0]["step_gflop"],
                "ratio_to_conv_peak": statistics.median(ratios) if ratios else None,
                "conv_peak_gflops": statistics.median(conv_peak(r) for r in group)
                if all(conv_peak(r) for r in group) else None,
                "peak_rss_gib": max(x["peak_rss_gib"] for x in results),
                "load_average": max(max(r["load_average_before"][0],
                                        r["load_average_after"][0]) for r in group)}
        if "kgan" in entry and "torch" in entry:
            entry["kgan_speedup"] = entry["torch"]["step_s"] / entry["kgan"]["step_s"]
            entry["kgan_cpu_speedup"] = entry["torch"]["cpu_s"] / entry["kgan"]["cpu_s"]
            kgan_peak = entry["kgan"]["conv_peak_gflops"]
            if kgan_peak:
                # The most kgan could lead by: its step at 100 % of its own conv peak.
                entry["kgan_speedup_ceiling"] = (entry["torch"]["step_s"] * kgan_peak
                                                 / entry["kgan"]["step_gflop"])
        summary[key] = entry
    for key, entry in summary.items():
        if key[4] != "bfloat16":
            continue
        fp32 = summary.get(key[:4] + ("float32",), {})
        entry["bf16_speedup"] = {impl: fp32[impl]["step_s"] / entry[impl]["step_s"]
                                 for impl in IMPLS if impl in entry and impl in fp32}
    return summary


def _fmt(value, spec=".2f", scale=1.0, suffix=""):
    return "–" if value is None else f"{value * scale:{spec}}{suffix}"


def format_table(summary, machine=None):
    """The summary as one markdown table (plus a line on the machine)."""
    lines = []
    if machine:
        lines.append(f"CPU: {machine['model']}, {machine['cores']} usable cores, features "
                     f"{', '.join(machine['features']) or 'none'}")
    lines += ["| generator | phase | size, batch | precision | kgan step s | torch step s | "
              "kgan/torch speed | kgan/torch at kgan's conv peak | "
              "CPU s/step kgan / torch (speed) | CPU use kgan / torch | "
              "kgan % conv peak | torch % conv peak | bf16/fp32 kgan | "
              "bf16/fp32 torch | GFLOP/step | peak RSS kgan / torch GiB | max load |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    order = {p: i for i, p in enumerate(PHASES)}
    for key in sorted(summary, key=lambda k: (k[0], k[2], k[3], order.get(k[1], 9),
                                              PRECISIONS.index(k[4]))):
        entry = summary[key]
        kgan, torch = entry.get("kgan", {}), entry.get("torch", {})
        speedup = entry.get("bf16_speedup", {})
        gflop = kgan.get("step_gflop") or torch.get("step_gflop")
        flops = _fmt(gflop, ".0f")
        if kgan and torch and abs(torch["own_step_gflop"] - gflop) > 1e-3 * gflop:
            flops += f" (torch's count {torch['own_step_gflop']:.0f})"
        counts = {e["processes"] for e in (kgan, torch) if e}
        times = "" if counts == {1} else f" ×{'/'.join(str(c) for c in sorted(counts))}"
        lines.append(
            f"| {key[0].removeprefix('deoldify_')} | {key[1]} | {key[2]}², {key[3]} | "
            f"{key[4]}{times} | {_fmt(kgan.get('step_s'), '.2f')} | "
            f"{_fmt(torch.get('step_s'), '.2f')} | "
            f"{_fmt(entry.get('kgan_speedup'), '.2f', 1, '×')} | "
            f"{_fmt(entry.get('kgan_speedup_ceiling'), '.2f', 1, '×')} | "
            f"{_fmt(kgan.get('cpu_s'), '.1f')} / {_fmt(torch.get('cpu_s'), '.1f')} "
            f"({_fmt(entry.get('kgan_cpu_speedup'), '.2f', 1, '×')}) | "
            f"{_fmt(kgan.get('cpu_utilisation'), '.2f')} / "
            f"{_fmt(torch.get('cpu_utilisation'), '.2f')} | "
            f"{_fmt(kgan.get('ratio_to_conv_peak'), '.0f', 100, '%')} | "
            f"{_fmt(torch.get('ratio_to_conv_peak'), '.0f', 100, '%')} | "
            f"{_fmt(speedup.get('kgan'), '.2f', 1, '×')} | "
            f"{_fmt(speedup.get('torch'), '.2f', 1, '×')} | {flops} | "
            f"{_fmt(kgan.get('peak_rss_gib'), '.1f')} / {_fmt(torch.get('peak_rss_gib'), '.1f')} | "
            f"{_fmt(max([e['load_average'] for e in (kgan, torch) if e] or [None]), '.1f')} |")
    return "\n".join(lines)


def _machine(records):
    for r in records:
        machine = r["report"].get("machine")
        if machine and "model" in machine:
            return machine
    return None


# ----------------------------------------------------------------------------- command line


def _sizes(text):
    sizes = []
    for item in filter(None, text.split(",")):
        size, _, batch = item.partition("x")
        sizes.append((int(size), int(batch or 8)))
    return sizes


def _names(choices):
    def parse(text):
        names = [n for n in text.split(",") if n]
        unknown = [n for n in names if n not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {unknown}; use {', '.join(choices)}")
        return names
    return parse


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output_dir", required=True)
    parser.add_argument("--generators", default="deoldify_artistic",
                        type=_names(("deoldify_artistic", "deoldify_stable")))
    parser.add_argument("--phases", default=",".join(PHASES), type=_names(PHASES))
    parser.add_argument("--sizes", default="128x8", type=_sizes,
                        help="SIZExBATCH[,SIZExBATCH]: crop sizes and batch sizes")
    parser.add_argument("--precisions", default=",".join(PRECISIONS), type=_names(PRECISIONS))
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=64,
                        help="ResNet body width of the generators (kgan --ngf; 64 as DeOldify)")
    parser.add_argument("--memory_format", default="channels_last",
                        choices=("channels_last", "contiguous"),
                        help="the PyTorch peer's layout (channels_last: its faster one here)")
    parser.add_argument("--vgg_batch", default="split", choices=("split", "concat"))
    parser.add_argument("--peak_reps", type=int, default=5)
    parser.add_argument("--peak_size", type=int, default=2048)
    parser.add_argument("--quick", action="store_true",
                        help="smoke test: 64^2 batch 2, 1 step, 1 warm-up, width 8")
    parser.add_argument("--table_only", action="store_true")
    parser.add_argument("--table_rounds", default=None,
                        type=lambda text: [r for r in text.split(",") if r],
                        help="R[,R]: make the table from these rounds' runs only (e.g. the "
                        "rounds run while the machine was quiet)")
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.steps, args.warmup, args.width = [(64, 2)], 1, 1, 8
        args.peak_reps, args.peak_size = 2, 256
    return args


def main(argv=None):
    args = parse_args(argv)
    if not args.table_only:
        drive(args)
    records = load_records(args.output_dir, args.table_rounds)
    print(format_table(summarize(records), _machine(records)))


if __name__ == "__main__":
    main()
