"""Memory over long jobs: does RSS stay flat over a long training run and a long translate?

Runs the real CLIs in subprocesses and samples their resident memory (``/proc/PID/status``
VmRSS) every ``--interval`` seconds, keyed by the progress they print:

- training: ``python -m kgan.train --flagfile=configs/smoke.cfg`` for ``--train_steps`` steps
  (500 steps per epoch, checkpoints every 2,000, TensorBoard scalars every 100 steps and
  images every 1,000), RSS at the end of each epoch;
- parts: the translator alone (fresh arrays each call) and the file reader + writer alone,
  each in a loop over ``--images`` images, to tell which part of a translate job grows;
- sizes / sizes_buckets / sizes_in_process / sizes_tiled: ``--images`` photos of random sizes
  (``--sizes_sides``, default 64..160 px) through ``kgan.translate``: as it runs by default
  (a worker process replaced after ``--max_memory_growth_mib`` of growth), the same with
  ``--size_buckets``, in one process (every new shape costs memory in TensorFlow's oneDNN
  build), and with ``--tile=64`` (one tile shape); RSS counts the worker too;
- translate: ``--images`` photos (three sizes, so that several batch shapes are traced) through
  a tiny ``.keras`` generator with ``python -m kgan.translate``, RSS at each progress line.

A leak shows as growth between the first part of the job (after warm-up) and its end. Usage::

    python benchmarks/leaks.py --train_steps=20000 --images=2000 --output_json=leaks.json

Prints a table and writes the samples as JSON. Linux only (reads /proc).
"""

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2", "CUDA_VISIBLE_DEVICES": ""}


def _descendants(pid):
    """``pid`` and all its child processes (kgan.translate's worker), from /proc."""
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    todo += [int(child) for child in handle.read().split()]
        except OSError:
            pass
    return found


def rss_mib(pid):
    """Resident memory of ``pid`` and its child processes together, and the peak of ``pid``
    alone, in MiB (None when it has exited)."""
    total, peak = 0.0, None
    for index, process in enumerate(_descendants(pid)):
        try:
            with open(f"/proc/{process}/status") as handle:
                fields = dict(line.split(":", 1) for line in handle if ":" in line)
        except OSError:
            fields = {}
        if "VmRSS" not in fields:  # gone, or a zombie
            if index == 0:
                return None, None
            continue
        total += int(fields["VmRSS"].split()[0]) / 1024
        if index == 0:
            peak = int(fields["VmHWM"].split()[0]) / 1024
    return total, max(peak, total)


def run_sampled(command, progress_pattern, interval):
    """Runs ``command``, recording RSS at every output line that matches ``progress_pattern``
    (its first group is the progress count) and every ``interval`` seconds.

    Returns:
        A dict: ``marks`` [(progress, rss MiB)], ``timeline`` [(seconds, rss MiB)],
        ``peak_mib``, ``seconds``, ``returncode`` and the output's last lines.
    """
    process = subprocess.Popen(command, cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    start, timeline, marks, tail, peak = time.time(), [], [], [], [0.0]

    def sample():
        while process.poll() is None:
            rss, hwm = rss_mib(process.pid)
            if rss is not None:
                timeline.append((round(time.time() - start, 1), round(rss, 1)))
                peak[0] = max(peak[0], hwm)
            time.sleep(interval)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    pattern = re.compile(progress_pattern)
    for line in process.stdout:
        tail = (tail + [line.rstrip()])[-20:]
        match = pattern.search(line)
        if match:
            rss, hwm = rss_mib(process.pid)
            if rss is not None:
                marks.append((int(match.group(1)), round(rss, 1)))
                peak[0] = max(peak[0], hwm)
    process.wait()
    sampler.join(timeout=interval + 1)
    return {"marks": marks, "timeline": timeline, "peak_mib": round(peak[0], 1),
            "seconds": round(time.time() - start, 1), "returncode": process.returncode,
            "tail": tail}


def growth(marks, skip_fraction=0.1):
    """RSS growth from the first mark after ``skip_fraction`` of the job (warm-up: tracing,
    the first checkpoint and export) to the last, in MiB and MiB per 1,000 progress units."""
    if len(marks) < 2:
        return None
    last_progress = marks[-1][0]
    after = [m for m in marks if m[0] >= skip_fraction * last_progress] or marks
    (p0, r0), (p1, r1) = after[0], marks[-1]
    per_k = (r1 - r0) / (p1 - p0) * 1000 if p1 > p0 else 0.0
    return {"from": [p0, r0], "to": [p1, r1], "mib": round(r1 - r0, 1),
            "mib_per_1000": round(per_k, 2)}


def train_job(steps, folder, interval):
    steps_per_epoch = 500
    epochs = max(1, steps // steps_per_epoch)
    command = [sys.executable, "-m", "kgan.train", "--flagfile=configs/smoke.cfg",
               f"--output_dir={folder}/train", f"--steps_per_epoch={steps_per_epoch}",
               f"--epochs={epochs}", "--epochs_decay=0", f"--max_steps={steps}",
               "--save_freq=2000", "--print_freq=100", "--display_freq=1000", "--verbose=2"]
    # Keras prints "500/500 - 25s - ..." when an epoch ends.
    result = run_sampled(command, rf"^({steps_per_epoch})/{steps_per_epoch} - ", interval)
    result["marks"] = [((i + 1) * steps_per_epoch, rss)
                       for i, (_, rss) in enumerate(result["marks"])]
    return result


def translate_job_photos(inputs, count):
    """Writes ``count`` random PNGs of three sizes into ``inputs``."""
    import numpy as np
    from PIL import Image

    os.makedirs(inputs, exist_ok=True)
    rng = np.random.default_rng(0)
    sizes = [(64, 64), (48, 80), (96, 72)]
    base = rng.integers(0, 256, (8, 96, 96, 3), dtype=np.uint8)
    for i in range(count):
        height, width = sizes[i % len(sizes)]
        Image.fromarray(base[i % 8, :height, :width]).save(os.path.join(inputs, f"{i:05d}.png"))


def write_model(folder, full=False):
    """A resnet generator as ``folder/generator.keras`` (tiny: 2 blocks, ngf 8; ``full``: the
    reference's resnet_9blocks at ngf 64); returns its path."""
    import keras

    from kgan.models import resnet_generator

    model = os.path.join(folder, "generator_full.keras" if full else "generator.keras")
    if not os.path.isfile(model):
        keras.utils.set_random_seed(0)
        resnet_generator(n_blocks=9, ngf=64).save(model) if full else \
            resnet_generator(n_blocks=2, ngf=8).save(model)
    return model


# None: the worker with the budget of --max_memory_growth_mib.
SIZES_FLAGS = {"sizes": [None], "sizes_buckets": [None, "--size_buckets"],
               "sizes_in_process": ["--max_memory_growth_mib=0"],
               "sizes_tiled": ["--tile=64", "--max_memory_growth_mib=0"]}


def sizes_job(count, folder, interval, job, sides=(64, 160), full=False, growth_mib=2048):
    """``count`` photos of random sizes (``sides``: smallest and largest side) through
    ``kgan.translate``: memory per distinct input shape. ``job``: ``sizes`` (the default: a
    worker process replaced after ``growth_mib`` MiB of growth), ``sizes_buckets`` (the same
    with ``--size_buckets``), ``sizes_in_process`` (no worker) or ``sizes_tiled``
    (``--tile=64``, no worker: one tile shape). ``full``: the resnet_9blocks ngf 64 generator."""
    import numpy as np
    from PIL import Image

    inputs = os.path.join(folder, f"sizes_{count}_{sides[0]}_{sides[1]}")
    if not os.path.isdir(inputs):
        os.makedirs(inputs)
        rng = np.random.default_rng(0)
        for i in range(count):
            shape = (*rng.integers(sides[0], sides[1] + 1, 2), 3)
            Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(
                os.path.join(inputs, f"{i:05d}.png"))
    model = write_model(folder, full)
    flags = [flag or f"--max_memory_growth_mib={growth_mib}" for flag in SIZES_FLAGS[job]]
    command = [sys.executable, "-m", "kgan.translate", f"--model={model}", f"--input={inputs}",
               f"--output={folder}/{job}_out", "--nohtml", *flags]
    return run_sampled(command, r"\[(\d+)/\d+\]", interval)


def translate_job(count, folder, interval, html=True):
    inputs = os.path.join(folder, "photos")
    translate_job_photos(inputs, count)
    model = write_model(folder)
    command = [sys.executable, "-m", "kgan.translate", f"--model={model}",
               f"--input={inputs}", f"--output={folder}/translated", "--batch_size=4",
               "--html" if html else "--nohtml"]
    return run_sampled(command, r"\[(\d+)/\d+\]", interval)


PARTS_SCRIPT = """
import glob, os, sys, tempfile
import numpy as np
from kgan.data.images import image_size, load_image, write_image
from kgan.serving.loading import load_model

def rss():
    with open("/proc/self/status") as handle:
        return [int(l.split()[1]) / 1024 for l in handle if l.startswith("VmRSS")][0]

photos, model, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
translator = load_model(model)
shapes = [(4, 64, 64, 3), (4, 48, 80, 3), (4, 96, 72, 3)]
calls = count // 4
for i in range(calls):  # the translator alone, fresh arrays each call
    translator(np.random.randint(0, 255, shapes[i % 3], dtype=np.uint8))
    if i + 1 in (calls // 10, calls):
        print(f"translator {4 * (i + 1)} {rss():.1f}", flush=True)
out = tempfile.mkdtemp()
files = sorted(glob.glob(os.path.join(photos, "*.png")))
for i, path in enumerate(files):  # the file reader and writer alone
    image_size(path)
    write_image(os.path.join(out, os.path.basename(path)), load_image(path))
    if i + 1 in (len(files) // 10, len(files)):
        print(f"files {i + 1} {rss():.1f}", flush=True)
"""


def parts_job(count, folder):
    """The translator and the file reader/writer, each alone in a loop, in one subprocess:
    which part of a translate job, if any, grows."""
    model = write_model(folder)
    photos = os.path.join(folder, "photos")
    if not os.path.isdir(photos) or len(os.listdir(photos)) < count:
        translate_job_photos(photos, count)
    result = subprocess.run([sys.executable, "-c", PARTS_SCRIPT, photos, model, str(count)],
                            cwd=ROOT, env=ENV, capture_output=True, text=True)
    lines = [line.split() for line in result.stdout.splitlines()]
    return {name: [(int(n), float(r)) for part, n, r in lines if part == name]
            for name in ("translator", "files")} | {"returncode": result.returncode}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train_steps", type=int, default=20000)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--interval", type=float, default=2.0)
    parser.add_argument("--jobs", default="train,translate")
    parser.add_argument("--no_html", action="store_true",
                        help="translate without index.html (its rows grow with the images)")
    parser.add_argument("--sizes_sides", default="64,160",
                        help="smallest,largest image side of the sizes jobs")
    parser.add_argument("--sizes_full_model", action="store_true",
                        help="sizes jobs with resnet_9blocks at ngf 64 (default: a tiny one)")
    parser.add_argument("--max_memory_growth_mib", type=int, default=2048,
                        help="kgan.translate's worker budget in the sizes job")
    parser.add_argument("--output_json", default="")
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="kgan_leaks_")
    report = {"cpu": _cpu_name()}
    for job in args.jobs.split(","):
        if job == "train":
            result = train_job(args.train_steps, folder, args.interval)
            unit = "steps"
        elif job == "translate":
            result = translate_job(args.images, folder, args.interval, not args.no_html)
            unit = "images"
        elif job in SIZES_FLAGS:
            sides = tuple(int(side) for side in args.sizes_sides.split(","))
            result = sizes_job(args.images, folder, args.interval, job, sides,
                               args.sizes_full_model, args.max_memory_growth_mib)
            unit = "images of random sizes"
        elif job == "parts":
            parts = parts_job(args.images, folder)
            report["parts"] = parts
            for name, marks in parts.items():
                if name != "returncode" and marks:
                    print(f"parts: {name} alone: RSS {marks[0][1]:.1f} MiB at {marks[0][0]} "
                          f"images -> {marks[-1][1]:.1f} MiB at {marks[-1][0]}", flush=True)
            continue
        else:
            raise SystemExit(f"unknown job {job!r}: use train, translate, sizes, "
                             "sizes_buckets, sizes_in_process, sizes_tiled and/or parts")
        result["growth"] = growth(result["marks"])
        result["second_half"] = growth(result["marks"], skip_fraction=0.5)
        result["unit"] = unit
        report[job] = result
        if result["returncode"] != 0:
            print("\n".join(result["tail"]), file=sys.stderr)
        g = result["growth"]
        print(f"{job}: {result['marks'][-1][0] if result['marks'] else 0} {unit} in "
              f"{result['seconds']:.0f} s, rc {result['returncode']}, peak RSS "
              f"{result['peak_mib']:.0f} MiB; RSS {g['from'][1]:.0f} MiB at {g['from'][0]} "
              f"{unit} -> {g['to'][1]:.0f} MiB at {g['to'][0]} ({g['mib']:+.1f} MiB, "
              f"{g['mib_per_1000']:+.2f} MiB per 1,000 {unit}; second half "
              f"{result['second_half']['mib']:+.1f} MiB)" if g else
              f"{job}: not enough samples (rc {result['returncode']})", flush=True)
    if args.output_json:
        with open(args.output_json, "w") as handle:
            json.dump(report, handle, indent=1)
        print(f"wrote {args.output_json}")


def _cpu_name():
    try:
        with open("/proc/cpuinfo") as handle:
            for line in handle:
                if line.startswith("model name"):
                    amx = "amx_bf16" in open("/proc/cpuinfo").read()
                    return line.split(":", 1)[1].strip() + (" (AMX)" if amx else "")
    except OSError:
        pass
    return "unknown"


if __name__ == "__main__":
    main()
