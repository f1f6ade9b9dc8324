"""What the peer benchmarks share: their common flags, the report they print, and writing it.

Pure Python (no TensorFlow, no PyTorch), so both peer scripts can import it; they run as
scripts, which puts this folder on ``sys.path``; the repository root goes on it here so the
ratio definitions come from kgan.core.measure (TensorFlow-free), the ones kgan.benchmarking.bench
uses.
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from kgan.core import measure  # noqa: E402


def common_parser(description, precisions):
    """An ``argparse`` parser with the flags every peer takes.

    Args:
        description: the script's one-line description.
        precisions: the ``--precision`` choices, the first being the default.

    Returns:
        The parser; a script adds its own flags to it.
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--precision", default=precisions[0], choices=list(precisions))
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--crop_size", type=int, default=256)
    parser.add_argument("--batch_size", type=int, default=1)
    parser.add_argument("--peak_size", type=int, default=2048)
    parser.add_argument("--peak_reps", type=int, default=20)
    parser.add_argument("--no_peaks", dest="peaks", action="store_false")
    parser.add_argument("--no_probe", dest="probe", action="store_false")
    parser.add_argument("--output_json", default="")
    return parser


def add_peak_ratios(report, result, bf16, peaks_before=None, peaks_after=None):
    """Adds the step's ratios to the matmul peaks with kgan.core.measure's definitions (the ones
    ``kgan.benchmarking.bench`` uses).

    Args:
        report: the report; gets ``peaks`` (the best of before and after) when both are given.
        result: the step's result, with ``achieved_gflops`` and, when a probe ran,
            ``probe_values`` (renamed ``probe_matmul_gflops``).
        bf16: whether the step ran in bfloat16 (its same-dtype peak is the bf16 one).
        peaks_before, peaks_after: peak dicts (GFLOP/s under ``*_gflops`` keys), or None.
    """
    measure.summarize_probe(result)
    if peaks_before and peaks_after:
        report["peaks"] = measure.best_peaks(peaks_before, peaks_after)
        measure.add_peak_ratios(result, report["peaks"], bf16)


def format_report(report, title):
    """The report as printed lines.

    Args:
        report: a peer's report dict (``result``, ``config``, ``precision``, optional
            ``peaks``).
        title: what ran, e.g. "keras-io CycleGAN peer".

    Returns:
        The text to print.
    """
    r = report["result"]
    peaks = report.get("peaks") or {}
    lines = [f"{title} ({report['precision']}), {report['config']['crop_size']}^2 "
             f"batch {report['config']['batch_size']}; load "
             f"{', '.join(f'{x:.2f}' for x in report['machine']['load_average'])}",
             f"  params G {r['generator_params']:,} D {r['discriminator_params']:,}; forward "
             f"G {r['generator_forward_gflop']:.2f} GFLOP, D {r['discriminator_forward_gflop']:.2f}"
             f" GFLOP; step {r['step_gflop']:.1f} GFLOP"]
    if peaks:
        lines.append(f"  peaks GFLOP/s: matmul fp32 {peaks['matmul_fp32_gflops']:.0f}, bf16 "
                     f"{peaks['matmul_bf16_gflops']:.0f}; conv3x3 fp32 "
                     f"{peaks['conv_fp32_gflops']:.0f}, bf16 {peaks['conv_bf16_gflops']:.0f}")
    lines.append(f"  first step {r['first_step_s']:.2f} s; step median {r['step_median_s']:.2f} s "
                 f"(p10 {r['step_p10_s']:.2f}, p90 {r['step_p90_s']:.2f}); "
                 f"{r['achieved_gflops']:.1f} GFLOP/s")
    if "ratio_to_fp32_matmul_peak" in r:
        lines.append(f"  {100 * r['ratio_to_fp32_matmul_peak']:.1f} % of fp32 matmul peak, "
                     f"{100 * r['ratio_to_matmul_peak']:.1f} % of same-dtype peak")
    if "ratio_to_concurrent_matmul_peak" in r:
        lines.append(f"  {100 * r['ratio_to_concurrent_matmul_peak']:.1f} % of concurrent "
                     f"matmul peak ({r['concurrent_matmul_peak_gflops']:.0f} GFLOP/s)")
    lines.append(f"  CPU utilisation {r['cpu_utilisation']:.2f}; peak RSS "
                 f"{r['peak_rss_gib']:.2f} GiB")
    return "\n".join(lines)


def print_and_write(report, title, output_json):
    """Prints the report and writes it as JSON when ``output_json`` is set."""
    print(format_report(report, title))
    if output_json:
        with open(output_json, "w") as f:
            json.dump(report, f, indent=2)
        print(f"wrote {output_json}")
