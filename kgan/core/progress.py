"""The one progress display of kgan's long loops over frames or images: count, rate and ETA on
stderr, redrawn in place (``\\r``) on a terminal or written as one line per tenth of the work
where lines must stay readable (logs, pipes). Quiet when disabled.

Called by ``kgan.video.pipeline.process_video`` (frames) and ``kgan.cli.colorize`` (images,
through ``kgan.colorization.colorizer.colorize_files``'s ``progress(done, total, name)``).
"""

import sys
import time


class Progress:
    """A progress display with rate and ETA.

    Args:
        total: number of items, or None when unknown (no percentage or ETA then).
        done: items finished before this run (a resumed job); the rate counts only new ones.
        enabled: False prints nothing.
        stream: where to write (stderr by default).
        label: the line's prefix.
        interval_s: least time between in-place redraws.
        item: what is counted (``frame`` -> "frame 3/10", "frames/s").
        in_place: redraw one line with ``\\r`` (True), or write a line per tenth of ``total``
            (False); None: in place.
    """

    def __init__(self, total, done=0, enabled=True, stream=None, label="kgan.video",
                 interval_s=0.5, item="frame", in_place=None):
        self.total, self.done, self.enabled = total, done, enabled
        self.stream, self.label, self.interval_s = stream or sys.stderr, label, interval_s
        self.item, self.in_place = item, in_place is None or in_place
        self._start_done, self._start = done, time.monotonic()
        self._last, self._last_tenth = 0.0, -1

    def line(self, name=""):
        """The current progress text (``name``: the item just finished, shown last)."""
        elapsed = time.monotonic() - self._start
        rate = (self.done - self._start_done) / elapsed if elapsed > 0 else 0.0
        text = f"{self.label}: {self.item} {self.done}"
        if self.total:
            text += f"/{self.total} ({100.0 * self.done / self.total:.1f}%)"
        text += f", {rate:.2f} {self.item}s/s"
        if self.total and rate > 0:
            eta = max(0, self.total - self.done) / rate
            text += f", ETA {int(eta // 3600)}:{int(eta % 3600 // 60):02d}:{int(eta % 60):02d}"
        return text + (f" {name[:40]}" if name else "")

    def update(self, count=1, name=""):
        """Counts ``count`` more finished items and redraws."""
        self.done += count
        self._draw(name)

    def __call__(self, done, total, name=""):
        """The ``progress(done, total, name)`` callback of loops that count for themselves."""
        self.done, self.total = done, total
        self._draw(name)
        if done == total and self.in_place:
            self.finish(name)

    def _draw(self, name):
        if not self.enabled:
            return
        if self.in_place:
            now = time.monotonic()
            if now - self._last >= self.interval_s:
                self._last = now
                self.stream.write("\r" + self.line(name) + "   ")
                self.stream.flush()
        elif self.total and self.done * 10 // self.total > self._last_tenth:
            self._last_tenth = self.done * 10 // self.total
            self.stream.write(self.line(name) + "\n")
            self.stream.flush()

    def finish(self, name=""):
        """Draws the final line and ends it with a newline (in place only)."""
        if self.enabled and self.in_place:
            self.stream.write("\r" + self.line(name) + "   \n")
            self.stream.flush()
