"""Large images through a generator in overlapping tiles, cross-faded so no seams show, and the
automatic choice of when to tile: full-resolution self-attention needs (H·W/s²)² floats, so a
3000x2000 photo through the restoration UNet would need ~33 GiB in one piece.

Called by kgan.serving.inference (translate folders), the colorize and demo CLIs, and
kgan.exporting.export (which records a model's whole-image pixel limit in its manifest).
"""

import math

import numpy as np

from kgan.models import size_multiple
from kgan.models.layers import SelfAttention2D

# Memory one attention layer's score matrix may take (float32 logits + softmax).
ATTENTION_BUDGET_BYTES = 1 << 30
# Above this many pixels an image goes through tiles even without self-attention (a
# resnet_9blocks at ngf 64 keeps several 64-channel float32 maps of the full image alive).
CONV_PIXEL_LIMIT = 2048 * 2048
DEFAULT_TILE = 1024


def attention_strides(model):
    """The downsampling factors at which ``model``'s ``SelfAttention2D`` layers run.

    Args:
        model: a functional kgan generator.

    Returns:
        A list of ints (empty when the model has no self-attention).
    """
    import keras


    layers = [layer for layer in model.layers if isinstance(layer, SelfAttention2D)]
    if not layers:
        return []
    probe_side = max(size_multiple(model), 8) * 2
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    outputs = probe(np.zeros((1, probe_side, probe_side, 3), np.float32), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    return [max(1, probe_side // int(out.shape[1])) for out in outputs]


def whole_image_pixel_limit(model, attention_budget_bytes=ATTENTION_BUDGET_BYTES):
    """The largest H·W ``model`` translates in one piece within the memory budget.

    With self-attention at stride s the score matrix holds (H·W/s²)² floats, twice (logits and
    softmax): H·W <= s² · sqrt(budget / 8). Without it, ``CONV_PIXEL_LIMIT``.
    """
    strides = attention_strides(model)
    if not strides:
        return CONV_PIXEL_LIMIT
    stride = min(strides)
    return min(CONV_PIXEL_LIMIT, int(stride * stride * math.sqrt(attention_budget_bytes / 8)))


def tile_for_limit(pixel_limit, multiple=1):
    """A square tile side (a multiple of ``multiple``, at most ``DEFAULT_TILE``) whose area is
    within ``pixel_limit``."""
    side = min(DEFAULT_TILE, int(math.sqrt(pixel_limit)))
    return max(multiple, side // multiple * multiple)


def tile_starts(length, tile, overlap):
    """Start offsets of tiles of side ``tile`` covering ``length`` with at least ``overlap``."""
    if length <= tile:
        return [0]
    step = max(1, tile - overlap)
    starts = list(range(0, length - tile, step))
    return starts + [length - tile]


def feather(length, overlap):
    """1-D blending weights: linear ramps over ``overlap`` pixels at both ends, 1 inside."""
    ramp = max(1, overlap)
    positions = np.arange(length)
    return np.minimum(np.minimum(positions + 1, length - positions), ramp) / ramp


def translate_tiled(translator, image, tile, overlap=None, batch_size=4):
    """Translates one large image in overlapping ``tile`` x ``tile`` tiles, cross-fading the
    overlaps with linear (feathered) weights so that no seams show.

    The blend runs one row of tiles at a time: float32 sums are kept only for a band of
    ``tile`` rows, and rows no later tile touches are written to the uint8 result, so the extra
    memory is about 16 * tile * W bytes however tall the image (an 8000x6000 photo in 1024 px
    tiles: ~0.1 GB instead of 0.8 GB of full-size float32 sums).

    Args:
        translator: uint8 batch -> uint8 batch callable.
        image: uint8 (H, W, 3).
        tile: tile side in pixels.
        overlap: overlap between neighbouring tiles (default ``tile // 4``).
        batch_size: tiles per call.

    Returns:
        uint8 (H, W, 3).
    """
    overlap = tile // 4 if overlap is None else overlap
    if not 0 <= overlap < tile:
        raise ValueError(f"The tile overlap must be in [0, {tile}), got {overlap}.")
    height, width = image.shape[:2]
    tile_h, tile_w = min(tile, height), min(tile, width)
    weight = np.outer(feather(tile_h, overlap), feather(tile_w, overlap))[..., np.newaxis]
    weight = weight.astype(np.float32)
    result = np.empty((height, width, 3), np.uint8)
    total = np.zeros((tile_h, width, 3), np.float32)  # rows [top, top + tile_h) of the image
    weights = np.zeros((tile_h, width, 1), np.float32)
    top = 0
    xs = tile_starts(width, tile, overlap)
    for y in tile_starts(height, tile, overlap):
        if y > top:  # rows above y are final: no later tile reaches them
            shift = y - top
            _finish(result, top, total[:shift], weights[:shift])
            total[:tile_h - shift] = total[shift:]
            weights[:tile_h - shift] = weights[shift:]
            total[tile_h - shift:] = 0
            weights[tile_h - shift:] = 0
            top = y
        for i in range(0, len(xs), batch_size):
            chunk = xs[i:i + batch_size]
            tiles = np.stack([image[y:y + tile_h, x:x + tile_w] for x in chunk])
            for x, out in zip(chunk, translator(tiles)):
                total[:, x:x + tile_w] += out * weight
                weights[:, x:x + tile_w] += weight
    _finish(result, top, total[:height - top], weights[:height - top])
    return result


def _finish(result, top, total, weights):
    """Writes the blended rows ``total / weights`` into ``result`` from row ``top``."""
    rows = np.round(total / weights)
    result[top:top + len(rows)] = np.clip(rows, 0, 255).astype(np.uint8)
