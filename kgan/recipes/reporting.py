"""The picture report written at the end of every training run (``OUTPUT_DIR/report.html``):
held-out images at full size (input / output / target where there is one) through the trained
generators, the run's metrics (``evaluation.json``) and its loss curves (kgan.evaluation.report).

Called by kgan.recipes.train and kgan.cli.evaluate (``--report``).
"""

import json
import os

import numpy as np
from absl import logging

from kgan.core.pixels import to_float, to_uint8
from kgan.data import crappify_array, sample_mapping
from kgan.data.images import ImageReadError, list_images, load_image
from kgan.data.samples import TEST_PHOTOS, sample_photos
from kgan.evaluation import report
from kgan.models import is_colorization_model
from kgan.serving import runs
from kgan.serving.inference import translate_one
from kgan.serving.translators import KerasTranslator

EXAMPLES = 4


def _photos(config, split_folder):
    """Held-out photos: ``dataroot/<split_folder>`` (or ``dataroot`` itself), else the
    built-in held-out sample photos; ``[(name, uint8 image)]``."""

    if not config.dataroot:
        return list(zip(TEST_PHOTOS, sample_photos("test")))
    folder = os.path.join(config.dataroot, split_folder)
    folder = folder if os.path.isdir(folder) else config.dataroot
    photos = []
    for path in list_images(folder):
        try:
            photos.append((os.path.basename(path), load_image(path)))
        except ImageReadError:
            continue
        if len(photos) == EXAMPLES:
            break
    return photos


def held_out_pairs(config):
    """``{generator name: [(name, input uint8, target uint8 or None)]}`` for a run's report."""

    if config.model == "restore":
        return {"generator": [(name, crappify_array(photo, tuple(config.degradations),
                                                    seed=[config.seed or 0, i]), photo)
                              for i, (name, photo) in enumerate(_photos(config, "test"))]}
    if config.model == "colorize":
        from kgan.colorization.scoring import load_color_photos
        from kgan.data.samples import COLOR_TEST_PHOTOS
        from kgan.metrics.color import gray_baseline

        photos = load_color_photos(config.dataroot, EXAMPLES)
        names = COLOR_TEST_PHOTOS if not config.dataroot else [f"held-out {i + 1}"
                                                                 for i in range(len(photos))]
        return {"generator": [(n, gray_baseline(p), p) for n, p in zip(names, photos)]}
    if config.model == "cycle_gan" and not config.dataroot and not config.tfds_name:
        photos = _photos(config, "testA")
        mapped = [(name, to_uint8(np.asarray(sample_mapping(to_float(p))))) for name, p in photos]
        return {"AtoB": [(name, p, m) for (name, p), (_, m) in zip(photos, mapped)],
                "BtoA": [(name, m, p) for (name, p), (_, m) in zip(photos, mapped)]}
    if config.model == "cycle_gan" and config.dataroot:
        return {"AtoB": [(n, p, None) for n, p in _photos(config, "testA")],
                "BtoA": [(n, p, None) for n, p in _photos(config, "testB")]}
    if config.model == "pix2pix":
        from kgan.evaluation.evaluate import make_dataset

        pairs = []
        dataset = make_dataset("paired", config.dataroot, crop_size=config.crop_size,
                               direction=config.direction, max_images=EXAMPLES)
        for i, (inputs, targets) in enumerate(dataset.take(EXAMPLES)):
            pairs.append((f"held-out {i + 1}", to_uint8(inputs[0].numpy()),
                          to_uint8(targets[0].numpy())))
        return {"generator": pairs}
    return {}


def _outputs(generator, pairs):
    """Runs ``generator`` at full size (tiled when large, as kgan.translate) on each input."""

    examples = []
    translator = KerasTranslator(generator)
    if is_colorization_model(generator):
        from kgan.colorization.colorizer import Colorizer
        colorizer = Colorizer(generator)
        run = colorizer.colorize
    else:
        run = lambda image: translate_one(translator, image)[0]  # noqa: E731
    for name, image, target in pairs:
        examples.append((name, image, run(image), target))
    return examples


def examples(config, generators):
    """``[(name, input, output, target or None)]``: the run's held-out images through its
    generators (``AtoB: chelsea`` ... for CycleGAN)."""
    rows = []
    for direction, pairs in held_out_pairs(config).items():
        if direction in generators:
            prefix = "" if len(generators) == 1 else f"{direction}: "
            rows += [(prefix + name, *rest)
                     for name, *rest in _outputs(generators[direction], pairs)]
    return rows


def run_metrics(run_dir):
    """The metrics a run saved (``evaluation.json``), or None."""
    path = os.path.join(run_dir, "evaluation.json")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return json.load(handle)


def write_report(config, generators):
    """Writes ``config.output_dir/report.html`` for a finished run.

    Args:
        config: the run's ``TrainConfig``.
        generators: ``{name: keras.Model}`` as the recipe returned them.

    Returns:
        The page's path.
    """
    return report.write_run_report(config.output_dir, examples(config, generators),
                                   metrics=run_metrics(config.output_dir))


def write_report_safely(config, generators):
    """``write_report`` that never fails a finished run: a problem is one warning line."""
    try:
        return write_report(config, generators)
    except Exception as error:  # noqa: BLE001 - the run's checkpoints and generators are saved
        logging.warning("Could not write the run report: %s", error)
        return None


def generators_of_run(run_dir):
    """``{name: keras.Model}`` of a finished run's saved generators (kgan.serving.runs)."""
    return {name: runs.load_generator(path) for name, path in runs.find_generators(run_dir).items()}
