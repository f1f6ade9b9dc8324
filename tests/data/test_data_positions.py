"""Every training stream can start where a run stopped: ``start=n`` gives exactly the batches
an uninterrupted stream gives after ``n`` examples (images, order, crops, flips and
degradations), for each dataset builder a recipe trains on. A resumed run relies on it
(kgan.recipes.common.dataset_at, tests/cli/test_resume_state.py)."""

import numpy as np
import tensorflow as tf

from kgan.data import paired_dataset, restoration_dataset, unpaired_dataset
from kgan.data.colorize import colorization_dataset

BATCH = 2
SKIPPED = 3  # batches skipped; more than one pass over the few sample photos


def _batches(dataset, count):
    return [tuple(np.asarray(t) for t in batch) for batch in dataset.take(count)]


BUILDERS = {
    "unpaired": lambda **kw: unpaired_dataset(load_size=40, crop_size=32, **kw),
    "unpaired_serial": lambda **kw: unpaired_dataset(load_size=40, crop_size=32,
                                                     serial_batches=True, **kw),
    "paired": lambda **kw: paired_dataset(load_size=40, crop_size=32, **kw),
    "restoration": lambda **kw: restoration_dataset(crop_size=32, **kw),
    "colorization": lambda **kw: colorization_dataset(crop_size=32, **kw),
}


class StreamPositionTest(tf.test.TestCase):

    def test_start_continues_every_training_stream_exactly(self):
        for name, build in BUILDERS.items():
            with self.subTest(name):
                whole, _ = build(batch_size=BATCH, seed=7)
                expected = _batches(whole, SKIPPED + 2)[SKIPPED:]
                resumed, _ = build(batch_size=BATCH, seed=7, start=SKIPPED * BATCH)
                got = _batches(resumed, 2)
                for want, have in zip(expected, got):
                    for a, b in zip(want, have):
                        self.assertAllEqual(a, b)

    def test_a_stream_that_restarts_is_caught(self):
        # What resuming did before: the stream began again at its first example.
        whole, _ = unpaired_dataset(load_size=40, crop_size=32, batch_size=BATCH, seed=7)
        first, later = _batches(whole, SKIPPED + 1)[0], _batches(whole, SKIPPED + 1)[SKIPPED]
        self.assertGreater(np.abs(first[0] - later[0]).max(), 0.1)
