"""pytest set-up for the suite: tests live in folders mirroring kgan's packages
(``tests/<package>/test_*.py``) and share ``tests/helpers.py``; pytest puts this folder on
``sys.path`` because this file is here, so ``from helpers import ...`` works from every folder.

``tf.test.TestCase`` inherits TensorFlow's deprecated ``test_session`` context manager, which
pytest collects as a test and reports as skipped ("Not a test."): those items are dropped so
that the skips pytest reports are real ones.
"""


def pytest_collection_modifyitems(config, items):
    items[:] = [item for item in items if item.name != "test_session"]
