"""Regenerates the README's pictures (into ``runs/pictures/``; ``--docs=docs`` replaces the
tracked ones under ``docs/``).

- ``docs/quickstart_before_after.png``: the quickstart's restoration on the two held-out
  sample photos (degraded with ``downscale,jpeg`` at seed 0), 1:1 crops of degraded input,
  kgan output and the original, from the exported quickstart model;
- ``docs/colorize_before_after.png``: the colourisation quickstart on the held-out colour photos
  (coffee, chelsea): gray input | kgan output | original, whole photos scaled to one row height,
  colourised at render factor 16 (the recipe's evaluation size) by the exported model;
- ``docs/ablation_comparison.png``: a headless-Chromium screenshot of the CycleGAN loss
  ablation's comparison page (``benchmarks/cyclegan_ablation.py``).

Run after the quickstarts and the ablation (each picture is skipped when its input is missing)::

    python -m kgan.train --flagfile=configs/quickstart.cfg
    python -m kgan.train --flagfile=configs/colorize_quickstart.cfg
    python benchmarks/cyclegan_ablation.py --output_dir=runs/ablation
    python benchmarks/readme_pictures.py --docs=docs
"""

import argparse
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np
from PIL import Image, ImageDraw

CHROME_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
               "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--hide-scrollbars")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quickstart_model", default="saved_models/quickstart/generator")
    parser.add_argument("--colorize_model", default="saved_models/colorize_quickstart/generator")
    parser.add_argument("--colorize_render_factor", type=int, default=16)
    parser.add_argument("--colorize_height", type=int, default=128,
                        help="Row height of the colourisation picture (px).")
    parser.add_argument("--comparison", default="runs/ablation/comparison.html")
    # Not docs/ by default: a run must not overwrite the pictures git tracks unless asked.
    parser.add_argument("--docs", default="runs/pictures",
                        help="Where the pictures go; --docs=docs replaces the tracked ones.")
    parser.add_argument("--crop", type=int, default=160, help="Side of the 1:1 crops.")
    parser.add_argument("--window", default="1400,960", help="Screenshot window W,H (the images and metrics).")
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    return parser.parse_args(argv)


def _labelled(columns, labels, header=18):
    """Stacks uint8 images side by side with a caption above each."""
    height = max(c.shape[0] for c in columns)
    width = sum(c.shape[1] for c in columns) + 4 * (len(columns) - 1)
    canvas = Image.new("RGB", (width, height + header), "white")
    draw = ImageDraw.Draw(canvas)
    x = 0
    for column, label in zip(columns, labels):
        canvas.paste(Image.fromarray(column), (x, header))
        draw.text((x + 4, 3), label, fill="black")
        x += column.shape[1] + 4
    return np.asarray(canvas)


def quickstart_picture(model_path, output_path, crop):
    """Writes degraded | restored | original crops of the held-out photos; returns the path."""
    from kgan.data import crappify_array, sample_photos
    from kgan.serving.loading import load_model

    translator = load_model(model_path)
    rows = []
    for photo in sample_photos("test"):
        degraded = np.asarray(crappify_array(photo, "downscale,jpeg", seed=0))
        restored = translator(degraded[None])[0]
        height, width = photo.shape[:2]
        top, left = (height - crop) // 2, (width - crop) // 2
        box = (slice(top, top + crop), slice(left, left + crop))
        rows.append(_labelled([degraded[box], restored[box], photo[box]],
                              ["degraded input", "kgan quickstart", "original"]))
    picture = np.concatenate(rows, axis=0)
    Image.fromarray(picture).save(output_path, format="PNG", optimize=True)
    return output_path


def colorize_picture(model_path, output_path, render_factor, height):
    """Writes gray input | colourised | original rows of the held-out colour photos, each photo
    scaled to ``height`` px (bicubic, after colourising at full size); returns the path."""
    from kgan.colorization.colorizer import Colorizer
    from kgan.data.samples import sample_color_photos
    from kgan.metrics.color import gray_baseline
    from kgan.serving.loading import load_model

    colorizer = Colorizer(load_model(model_path), render_factor)
    rows = []
    for photo in sample_color_photos("test"):
        gray = gray_baseline(photo)
        columns = []
        for image in (gray, colorizer.colorize(gray), photo):
            width = round(image.shape[1] * height / image.shape[0])
            columns.append(np.asarray(Image.fromarray(image).resize((width, height),
                                                                    Image.BICUBIC)))
        rows.append(_labelled(columns, ["gray input", "kgan colorize quickstart",
                                        "original (held out)"]))
    width = max(r.shape[1] for r in rows)
    rows = [np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0)), constant_values=255)
            for r in rows]
    Image.fromarray(np.concatenate(rows, axis=0)).save(output_path, format="PNG", optimize=True)
    return output_path


def page_screenshot(page, output_path, chromium, window, max_width=1050):
    """Screenshots an HTML file with headless Chromium (fresh profile); returns the path."""
    profile = tempfile.mkdtemp(prefix="kgan_chrome_")
    try:
        command = [chromium, *CHROME_ARGS, f"--user-data-dir={profile}",
                   f"--window-size={window}", f"--screenshot={os.path.abspath(output_path)}",
                   "file://" + os.path.abspath(page)]
        subprocess.run(command, check=True, capture_output=True, timeout=120)
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    with Image.open(output_path) as image:  # smaller: the README shows it scaled anyway
        image = image.convert("RGB")
        if image.width > max_width:
            size = (max_width, round(image.height * max_width / image.width))
            image = image.resize(size, Image.LANCZOS)
        image.save(output_path, format="PNG", optimize=True)
    return output_path


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    os.makedirs(args.docs, exist_ok=True)
    if os.path.isdir(args.quickstart_model):
        path = quickstart_picture(args.quickstart_model,
                                  os.path.join(args.docs, "quickstart_before_after.png"),
                                  args.crop)
        print(f"wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)")
    else:
        print(f"skipped the quickstart picture: no {args.quickstart_model}")
    if os.path.exists(args.colorize_model):  # an export folder or a .keras file
        path = colorize_picture(args.colorize_model,
                                os.path.join(args.docs, "colorize_before_after.png"),
                                args.colorize_render_factor, args.colorize_height)
        print(f"wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)")
    else:
        print(f"skipped the colourisation picture: no {args.colorize_model}")
    if os.path.isfile(args.comparison):
        path = page_screenshot(args.comparison,
                               os.path.join(args.docs, "ablation_comparison.png"),
                               args.chromium, args.window)
        print(f"wrote {path} ({os.path.getsize(path) / 1e3:.0f} kB)")
    else:
        print(f"skipped the ablation picture: no {args.comparison}")


if __name__ == "__main__":
    main()
