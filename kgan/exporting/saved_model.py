"""The SavedModel of a generator, written by ``keras.export.ExportArchive`` with kgan's
signatures: ``serving_default`` (float32), ``translate_uint8`` (uint8 of any size),
``translate_bytes`` (encoded images in, PNG out) and, for a colourisation model,
``colorize_uint8`` (kgan.exporting.colorize_signature).

Called by kgan.exporting.export, which verifies the result (kgan.exporting.verify).
"""

import keras
import tensorflow as tf

from kgan.exporting.colorize_signature import add_colorize_endpoint
from kgan.models import size_multiple
from kgan.serving.translators import make_translate_uint8


def _build_archive(model, multiple):
    """An ``ExportArchive`` holding ``model`` with the three serving signatures."""
    translate_uint8 = make_translate_uint8(model, multiple)

    def serving_default(images):
        return {"images": model(images, training=False)}

    def translate_uint8_endpoint(images):
        return {"images": translate_uint8(images)}

    def translate_bytes(image_bytes):
        def one(data):
            image = tf.io.decode_image(data, channels=3, expand_animations=False)
            image.set_shape([None, None, 3])
            return tf.io.encode_png(translate_uint8(image[tf.newaxis])[0])

        png = tf.map_fn(one, image_bytes, fn_output_signature=tf.TensorSpec([], tf.string))
        return {"png_bytes": png}

    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serving_default", serving_default,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32, name="images")])
    archive.add_endpoint(
        "translate_uint8", translate_uint8_endpoint,
        input_signature=[tf.TensorSpec((None, None, None, 3), tf.uint8, name="images")])
    archive.add_endpoint(
        "translate_bytes", translate_bytes,
        input_signature=[tf.TensorSpec((None,), tf.string, name="image_bytes")])
    return archive


def export_saved_model(model, saved_model_dir):
    """Writes ``model`` as a SavedModel with the ``serving_default``, ``translate_uint8`` and
    ``translate_bytes`` signatures, plus ``colorize_uint8`` for a colourisation model
    (``kgan.exporting.colorize_signature.add_colorize_endpoint``).

    Args:
        model: a kgan generator.
        saved_model_dir: the directory to write (must not exist or be empty).

    Returns:
        The signature descriptions recorded in the manifest.
    """
    multiple = size_multiple(model)
    archive = _build_archive(model, multiple)
    colorize = add_colorize_endpoint(archive, model, multiple)  # colourisation models only
    archive.write_out(saved_model_dir, verbose=False)
    signatures = {
        "serving_default": {
            "inputs": {"images": "float32 (N, H, W, 3) in [-1, 1]; H, W multiples of "
                                 f"{multiple}"},
            "outputs": {"images": "float32 (N, H, W, 3) in [-1, 1]"}},
        "translate_uint8": {
            "inputs": {"images": "uint8 (N, H, W, 3), any H, W"},
            "outputs": {"images": "uint8 (N, H, W, 3), same size"}},
        "translate_bytes": {
            "inputs": {"image_bytes": "string (N,): encoded JPEG/PNG/GIF/BMP, any sizes"},
            "outputs": {"png_bytes": "string (N,): encoded PNG, same sizes"}},
    }
    if colorize:
        signatures["colorize_uint8"] = colorize
    return signatures
