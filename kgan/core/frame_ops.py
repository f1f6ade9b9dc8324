"""Numpy operations on video frames shared by the temporal stabiliser and the video metrics:
BT.601 YUV conversion (the same matrix as ``tf.image.rgb_to_yuv``), motion between two luma
frames (scikit-image's iterative Lucas-Kanade optical flow or one global shift from phase
correlation), backward warping by a flow field, the forward-backward flow check that finds
occluded and newly revealed pixels, and resizing of float planes.

Called by ``kgan.video.stabilize`` and ``kgan.metrics.video``; needs numpy, scipy, scikit-image and
pillow (all kgan dependencies), not TensorFlow.
"""

import numpy as np
from PIL import Image
from scipy import ndimage

# RGB (0-1) -> YUV, rows are R, G, B: exactly tf.image.rgb_to_yuv's kernel (BT.601, Y in 0-1,
# U in about +-0.436, V in about +-0.615).
RGB_TO_YUV = np.array([[0.299, -0.14714119, 0.61497538],
                       [0.587, -0.28886916, -0.51496512],
                       [0.114, 0.43601035, -0.10001026]], np.float64)
YUV_TO_RGB = np.linalg.inv(RGB_TO_YUV)

MOTIONS = ("flow", "shift", "none")


def rgb_to_yuv(rgb):
    """RGB to BT.601 YUV.

    Args:
        rgb: HxWx3 uint8 (0-255) or float (0-1) array.

    Returns:
        HxWx3 float32 YUV, Y in [0, 1].
    """
    rgb = np.asarray(rgb)
    if rgb.dtype == np.uint8:
        rgb = rgb.astype(np.float32) / 255.0
    return (rgb.astype(np.float32) @ RGB_TO_YUV.astype(np.float32)).astype(np.float32)


def luma(rgb):
    """BT.601 luma Y in [0, 1] of an HxWx3 uint8 or float frame (HxW float32)."""
    return rgb_to_yuv(rgb)[..., 0]


def yuv_to_rgb(yuv):
    """BT.601 YUV to float RGB (not clipped): the inverse of ``rgb_to_yuv``."""
    return (np.asarray(yuv, np.float32) @ YUV_TO_RGB.astype(np.float32)).astype(np.float32)


def yuv_to_rgb_uint8(yuv):
    """YUV to uint8 RGB keeping Y: out-of-gamut pixels lose chroma, not luma.

    Clipping R, G and B separately would change Y where the chroma leaves the RGB cube, so each
    such pixel's (U, V) is scaled towards 0 just enough to land inside it; only the final
    rounding to uint8 then moves Y (by at most half a level).

    Args:
        yuv: HxWx3 float YUV with Y in [0, 1].

    Returns:
        HxWx3 uint8 RGB.
    """
    yuv = np.asarray(yuv, np.float32)
    y = np.clip(yuv[..., :1], 0.0, 1.0)
    chroma_rgb = yuv[..., 1:] @ YUV_TO_RGB[1:].astype(np.float32)  # RGB offsets from gray Y
    with np.errstate(divide="ignore", invalid="ignore"):
        room = np.where(chroma_rgb > 0, (1.0 - y) / chroma_rgb,
                        np.where(chroma_rgb < 0, y / -chroma_rgb, np.inf))
    scale = np.minimum(1.0, room.min(axis=-1, keepdims=True))
    rgb = y + scale * chroma_rgb
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def resize_plane(plane, height, width):
    """Bilinear resize of a float HxW or HxWxC array (PIL, box-filtered when shrinking)."""
    plane = np.asarray(plane, np.float32)
    if plane.shape[:2] == (height, width):
        return plane
    if plane.ndim == 3:
        return np.stack([resize_plane(plane[..., c], height, width)
                         for c in range(plane.shape[2])], axis=-1)
    image = Image.fromarray(plane, mode="F")
    return np.asarray(image.resize((width, height), Image.BILINEAR, reducing_gap=None),
                      np.float32)


def estimate_motion(reference, moving, method="flow", max_side=128):
    """Backward flow from ``reference`` (frame t) to ``moving`` (frame t-1 or t+1).

    The flow ``f`` satisfies ``moving(x + f(x)) ~ reference(x)``, so ``warp(moving, f)`` lines
    the moving frame up with the reference.

    Args:
        reference: HxW float luma.
        moving: HxW float luma of the same size.
        method: ``"flow"`` (``skimage.registration.optical_flow_ilk``, computed on a copy
            shrunk to ``max_side`` and scaled back), ``"shift"`` (one global translation from
            ``phase_cross_correlation``) or ``"none"`` (zero motion).
        max_side: longest side the optical flow is computed at (speed); None for full size.

    Returns:
        2xHxW float32 flow (row, column displacements in pixels).
    """
    from skimage.registration import optical_flow_ilk, phase_cross_correlation

    reference = np.asarray(reference, np.float32)
    moving = np.asarray(moving, np.float32)
    height, width = reference.shape
    if method == "none":
        return np.zeros((2, height, width), np.float32)
    if method == "shift":
        shift, _, _ = phase_cross_correlation(reference, moving, upsample_factor=4)
        flow = np.empty((2, height, width), np.float32)
        flow[0], flow[1] = -shift[0], -shift[1]
        return flow
    if method != "flow":
        raise ValueError(f"motion must be one of {MOTIONS}, not {method!r}")
    scale = 1.0
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
        small_h, small_w = max(2, round(height * scale)), max(2, round(width * scale))
        reference_small = resize_plane(reference, small_h, small_w)
        moving_small = resize_plane(moving, small_h, small_w)
    else:
        reference_small, moving_small = reference, moving
    small = optical_flow_ilk(reference_small, moving_small, radius=4, num_warp=3)
    if scale == 1.0:
        return small.astype(np.float32)
    flow = np.stack([resize_plane(small[0], height, width) * (height / small.shape[1]),
                     resize_plane(small[1], height, width) * (width / small.shape[2])])
    return flow.astype(np.float32)


def constant_flow(height, width, dy, dx):
    """A 2xHxW flow that is the same translation ``(dy, dx)`` everywhere."""
    flow = np.empty((2, height, width), np.float32)
    flow[0], flow[1] = dy, dx
    return flow


def warp(image, flow):
    """Backward warp: ``out(x) = image(x + flow(x))``, bilinear, plus where it is defined.

    Args:
        image: HxW or HxWxC float array.
        flow: 2xHxW flow from ``estimate_motion``.

    Returns:
        (warped image float32 of the same shape, HxW bool mask of pixels whose source lies
        inside the frame).
    """
    image = np.asarray(image, np.float32)
    height, width = image.shape[:2]
    rows, cols = np.meshgrid(np.arange(height, dtype=np.float32),
                             np.arange(width, dtype=np.float32), indexing="ij")
    src_r, src_c = rows + flow[0], cols + flow[1]
    valid = (src_r >= -1e-3) & (src_r <= height - 1 + 1e-3) & \
            (src_c >= -1e-3) & (src_c <= width - 1 + 1e-3)
    coords = np.stack([src_r, src_c])
    if image.ndim == 2:
        out = ndimage.map_coordinates(image, coords, order=1, mode="nearest")
    else:
        out = np.stack([ndimage.map_coordinates(image[..., c], coords, order=1, mode="nearest")
                        for c in range(image.shape[2])], axis=-1)
    return out.astype(np.float32), valid


def occlusion_mask(flow_fw, flow_bw):
    """Pixels of frame t whose flow to t+1 is consistent with the flow back (Sundaram et al.).

    Args:
        flow_fw: 2xHxW flow from t to t+1 (``warp(frame_{t+1}, flow_fw)`` ~ frame_t).
        flow_bw: 2xHxW flow from t+1 to t.

    Returns:
        HxW bool: True where |f_fw + f_bw(x + f_fw)|^2 < 0.01 (|f_fw|^2 + |f_bw(..)|^2) + 0.5.
    """
    bw_warped, _ = warp(np.moveaxis(flow_bw, 0, -1), flow_fw)
    bw_warped = np.moveaxis(bw_warped, -1, 0)
    gap = ((flow_fw + bw_warped) ** 2).sum(axis=0)
    scale = (flow_fw ** 2).sum(axis=0) + (bw_warped ** 2).sum(axis=0)
    return gap < 0.01 * scale + 0.5
