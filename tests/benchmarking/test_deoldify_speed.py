"""Tests for benchmarks/deoldify_speed.py (DeOldify's PyTorch networks against kgan.colorize's
forward, issue 23): its ``--quick`` mode end to end (prepare and convert, PyTorch and kgan
processes, photo and clip, the table) with a deliberately slowed PyTorch peer, and that the
summary's ratios are computed from the measured times."""

import json
import os
import subprocess
import sys
import tempfile

import pytest
import tensorflow as tf
from helpers import load_script

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "deoldify_speed.py")



def _record(impl, precision, seconds, peak=100.0):
    record = {"impl": impl, "variant": "stable", "precision": precision,
              "forward": {"560": {"first_s": 2 * seconds, "times_s": [seconds, 1.1 * seconds],
                                  "median_s": 1.05 * seconds, "best_s": seconds}},
              "peaks": {"conv_fp32_gflops": peak, "conv_bf16_gflops": 2 * peak},
              "peak_rss_gib": 1.0, "rss_after_load_gib": 0.9}
    if impl == "kgan":
        record["forward_gflop"] = {"560": 1000.0}
    return record


def _records(torch_fp32=8.0, torch_bf16=6.0, kgan_fp32=7.0, kgan_bf16=4.0):
    return [_record("torch", "float32", torch_fp32), _record("kgan", "float32", kgan_fp32),
            _record("torch", "bfloat16", torch_bf16), _record("kgan", "bfloat16", kgan_bf16)]


class SummaryTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.speed = load_script(SCRIPT)

    def test_speedup_follows_the_measured_times(self):
        base = self.speed.summarize(_records())["stable"]["560"]
        slowed = self.speed.summarize(_records(torch_fp32=16.0, torch_bf16=12.0))["stable"]["560"]
        key = "kgan_bf16_speedup_over_torch_fastest"
        self.assertAllClose(base["ratios"][key], 6.0 / 4.0)
        self.assertAllClose(slowed["ratios"][key], 2 * base["ratios"][key])
        self.assertAllClose(base["ratios"]["kgan_bf16_over_fp32_speedup"], 7.0 / 4.0)

    def test_the_fastest_pytorch_mode_is_chosen_by_time(self):
        ratios = self.speed.summarize(_records(torch_fp32=3.0))["stable"]["560"]["ratios"]
        self.assertEqual(ratios["torch_fastest_mode"], "torch float32")
        self.assertAllClose(ratios["kgan_bf16_speedup_over_torch_fastest"], 3.0 / 4.0)

    def test_peak_share_uses_the_flops_and_the_same_process_peak(self):
        entry = self.speed.summarize(_records())["stable"]["560"]["kgan bfloat16"]
        # 1000 GFLOP in 4.2 s (median) against that process's bf16 conv peak of 200 GFLOP/s.
        self.assertAllClose(entry["ratio_to_conv_peak"], 1000.0 / 4.2 / 200.0)
        self.assertAllClose(entry["best_ratio_to_conv_peak"], 1000.0 / 4.0 / 200.0)
        torch_entry = self.speed.summarize(_records())["stable"]["560"]["torch bfloat16"]
        self.assertAllClose(torch_entry["achieved_gflops"], 1000.0 / 6.3)


@pytest.mark.slow
class QuickRunTest(tf.test.TestCase):

    def test_quick_run_with_a_slowed_peer(self):
        delay = 0.4
        with tempfile.TemporaryDirectory() as work:
            out = os.path.join(work, "report.json")
            proc = subprocess.run(
                [sys.executable, SCRIPT, "--quick", "--variants=stable", "--rounds=1",
                 "--repeats=1", f"--slow_torch_s={delay}", f"--work_dir={work}",
                 f"--output_json={out}"],
                cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            with open(out) as f:
                report = json.load(f)
        self.assertEqual([(r["impl"], r["precision"]) for r in report["records"]],
                         [("torch", "float32"), ("kgan", "float32"), ("torch", "bfloat16"),
                          ("kgan", "bfloat16")])
        self.assertEqual(sorted(report["summary"]["stable"]), ["48", "64"])
        for size, entries in report["summary"]["stable"].items():
            self.assertEqual(sorted(entries), ["kgan bfloat16", "kgan float32", "ratios",
                                               "torch bfloat16", "torch float32"])
            for key in ("torch float32", "torch bfloat16"):
                self.assertGreaterEqual(entries[key]["median_s"], delay)  # the slowed peer
            for key in ("kgan float32", "kgan bfloat16"):
                self.assertGreater(entries[key]["gflop"], 0)
                self.assertGreater(entries[key]["ratio_to_conv_peak"], 0)
                self.assertGreater(entries[key]["peak_rss_gib"], 0)
            # The ratio is the quotient of the recorded times, recomputed here.
            medians = {(r["impl"], r["precision"]): r["forward"][size]["median_s"]
                       for r in report["records"]}
            torch_fastest = min(medians["torch", "float32"], medians["torch", "bfloat16"])
            self.assertAllClose(entries["ratios"]["kgan_bf16_speedup_over_torch_fastest"],
                                torch_fastest / medians["kgan", "bfloat16"])
            self.assertGreater(entries["ratios"]["kgan_bf16_speedup_over_torch_fastest"],
                               delay / medians["kgan", "bfloat16"] * 0.99)
        e2e = report["summary"]["e2e"]
        self.assertEqual(sorted(e2e), ["bfloat16", "float32"])
        for item in e2e.values():
            self.assertGreater(item["photo_s"], 0)
            self.assertEqual(item["video"]["frames"], 3)
            self.assertGreater(item["video_fps"], 0)
        self.assertIn("| stable 64² | kgan bfloat16 ×1 |", proc.stdout)
        self.assertIn("the PyTorch network's fastest mode", proc.stdout)
        self.assertIn("frames/s", proc.stdout)


if __name__ == "__main__":
    tf.test.main()
