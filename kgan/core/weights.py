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


def resolve_weights_file(weights, filename, error, imagenet_message, path_message):
    """Resolves an ImageNet-weights option (``--vgg_weights``, ``--inception_weights``,
    ``--encoder_weights``) to a file that exists, never downloading.

    Args:
        weights: ``imagenet`` (the Keras cache file ``filename``), a path to a weights file, or
            ``none`` / ``""`` / None (random weights: returns None; callers warn as they see fit).
        filename: the file ``keras.applications`` caches for these weights.
        error: the exception class to raise (a ``KganError`` subclass).
        imagenet_message, path_message: messages for a missing cache file / a missing path;
            ``str.format`` fields ``{path}``, ``{folder}``, ``{filename}``, ``{weights}`` and
            ``{cache}`` (the cache path).

    Returns:
        The file path, or None.

    Raises:
        ``error``: when the file does not exist.
    """
    if weights is None or str(weights).lower() in ("none", ""):
        return None
    cache = keras_cache_path(filename)
    path = cache if weights == "imagenet" else os.path.expanduser(str(weights))
    if not os.path.isfile(path):
        message = imagenet_message if weights == "imagenet" else path_message
        raise error(message.format(path=path, folder=os.path.dirname(cache),
                                   filename=filename, weights=weights, cache=cache))
    return path
