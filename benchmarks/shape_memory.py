"""Memory TensorFlow keeps per new input shape: translates a fixed size and a new size in
turn with a resnet_9blocks generator (ngf 64) and prints the RSS each new size adds.

Usage::

    python benchmarks/shape_memory.py --side=512 --shapes=12
    TF_ENABLE_ONEDNN_OPTS=0 python benchmarks/shape_memory.py --side=512   # oneDNN off

This is the measurement behind kgan.serving.worker (a translator in a process replaced when it
grows). Linux only (reads /proc).
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402

from kgan.core.measure import current_rss_gib  # noqa: E402
from kgan.models import resnet_generator  # noqa: E402
from kgan.serving.translators import KerasTranslator  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=256, help="the fixed image side")
    parser.add_argument("--shapes", type=int, default=12, help="new sizes to try")
    args = parser.parse_args()
    translator = KerasTranslator(resnet_generator(n_blocks=9, ngf=64))
    rng = np.random.default_rng(0)

    def run(height):
        translator(rng.integers(0, 256, (1, height, args.side, 3), dtype=np.uint8))

    def rss_mib():
        return current_rss_gib() * 1024

    for _ in range(2):
        run(args.side)
    start = previous = rss_mib()
    added = []
    for i in range(1, args.shapes + 1):
        run(args.side + 4 * i)  # a new size
        run(args.side)  # the fixed one again: its memory is already there
        current = rss_mib()
        added.append(current - previous)
        previous = current
    print(f"{args.shapes} new sizes around {args.side}x{args.side}: RSS {start:.0f} -> "
          f"{previous:.0f} MiB; per new size: median {np.median(added):.1f} MiB "
          f"(first {added[0]:.1f}, last {added[-1]:.1f})")


if __name__ == "__main__":
    main()
