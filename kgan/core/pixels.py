"""The one uint8 <-> [-1, 1] pixel conversion pair, for TensorFlow tensors and numpy arrays
alike. Every kgan module converts through these (data pipelines, serving signatures, TFLite
runners, image grids, evaluation), so a change of convention happens in one place.

Export verification keeps its own numpy formula on purpose (kgan.exporting.verify): an independent
reference catches a bug here instead of agreeing with it.
"""

import numpy as np
import tensorflow as tf


def to_float(images):
    """uint8 (or float 0..255) pixels -> float32 in [-1, 1].

    Args:
        images: a tf.Tensor or a numpy array (any shape).

    Returns:
        The same kind (tensor or array), float32, clipped to [-1, 1].
    """
    if isinstance(images, np.ndarray):
        return np.clip(images.astype(np.float32) / 127.5 - 1.0, -1.0, 1.0)
    return tf.clip_by_value(tf.cast(images, tf.float32) / 127.5 - 1.0, -1.0, 1.0)


def to_uint8(images):
    """float pixels in [-1, 1] -> uint8 (rounded, clipped).

    Args:
        images: a tf.Tensor or a numpy array (any float dtype, bfloat16 included).

    Returns:
        The same kind (tensor or array), uint8.
    """
    if isinstance(images, np.ndarray):
        return np.clip(np.round((images.astype(np.float32) + 1.0) * 127.5), 0, 255).astype(
            np.uint8)
    images = tf.cast(images, tf.float32)
    return tf.cast(tf.clip_by_value(tf.round((images + 1.0) * 127.5), 0.0, 255.0), tf.uint8)
