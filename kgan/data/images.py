"""THE image reader of kgan: listing image files, decoding any image file to uint8 RGB (the
same decoding for training, inference and evaluation: 16-bit scaled to 8 bits, palette, gray and
RGBA converted, EXIF orientation applied, first frame of an animation), reading sizes from
headers, and writing PNGs atomically. Hostile files are refused before decoding: a declared
size above ``MAX_PIXELS`` (a decompression bomb: a few-kB PNG claiming 20000x12000) is never
decoded, only the image formats kgan reads are opened (no EPS/PostScript, which would run
Ghostscript), and broken or looping symlinks are listed so that they are skipped by name.

Called by kgan.data (training pipelines), kgan.serving.inference and the CLIs (translate, colorize,
evaluate, crappify, demo) and kgan.exporting.export (verification images). Depends on Pillow and
numpy only.
"""

import concurrent.futures
import os
import re

import numpy as np
from absl import logging
from PIL import Image, ImageOps

from kgan.core.atomic import atomic_path
from kgan.core.errors import KganError, UsageError

# The most pixels kgan decodes from one file (Pillow's own warning threshold, about 89 Mpx:
# a 100-megapixel camera still fits below twice this; 0.27 GB as uint8 RGB). Above it a file is
# refused from its header alone.
MAX_PIXELS = int(Image.MAX_IMAGE_PIXELS or 89_478_485)
# The formats Pillow may open, whatever the file name says.
FORMATS = ("JPEG", "MPO", "PNG", "PPM", "BMP", "DIB", "GIF", "TIFF", "WEBP")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".gif", ".tif", ".tiff", ".webp")
_TRANSPOSED_ORIENTATIONS = (5, 6, 7, 8)  # EXIF orientations that swap height and width


class DataError(KganError, ValueError):
    """A data problem the user can fix (missing folder, no readable image, bad option)."""


class ImageNotFoundError(DataError, FileNotFoundError):
    """An image file or folder that does not exist, or a folder without image files."""


class ImageReadError(DataError):
    """A file that is not a readable image (truncated, not an image, too large to decode)."""


def list_images(path):
    """Lists the image files at ``path``: the file itself, or the image files directly inside a
    folder (by extension, case-insensitive, sorted, not recursive).

    Args:
        path: an image file or a folder.

    Returns:
        A list of paths (empty for a folder without image files).

    Raises:
        ImageNotFoundError: ``path`` does not exist.
    """
    if os.path.isfile(path):
        return [path]
    if not os.path.isdir(path):
        raise ImageNotFoundError(f"{path} does not exist; pass an image file or a folder.")
    names = sorted(n for n in os.listdir(path)
                   if n.lower().endswith(IMAGE_EXTENSIONS) and _listable(os.path.join(path, n)))
    return [os.path.join(path, n) for n in names]


def _listable(path):
    """A regular file, or a symlink that does not resolve (a loop or a dangling link: listed so
    that the reader skips it by name). Folders, FIFOs and devices are never listed (reading a
    FIFO would block)."""
    return os.path.isfile(path) or (os.path.islink(path) and not os.path.exists(path))


def display_name(path):
    """The file name of ``path`` safe to print on one log line (control characters such as
    newlines or terminal escapes shown as ``\\n``, ``\\x1b``)."""
    name = os.path.basename(path)
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in name)


def _available_formats():
    """``FORMATS`` that this Pillow can open, with every plugin registered first (Pillow raises
    a KeyError for a listed format whose plugin is not registered yet)."""
    Image.init()
    return [name for name in FORMATS if name in Image.OPEN]


def _open(path):
    """Opens ``path`` with Pillow (kgan's formats only) and refuses a decompression bomb from
    its declared size, before anything is decoded."""
    try:
        image = Image.open(path, formats=_available_formats())
    except Image.DecompressionBombError as error:  # above twice Pillow's limit: its own check
        pixels = re.search(r"\((\d+) pixels\)", str(error))
        declared = f"of {int(pixels.group(1)) / 1e6:.0f} Mpx" if pixels else None
        raise _too_large(path, declared, raisable=False) from error
    width, height = image.size
    if width * height > MAX_PIXELS:
        image.close()
        raise _too_large(path, f"{width}x{height} ({width * height / 1e6:.0f} Mpx)")
    return image


def _too_large(path, declared, raisable=True):
    """The error for a file whose header declares too many pixels (``declared``: words after
    "declared size", or None); ``raisable``: whether raising ``MAX_PIXELS`` would let it be read
    (not above twice Pillow's own limit)."""
    size = f"declared size {declared}" if declared else "declared size"
    hint = " Set kgan.data.images.MAX_PIXELS higher to read it." if raisable else ""
    return ImageReadError(f"{path}: {size} is above kgan's limit of {MAX_PIXELS / 1e6:.0f} Mpx "
                          f"(a decompression bomb?); not decoded.{hint}")


def _to_uint8_rgb(image):
    """Converts any Pillow image to an RGB uint8 array (16-bit scaled, alpha dropped)."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if image.mode.startswith("I;16") or array.max(initial=0) > 255:
            array = array / 257.0  # 16-bit range 0..65535 -> 0..255
        elif image.mode == "F" and array.max(initial=0) <= 1.0:
            array = array * 255.0
        array = np.clip(np.round(array), 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=-1)
    if image.mode != "RGB":
        # Palette, L, LA, RGBA, CMYK, YCbCr, 1: the reference's .convert("RGB") (alpha dropped).
        image = image.convert("RGB")
    return np.asarray(image, dtype=np.uint8)


def load_image(path):
    """Decodes one image file to RGB uint8.

    Grayscale becomes 3-channel gray, alpha is dropped, 16-bit samples are scaled to 8 bits,
    animations give their first frame, and EXIF orientation is applied.

    Args:
        path: an image file (JPEG, PNG, BMP, GIF, PPM, TIFF, WebP).

    Returns:
        A ``uint8`` array of shape ``(height, width, 3)``.

    Raises:
        ImageReadError: the file is missing, truncated, not an image, or a decompression bomb
            (more pixels than Pillow's ``Image.MAX_IMAGE_PIXELS`` allows).
    """
    return load_image_with_alpha(path)[0]


def load_image_with_alpha(path):
    """Decodes one image file to RGB uint8 plus its alpha channel, when it has one.

    Args:
        path: an image file.

    Returns:
        ``(rgb, alpha)``: uint8 ``(h, w, 3)`` and uint8 ``(h, w)`` or None.

    Raises:
        ImageReadError: as ``load_image``.
    """
    try:
        with _open(path) as image:
            image.load()
            try:
                image = ImageOps.exif_transpose(image)
            except Exception:  # A broken EXIF block should not reject good pixels.
                pass
            alpha = None
            if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P"
                                                     and "transparency" in image.info):
                alpha = np.asarray(image.convert("RGBA"), np.uint8)[..., 3].copy()
            array = _to_uint8_rgb(image)
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from error
    if array.ndim != 3 or array.shape[-1] != 3 or min(array.shape[:2]) < 1:
        raise ImageReadError(f"{path}: unexpected decoded shape {array.shape}")
    return np.ascontiguousarray(array), alpha


def image_size(path):
    """(height, width) of an image file from its header (after EXIF rotation), without decoding.

    Raises:
        ImageReadError: when the header cannot be read.
    """
    try:
        with _open(path) as image:
            width, height = image.size
            if image.getexif().get(0x0112) in _TRANSPOSED_ORIENTATIONS:
                height, width = width, height
            return height, width
    except ImageReadError:
        raise
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as error:
        raise ImageReadError(f"{path}: not a readable image ({error})") from error


def write_image(path, image):
    """THE image writer: uint8 (H, W, 3) or (H, W, 4) ``image`` to ``path``, atomically
    (temporary name, then rename; a full disk raises ``kgan.core.atomic.DiskFullError``),
    creating the folder. ``.jpg``/``.jpeg`` paths get JPEG at quality 95 (alpha dropped), any
    other path PNG.

    Raises:
        ValueError: ``image`` is not a uint8 (H, W, 3 or 4) array.
    """
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[-1] not in (3, 4):
        raise ValueError(f"Images are written from uint8 (H, W, 3 or 4) arrays; got "
                         f"{image.dtype} {image.shape}.")
    jpeg = path.lower().endswith((".jpg", ".jpeg"))
    with atomic_path(path) as partial:
        if jpeg:
            Image.fromarray(image[..., :3]).save(partial, format="JPEG", quality=95)
        else:
            Image.fromarray(image).save(partial, format="PNG")


def output_names(paths, extension="png"):
    """Maps input paths to output file names keeping the stems (``a.jpg`` -> ``a.png``); inputs
    sharing a stem keep their extension too (``a.jpg`` -> ``a_jpg.png``)."""
    stems = [os.path.splitext(os.path.basename(p))[0] for p in paths]
    names = {}
    for path, stem in zip(paths, stems):
        if stems.count(stem) > 1:
            stem = f"{stem}_{os.path.splitext(path)[1].lstrip('.').lower()}"
        names[path] = f"{stem}.{extension}"
    return names


def plan_outputs(input_path, output_dir, extension="png"):
    """The one plan of a file-or-folder command's outputs: the input images, each with its
    output path in ``output_dir`` (created).

    Args:
        input_path: an image file or a folder of images (not recursive).
        output_dir: where the outputs go; refused when it is the input folder.
        extension: the outputs' file extension (``png`` or ``jpg``).

    Returns:
        ``{input path: output path}`` in ``list_images`` order.

    Raises:
        ImageNotFoundError: no image files.
        UsageError: ``output_dir`` is the input folder (outputs could overwrite inputs).
    """
    paths = list_images(input_path)
    if not paths:
        raise ImageNotFoundError(f"{input_path} holds no image files; pass an image file or a "
                                 "folder of JPEG/PNG/BMP/GIF/TIFF/WebP images.")
    input_folder = input_path if os.path.isdir(input_path) else os.path.dirname(input_path)
    if os.path.realpath(output_dir) == os.path.realpath(input_folder or "."):
        raise UsageError(f"--output {output_dir} is the input folder; outputs could overwrite "
                         "inputs. Choose another --output folder.")
    os.makedirs(output_dir, exist_ok=True)
    names = output_names(paths, extension)
    return {path: os.path.join(output_dir, names[path]) for path in paths}


def try_load(path):
    """``load_image`` that never raises: ``(array, None)`` or ``(None, reason)``."""
    try:
        return load_image(path), None
    except ImageReadError as error:  # its message starts with the path
        return None, str(error).removeprefix(f"{path}: ")
    except Exception as error:  # Any decoding failure means "skip this file".
        return None, f"{type(error).__name__}: {error}"


def decode_files(paths, num_threads=None):
    """Decodes files in parallel threads, never raising for a bad file.

    Args:
        paths: file paths.
        num_threads: worker threads (default: 2 x CPU count, at most 16).

    Returns:
        A list with, for each path, ``(array, None)`` or ``(None, error_message)``.
    """
    num_threads = num_threads or min(16, 2 * (os.cpu_count() or 1))
    if len(paths) <= 1:
        return [try_load(p) for p in paths]
    with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
        return list(pool.map(try_load, paths))


def log_skipped(folder, bad):
    if bad:
        examples = "; ".join(f"{display_name(p)} ({e})" for p, e in bad[:3])
        logging.warning("Skipped %d unreadable file(s) in %s: %s%s", len(bad), folder, examples,
                        " ..." if len(bad) > 3 else "")
