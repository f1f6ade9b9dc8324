"""The ``Example:`` blocks of the public entry points people call from Python run as written
(doctest), in a fresh temporary folder, so the docstrings stay true."""

import doctest
import os
import tempfile

import tensorflow as tf

from kgan.colorization.colorizer import Colorizer
from kgan.exporting.export import export_generator
from kgan.models.frozen import inference_copy
from kgan.recipes import train
from kgan.serving.loading import load_model
from kgan.serving.translators import KerasTranslator

ENTRY_POINTS = (train, load_model, Colorizer, export_generator, KerasTranslator,
                inference_copy)


def run_example(entry_point, folder):
    """Runs ``entry_point``'s docstring examples in ``folder``; returns (failed, attempted)."""
    module = __import__(entry_point.__module__, fromlist=["_"])
    test = doctest.DocTestFinder(recurse=False).find(entry_point, globs=vars(module).copy())[0]
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    cwd = os.getcwd()
    os.chdir(folder)
    try:
        runner.run(test)
    finally:
        os.chdir(cwd)
    return runner.summarize(verbose=False)


class ExamplesTest(tf.test.TestCase):

    def test_every_public_entry_point_has_an_example_that_runs(self):
        for entry_point in ENTRY_POINTS:
            with self.subTest(entry_point=entry_point.__qualname__):
                self.assertIn("Example:", entry_point.__doc__)
                failed, attempted = run_example(entry_point, tempfile.mkdtemp())
                self.assertGreaterEqual(attempted, 3)
                self.assertEqual(failed, 0)

    def test_a_false_example_fails(self):
        def wrong():
            """Example:

            >>> 1 + 1
            3
            """
        wrong.__module__ = __name__
        failed, attempted = run_example(wrong, tempfile.mkdtemp())
        self.assertEqual((failed, attempted), (1, 1))
