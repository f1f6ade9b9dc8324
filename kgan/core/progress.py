"""A one-line progress display with rate and ETA, rewritten in place on stderr (``\\r``), for
long loops over frames or images. Quiet when disabled.

Called by ``kgan.video.pipeline.process_video`` (and usable by any CLI that walks many items).
"""

import sys
import time


class Progress:
    """A one-line progress display with rate and ETA on stderr (``\\r`` updates)."""

    def __init__(self, total, done=0, enabled=True, stream=None, label="kgan.video.pipeline",
                 interval_s=0.5):
        """Args:
            total: number of items, or None when unknown (no percentage or ETA then).
            done: items finished before this run (a resumed job); the rate counts only new ones.
            enabled: False prints nothing.
            stream: where to write (stderr by default).
            label: the line's prefix.
            interval_s: least time between redraws.
        """
        self.total, self.done, self.enabled = total, done, enabled
        self.stream, self.label, self.interval_s = stream or sys.stderr, label, interval_s
        self._start_done, self._start = done, time.monotonic()
        self._last = 0.0

    def line(self):
        """The current progress text."""
        elapsed = time.monotonic() - self._start
        rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: frame {self.done}"
        if self.total:
            text += f"/{self.total} ({100.0 * self.done / self.total:.1f}%)"
        text += f", {rate:.2f} frames/s"
        if self.total and rate > 0:
            eta = max(0, self.total - self.done) / rate
            text += f", ETA {int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
        return text

    def update(self, count=1):
        """Counts ``count`` more finished items and redraws at most every ``interval_s``."""
        self.done += count
        now = time.monotonic()
        if self.enabled and now - self._last >= self.interval_s:
            self._last = now
            self.stream.write("\r" + self.line() + "   ")
            self.stream.flush()

    def finish(self):
        """Draws the final line and ends it with a newline."""
        if self.enabled:
            self.stream.write("\r" + self.line() + "   \n")
            self.stream.flush()
