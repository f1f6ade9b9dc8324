"""Tests for kgan.core.measure: CPU info, step timing, process memory, the CycleGAN step FLOPs."""

import numpy as np
import tensorflow as tf

from kgan.core import measure


class CpuTest(tf.test.TestCase):

    def test_cpu_info_lists_known_features_only(self):
        info = measure.cpu_info()
        self.assertGreaterEqual(info["cores"], 1)
        self.assertTrue(set(info["features"]) <= set(measure.CPU_FEATURES))


class TimingTest(tf.test.TestCase):

    def test_time_steps_counts_calls(self):
        calls = []
        timings = measure.time_steps(lambda: calls.append(1), steps=3, warmup=2)
        self.assertLen(calls, 5)
        self.assertLen(timings["step_times_s"], 3)
        self.assertLessEqual(timings["step_p10_s"], timings["step_p90_s"])
        self.assertLen(timings["step_cpu_s"], 3)
        self.assertGreaterEqual(timings["cpu_utilisation"], 0.0)
        self.assertNotIn("probe_values", timings)

    def test_time_steps_runs_the_probe_after_each_timed_step(self):
        events = []
        timings = measure.time_steps(lambda: events.append("step"), steps=3, warmup=1,
                                     probe=lambda: events.append("probe") or 7.0)
        self.assertEqual(events, ["step", "step", "probe", "step", "probe", "step", "probe"])
        self.assertEqual(timings["probe_values"], [7.0, 7.0, 7.0])


class MemoryTest(tf.test.TestCase):

    def test_peak_rss_covers_an_allocation_and_the_current_rss(self):
        measure.reset_peak_rss()
        before = measure.current_rss_gib()
        block = np.ones(64 * 2 ** 20 // 8)  # 64 MiB, touched
        self.assertGreaterEqual(measure.peak_rss_gib(), before + 0.05)
        self.assertGreaterEqual(measure.peak_rss_gib(), measure.current_rss_gib())
        del block


class StepFlopsTest(tf.test.TestCase):

    def test_cyclegan_step_flops_by_hand(self):
        # 3 x (6 or 4) generator forwards, 2 x 2 + 4 x 3 discriminator forwards.
        self.assertEqual(measure.cyclegan_step_flops(10, 1), 3 * 6 * 10 + 16)
        self.assertEqual(measure.cyclegan_step_flops(10, 1, identity=False), 3 * 4 * 10 + 16)


if __name__ == "__main__":
    tf.test.main()
