"""Tests for benchmarks/nogan_speed.py (kgan's NoGAN phases against the PyTorch peer, issue 27):
the table's ratios come from the recorded times and kgan's FLOP count, runs already measured are
skipped (resume), and the impl order alternates. No torch and no process is needed: records are
made up; the PyTorch peer itself is only run by hand (benchmarks/peer_nogan_torch.py)."""

import json
import os
import tempfile

import pytest
import tensorflow as tf
from helpers import load_script

try:
    import torch
except ImportError:  # the peer's test needs torch; the table's do not
    torch = None

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "nogan_speed.py")
PEER = os.path.join(ROOT, "benchmarks", "peer_nogan_torch.py")


def _record(impl, precision, seconds, phase="pretrain_g", gflop=1000.0, peak=100.0):
    config = {"generator": "deoldify_artistic", "phase": phase, "crop_size": 128,
              "batch_size": 8, "precision": precision}
    tag = "bf16" if precision == "bfloat16" else "fp32"
    result = {"step_median_s": seconds, "step_min_s": 0.9 * seconds, "step_gflop": gflop,
              "peak_rss_gib": 3.0, "step_cpu_s": [2 * seconds, 1.8 * seconds],
              "cpu_utilisation": 0.95}
    report = {"peaks": {f"conv_{tag}_gflops": peak}, "machine": {
        "model": "test CPU", "cores": 2, "features": ["avx512_bf16"]}}
    if impl == "kgan":
        report["configs"] = [result]
    else:
        report["result"] = {**result, "step_gflop": 0.9 * gflop}  # its own count differs
    return {"impl": impl, "config": config, "report": report, "load_average_before": [1.0],
            "load_average_after": [2.5], "process_s": 1.0}


def _records(kgan_fp32=10.0, kgan_bf16=4.0, torch_fp32=12.0, torch_bf16=9.0):
    return [_record("kgan", "float32", kgan_fp32), _record("torch", "float32", torch_fp32),
            _record("kgan", "bfloat16", kgan_bf16), _record("torch", "bfloat16", torch_bf16)]


class SummaryTest(tf.test.TestCase):

    def setUp(self):
        super().setUp()
        self.speed = load_script(SCRIPT)

    def test_ratios_follow_the_times(self):
        summary = self.speed.summarize(_records())
        bf16 = summary[("deoldify_artistic", "pretrain_g", 128, 8, "bfloat16")]
        fp32 = summary[("deoldify_artistic", "pretrain_g", 128, 8, "float32")]
        self.assertAllClose(bf16["kgan_speedup"], 9.0 / 4.0)
        self.assertAllClose(fp32["kgan_speedup"], 12.0 / 10.0)
        self.assertAllClose(fp32["kgan_cpu_speedup"], 12.0 / 10.0)
        self.assertAllClose(fp32["kgan"]["cpu_s"], 1.9 * 10.0)
        self.assertAllClose(bf16["bf16_speedup"]["kgan"], 10.0 / 4.0)
        self.assertAllClose(bf16["bf16_speedup"]["torch"], 12.0 / 9.0)
        slowed = self.speed.summarize(_records(torch_bf16=18.0))
        self.assertAllClose(
            slowed[("deoldify_artistic", "pretrain_g", 128, 8, "bfloat16")]["kgan_speedup"],
            2 * bf16["kgan_speedup"])

    def test_peak_share_uses_kgans_flop_count_for_both(self):
        entry = self.speed.summarize(_records())[
            ("deoldify_artistic", "pretrain_g", 128, 8, "bfloat16")]
        self.assertAllClose(entry["kgan"]["ratio_to_conv_peak"], 1000.0 / 4.0 / 100.0)
        self.assertAllClose(entry["torch"]["ratio_to_conv_peak"], 1000.0 / 9.0 / 100.0)
        self.assertAllClose(entry["torch"]["own_step_gflop"], 900.0)
        # kgan's 1000 GFLOP at its 100 GFLOP/s peak take 10 s; torch takes 9 s.
        self.assertAllClose(entry["kgan_speedup_ceiling"], 0.9)
        fp32 = self.speed.summarize(_records())[
            ("deoldify_artistic", "pretrain_g", 128, 8, "float32")]
        self.assertAllClose(fp32["kgan_speedup_ceiling"], 1.2)

    def test_table(self):
        table = self.speed.format_table(self.speed.summarize(_records()),
                                        self.speed._machine(_records()))
        self.assertIn("test CPU", table)
        self.assertIn("| artistic | pretrain_g | 128², 8 | bfloat16 | 4.00 | 9.00 | 2.25× | "
                      "0.90× | 7.6 / 17.1 (2.25×) | 0.95 / 0.95 | 250% | 111% | 2.50× | 1.33× | "
                      "1000 (torch's count 900) | 3.0 / 3.0 | 2.5 |",
                      table)

    def test_resume_skips_measured_runs_and_alternates(self):
        args = self.speed.parse_args(["--output_dir=unused", "--phases=pretrain_g,gan",
                                      "--precisions=float32"])
        calls = []

        def fake_run(args, impl, config, path):
            calls.append((impl, config["phase"]))
            record = _record(impl, config["precision"], 1.0, phase=config["phase"])
            with open(path, "w") as f:
                json.dump(record, f)
            return record

        with tempfile.TemporaryDirectory() as folder:
            args.output_dir = folder
            original, self.speed.run_one = self.speed.run_one, fake_run
            try:
                self.speed.drive(args)
                self.assertEqual(calls, [("kgan", "pretrain_g"), ("torch", "pretrain_g"),
                                         ("torch", "gan"), ("kgan", "gan")])
                os.remove(os.path.join(folder, self.speed.run_name(
                    "torch", self.speed.configs(args)[1], 0)))
                calls.clear()
                self.speed.drive(args)
                self.assertEqual(calls, [("torch", "gan")])
            finally:
                self.speed.run_one = original
            self.assertLen(self.speed.load_records(folder), 4)
            self.assertLen(self.speed.load_records(folder, rounds=["0"]), 4)
            self.assertEmpty(self.speed.load_records(folder, rounds=["1"]))


@pytest.mark.slow
@pytest.mark.skipif(torch is None, reason="torch missing (the PyTorch peer)")
class PeerTest(tf.test.TestCase):
    """The peer at a tiny size: kgan's loss terms, kgan's FLOP formula, finite losses."""

    def test_each_phase_runs_with_kgans_terms(self):
        peer = load_script(PEER)
        expected = {
            "pretrain_g": {"content_pixel", "content_feat_block3_conv3",
                           "content_feat_block4_conv3", "content_feat_block5_conv3", "content"},
            "pretrain_d": {"critic", "accuracy"}}
        expected["gan"] = expected["pretrain_g"] | expected["pretrain_d"] | {"adversarial",
                                                                             "generator"}
        for phase in ("pretrain_g", "pretrain_d", "gan"):
            args = peer.parse_args([f"--phase={phase}", "--crop_size=64", "--batch_size=2",
                                    "--steps=1", "--warmup=1", "--width=8", "--no_peaks",
                                    "--precision=bfloat16"])
            result = peer.run(args)["result"]
            losses = result["first_step_losses"]
            self.assertEqual(set(losses), expected[phase], phase)
            self.assertTrue(all(abs(v) < 1e6 for v in losses.values()), losses)
            g, c, v = (result[k] for k in ("generator_forward_gflop", "critic_forward_gflop",
                                           "vgg_forward_gflop"))
            step = {"pretrain_g": 3 * g + 3 * v, "pretrain_d": g + 6 * c,
                    "gan": 4 * g + 8 * c + 3 * v}[phase]
            self.assertAllClose(result["step_gflop"], step)
            self.assertEqual(result["updates_per_step"], 2 if phase == "gan" else 1)


if __name__ == "__main__":
    tf.test.main()
