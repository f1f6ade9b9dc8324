"""Tests for kgan.core.progress: the progress line's count, rate and ETA, and its quiet mode."""

import io

import tensorflow as tf

from kgan.core.progress import Progress


class ProgressTest(tf.test.TestCase):

    def test_progress_line_has_eta(self):
        stream = io.StringIO()
        bar = Progress(100, done=20, stream=stream, interval_s=0.0)
        bar._start -= 10.0  # 10 s for 40 frames: 4 frames/s, 40 left -> 10 s
        bar.update(40)
        self.assertIn("frame 60/100 (60.0%)", stream.getvalue())
        self.assertIn("4.00 frames/s", stream.getvalue())
        self.assertIn("ETA 0:00:10", stream.getvalue())
        self.assertTrue(stream.getvalue().startswith("\r"))
        quiet = io.StringIO()
        Progress(10, enabled=False, stream=quiet).update()
        self.assertEqual(quiet.getvalue(), "")

    def test_unknown_total_has_no_eta(self):
        stream = io.StringIO()
        bar = Progress(None, stream=stream, interval_s=0.0)
        bar.update(3)
        bar.finish()
        self.assertIn("frame 3,", stream.getvalue())
        self.assertNotIn("ETA", stream.getvalue())
        self.assertTrue(stream.getvalue().endswith("\n"))

    def test_lines_per_tenth_for_logs_through_the_callback(self):
        stream = io.StringIO()
        progress = Progress(None, stream=stream, label="kgan.colorize", item="image",
                            in_place=False)
        for done in range(1, 21):
            progress(done, 20, f"photo{done}.jpg")
        lines = stream.getvalue().splitlines()
        self.assertLen(lines, 11)  # the first item, then one per tenth; none rewritten
        self.assertNotIn("\r", stream.getvalue())
        self.assertTrue(lines[-1].startswith("kgan.colorize: image 20/20 (100.0%)"), lines[-1])
        self.assertIn("images/s", lines[-1])
        self.assertTrue(lines[-1].endswith("photo20.jpg"))


if __name__ == "__main__":
    tf.test.main()
