"""Where pretrained weights are looked for: the Keras cache (nothing is ever downloaded)."""

import os


def keras_cache_path(filename):
    """The path ``filename`` has in the Keras weights cache.

    Args:
        filename: a weights file name as ``keras.applications`` caches it.

    Returns:
        ``$KERAS_HOME/models/filename``, or ``~/.keras/models/filename`` when ``KERAS_HOME``
        is unset or empty (read at call time, so tests and users can point it elsewhere).
    """
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return os.path.join(home, "models", filename)
