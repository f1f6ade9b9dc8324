"""``python -m kgan.demo --model=EXPORT [--model=EXPORT ...]``: a local web page (Gradio) to
try exported models on your own images: one tab per model, input and output side by side
with a before/after slider, output PNGs to download.

Serves on 127.0.0.1:7860 by default (``--host=0.0.0.0`` to reach it from other machines);
a public share link is made only with ``--share``. Needs the ``demo`` extra:
``pip install -e ".[demo]"``.

Examples::

    python -m kgan.demo --model=saved_models/quickstart/generator
    python -m kgan.demo --model=saved_models/horse2zebra --model=saved_models/x/float16.tflite
"""

import os

from absl import flags

from kgan.cli.common import run_cli


def define_flags():
    """Defines the demo's flags (idempotent)."""
    if "share" in flags.FLAGS:
        return
    flags.DEFINE_multi_string("model", None, "An export folder (python -m kgan.export; a "
                              "CycleGAN one with AtoB/ and BtoA/ gives both directions), a "
                              "SavedModel folder or a .tflite file. Repeat for more tabs.")
    flags.DEFINE_string("host", "127.0.0.1", "Address to serve on (0.0.0.0: every interface).")
    flags.DEFINE_integer("port", 7860, "Port to serve on.")
    flags.DEFINE_bool("share", False, "Also make a public gradio.live link (off: local only).")
    flags.DEFINE_integer("tile", -1, "Tile side for large images: -1 chooses from the model "
                         "(self-attention memory; TFLite: its fixed size), N tiles images with "
                         "a side above N.")
    flags.DEFINE_string("title", "kgan demo", "Page title.")
    flags.DEFINE_integer("max_memory_growth_mib", 2048, "Run each SavedModel generator in a "
                         "worker process replaced once its memory has grown this many MiB "
                         "(TensorFlow keeps memory per input size); 0 runs them in this "
                         "process.")


def run(flag_values):
    """Loads the models and serves the page until interrupted."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    from kgan.cli import demo_page as demo_app

    blocks, output_root = demo_app.build_demo(
        flag_values.model or [], tile=flag_values.tile, title=flag_values.title,
        max_memory_growth_mib=flag_values.max_memory_growth_mib)
    demo_app.launch(blocks, output_root, host=flag_values.host, port=flag_values.port,
                    share=flag_values.share)


def main(argv=None):
    run_cli("kgan.demo", run, define_flags, doc=__doc__, argv=argv)
