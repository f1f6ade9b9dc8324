"""Translators for tests/serving/test_worker.py that are cheap to build in a child process (no
TensorFlow import): each is made by a module-level factory the worker can pickle."""

import os

import numpy as np

from kgan.core.errors import ModelFileError


class FakeTranslator:
    """uint8 batch -> the batch + 1; grows ``grow_mib`` of resident memory per call, exits the
    process on a batch of height ``die_on``, and fails on heights ``value_error_on`` and
    ``memory_error_on``."""

    fixed_size, pixel_limit, multiple, precision = None, 1234, 4, "float32"

    def __init__(self, grow_mib=0, die_on=None, value_error_on=None, memory_error_on=None):
        self.grow_mib, self.die_on = grow_mib, die_on
        self.value_error_on, self.memory_error_on = value_error_on, memory_error_on
        self.kept = []

    def __call__(self, images):
        height = images.shape[1]
        if height == self.die_on:
            os._exit(9)
        if height == self.value_error_on:
            raise ValueError("a bad shape")
        if height == self.memory_error_on:
            raise MemoryError("out of memory")
        if self.grow_mib:
            self.kept.append(np.ones(self.grow_mib << 20, np.uint8))  # touched: resident
        return images + 1


def failing_load(path):
    raise ModelFileError(f"Could not load the generator {path}: not a model.")


def growing():
    return FakeTranslator(grow_mib=30)


def dying_on_13():
    return FakeTranslator(die_on=13)


def failing_on_5_and_7():
    return FakeTranslator(value_error_on=5, memory_error_on=7)


def dies_while_loading():
    os._exit(9)
