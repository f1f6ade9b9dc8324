"""``python -m kgan.translate``: translates images of any size with an exported generator, a
``.keras`` generator, a ``.tflite`` file, or straight from a training run.

Examples::

    python -m kgan.translate --model=saved_models/horse2zebra/AtoB --input=photos/ --output=out/
    python -m kgan.translate --model=saved_models/horse2zebra/AtoB/float16.tflite \\
        --input=horse.jpg --output=out/
    python -m kgan.translate --model=runs/quickstart/generators/generator.keras \\
        --input=photos/ --output=out/
    python -m kgan.translate --checkpoint_dir=runs/horse2zebra --direction=BtoA \\
        --input=zebras/ --output=out/ --tile=512
    python -m kgan.translate --model=runs/quickstart/generators/generator.keras \\
        --precision=bfloat16 --input=photos/ --output=out/

``--precision=bfloat16`` runs the generator's convolutions in bfloat16 (faster on CPUs with
AVX-512 BF16 or AMX; outputs within a few uint8 levels of float32, see kgan.serving.precision and
tests/serving/test_precision.py). An export directory is rebuilt from the ``.keras`` generator its manifest
names.

Outputs are PNG files named after the inputs (``horse.jpg`` -> ``out/horse.png``) plus an
``index.html`` page showing inputs and outputs side by side. Images too large to translate in
one piece (the model's self-attention memory, or a TFLite file's fixed size) go through
overlapping tiles automatically. Unreadable files, and files that fail, are skipped by name;
grayscale, palette, 16-bit and RGBA images are converted to RGB (alpha is dropped).
A folder is translated in a child process that is replaced when its memory has grown
``--max_memory_growth_mib`` (kgan.serving.worker; TensorFlow keeps memory per input shape), so a
folder of many sizes keeps a bounded footprint; ``--max_memory_growth_mib=0`` runs in this process.
``--size_buckets`` pads whole images up to a few sizes (kgan.serving.size_buckets) so such a folder
runs few shapes.
"""

import os
import time

from absl import flags, logging

from kgan.cli.common import model_or_run, nothing_produced, run_cli
from kgan.serving.inference import translate_images
from kgan.serving.loading import load_model
from kgan.serving.worker import WorkerTranslator


def define_flags():
    if "tile_overlap" in flags.FLAGS:
        return
    flags.DEFINE_string("model", None, "An export directory (python -m kgan.export), a "
                        "SavedModel directory, a .tflite or a .keras file.")
    flags.DEFINE_string("checkpoint_dir", None, "A training run directory; translates with its "
                        "generators/<direction>.keras instead of an export.")
    flags.DEFINE_string("direction", None, "Generator of --checkpoint_dir: AtoB, BtoA or "
                        "generator (default: the only one, else AtoB).")
    flags.DEFINE_string("input", None, "An image file or a folder of images.")
    flags.DEFINE_string("output", None, "Output folder (PNG files named after the inputs).")
    flags.DEFINE_integer("batch_size", 4, "Images (or tiles) per call.")
    flags.DEFINE_integer("tile", -1, "Tile side for large images: -1 chooses from the model "
                         "(self-attention memory; TFLite: its fixed size), 0 translates whole "
                         "images, N tiles images with a side above N.")
    flags.DEFINE_integer("tile_overlap", None, "Overlap of neighbouring tiles (default tile/4).")
    flags.DEFINE_enum("precision", "float32", ["float32", "bfloat16"], "Compute precision of "
                      "the generator (bfloat16: float32 weights, bf16 activations; not for "
                      ".tflite files).")
    flags.DEFINE_bool("html", True, "Write index.html with inputs and outputs side by side.")
    flags.DEFINE_bool("size_buckets", False, "Reflect-pad whole images up to a few size "
                      "buckets (at most 1/8 more per side) and crop back: a folder of many "
                      "sizes runs few shapes (fewer worker restarts, batches across sizes); "
                      "outputs change near the borders (instance-norm statistics).")
    flags.DEFINE_integer("max_memory_growth_mib", 2048, "Translate folders in a child process "
                         "that is replaced (the model reloaded) once its memory has grown this "
                         "many MiB: TensorFlow keeps memory per input shape, so folders of many "
                         "sizes would otherwise grow without bound. 0 translates in this "
                         "process.")
    flags.mark_flags_as_required(["input", "output"])


def run(f):
    start = time.time()
    existed = os.path.exists(f.output)
    # A single image has nothing to gain from a worker.
    growth_mib = f.max_memory_growth_mib if os.path.isdir(f.input) else 0
    translator = load_model(model_or_run(f.model, f.checkpoint_dir), f.direction, f.precision,
                            max_memory_growth_mib=growth_mib, log=logging.info)
    logging.info("Loaded the model in %.1f s.", time.time() - start)
    try:
        summary = translate_images(translator, f.input, f.output, batch_size=f.batch_size,
                                   tile=f.tile, overlap=f.tile_overlap, html=f.html,
                                   log=logging.info, size_buckets=f.size_buckets)
    finally:
        if isinstance(translator, WorkerTranslator):
            translator.close()
    if not summary["translated"]:
        raise nothing_produced("translated", summary["skipped"], f.input, f.output, existed)
    print(f"{summary['translated']} translated, {len(summary['skipped'])} skipped, "
          f"{summary['images_per_second']:.2f} images/s -> {f.output}")


def main(argv=None):
    run_cli("kgan.translate", run, define_flags, doc=__doc__, argv=argv)
