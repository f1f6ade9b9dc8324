"""The local web demo: one Gradio tab per exported model, images in, before/after out.

``build_demo(model_paths)`` loads each export (a SavedModel export folder, a CycleGAN export
folder holding ``AtoB/`` and ``BtoA/``, or a ``.tflite`` file) with
``kgan.serving.loading.load_model``, reads its ``manifest.json`` (kgan.serving.exports), and
returns a ``gr.Blocks`` page. Users drop one or more images (any format and size
kgan.translate reads), see input and output at full resolution with a before/after slider, and
download the output PNGs. Large images go through tiles (``kgan.serving.tiling``); unreadable files
are reported in the page. Every DeOldify colouriser given (an export whose manifest says
``"pipeline": "deoldify"``, kgan.convert's output) gets its own tab, "DeOldify: <name>",
colourising with DeOldify's own pipeline at its manifest's render factor.

The model-handling functions (``demo_model``, ``translate_files``) need no Gradio and are
what the tests call directly. Called by ``kgan.cli.demo`` (``python -m kgan.demo``). Gradio is
the optional extra ``kgan[demo]``, imported lazily.
"""

import dataclasses
import functools
import os
import tempfile
import threading
import time

from absl import logging

from kgan.colorization.colorizer import Colorizer, default_render_factor
from kgan.core.errors import KganError
from kgan.data.images import ImageReadError, load_image, write_image
from kgan.serving import exports, runs
from kgan.serving.inference import translate_one
from kgan.serving.loading import load_model

DEOLDIFY = exports.DEOLDIFY_PIPELINE

DEFAULT_TILE = -1  # chosen from the model, as kgan.translate
KIND_LABELS = {"restore": "Restoration", "pix2pix": "pix2pix", "cycle_gan": "CycleGAN",
               "colorize": "Colourisation", "translation": "Translation"}
AUTO = "auto"
DIRECTION_LABELS = {"AtoB": "A → B", "BtoA": "B → A", "generator": "generator"}


class DemoDependencyError(KganError, ImportError):
    """Gradio (the ``demo`` extra) is not installed."""


class DemoModelError(KganError, FileNotFoundError):
    """A ``--model`` path that is not an export kgan can serve."""


def import_gradio():
    """Imports Gradio with analytics off, or raises a message naming the extra."""
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        import gradio
    except ImportError as error:
        raise DemoDependencyError('The demo needs Gradio: pip install -e ".[demo]" (or pip '
                                  'install gradio).') from error
    return gradio


# ----------------------------------------------------------------------------- models


@dataclasses.dataclass
class DemoModel:
    """One tab of the demo.

    Attributes:
        name: the tab title.
        path: the ``--model`` path.
        kind: ``cycle_gan``, ``restore``, ``pix2pix`` or ``translation`` (unknown).
        translators: ``{direction: translator}`` (``AtoB``/``BtoA`` or ``generator``).
        facts: ``{direction: [(label, text)]}`` shown in the page (manifest facts).
        render_factor: a colouriser's starting render factor: the one its manifest
            recommends, else DeOldify's for photos.
        pipeline: a colouriser's pre/post-processing (``deoldify`` or ``kgan``; from the
            manifest, as the models may run in worker processes).
    """

    name: str
    path: str
    kind: str
    translators: dict
    facts: dict
    render_factor: int = dataclasses.field(default_factory=default_render_factor)
    pipeline: str = "kgan"
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, repr=False)


def model_kind(path, exports, manifests):
    """What a model does: from its run's flags, else from its layout and network name."""
    folder = path if os.path.isdir(path) else os.path.dirname(path)
    kind = (runs.read_flags(folder) or runs.read_flags(os.path.dirname(os.path.normpath(folder)))
            ).get("model")
    if kind in KIND_LABELS:
        return kind
    if "AtoB" in exports or "BtoA" in exports:
        return "cycle_gan"
    if any("colorize_uint8" in m.get("signatures", {})
           or m.get("pipeline") == DEOLDIFY for m in manifests.values()):
        return "colorize"
    names = {m.get("model", {}).get("name", "") for m in manifests.values()}
    if any(name.startswith("restore") for name in names):
        return "restore"
    return "translation"


def _error_text(verification):
    if not verification:
        return "not verified"
    return (f"max {verification['max_abs_error']:.2g}, mean {verification['mean_abs_error']:.2g} "
            "in [-1, 1] units vs the Keras model")


def manifest_facts(export_path, manifest):
    """``[(label, text)]`` describing one export for the page."""
    model = manifest.get("model", {})
    facts = [("network", f"{model.get('name', '?')} ({model.get('parameters', 0):,} "
                         "parameters)" if model else "unknown (no manifest.json)")]
    if export_path.endswith(".tflite"):
        variant = os.path.splitext(os.path.basename(export_path))[0]
        entry = manifest.get("tflite", {}).get(variant, {})
        shape = entry.get("input", {}).get("shape")
        facts.append(("file", f"TFLite {variant}" + (f", fixed input {shape}" if shape else "")))
        facts.append(("measured export error", _error_text(entry.get("verification"))))
    elif manifest.get("pipeline") == DEOLDIFY:
        facts.append(("file", "SavedModel of a DeOldify colouriser, run with DeOldify's own "
                              "pre- and post-processing (its picture)"))
        facts.append(("render factor", f"{manifest.get('render_factor')} recommended"))
    elif "colorize_uint8" in manifest.get("signatures", {}):
        facts.append(("file", "SavedModel, signature colorize_uint8 (uint8 any size → "
                              "same size, the input's luma kept)"))
        if manifest.get("render_factor"):
            facts.append(("render factor", f"{manifest['render_factor']} recommended (the one "
                                           "it was scored at in training)"))
    else:
        facts.append(("file", "SavedModel, signature translate_uint8 (uint8 any size → "
                              "same size)"))
        signatures = manifest.get("signatures")
        if signatures:
            facts.append(("signatures", ", ".join(signatures)))
        facts.append(("measured export error",
                      _error_text(manifest.get("saved_model", {}).get("verification"))))
    if model:
        facts.append(("size multiple", f"{model.get('size_multiple')} (other sizes are "
                                       "reflect-padded and cropped back)"))
    versions = manifest.get("versions", {})
    if versions:
        facts.append(("exported with", f"kgan {versions.get('kgan')}, TensorFlow "
                                       f"{versions.get('tensorflow')}"))
    return facts


def demo_model(path, max_memory_growth_mib=0):
    """One tab of the demo: every generator behind a ``--model`` path, loaded with
    ``kgan.serving.loading.load_model``, and the facts its manifests give.

    Args:
        path: an export folder, a CycleGAN export folder, a SavedModel or a ``.tflite`` file.
        max_memory_growth_mib: above 0, each SavedModel generator runs in a worker process
            replaced once its memory has grown this much (kgan.serving.worker: uploads of many
            sizes would otherwise grow a long-running demo without bound).

    Returns:
        A ``DemoModel``.

    Raises:
        DemoModelError: not an export (the message names what is expected).
    """
    try:
        found = exports.find_exports(path)
    except FileNotFoundError as error:
        raise DemoModelError(str(error)) from error
    manifests = {d: exports.read_manifest(p) for d, p in found.items()}
    translators = {}
    for direction, export in found.items():
        try:
            translators[direction] = load_model(export, max_memory_growth_mib=max_memory_growth_mib,
                                                log=logging.info)
        except (FileNotFoundError, ValueError, OSError) as error:
            raise DemoModelError(f"--model={path}: {error}") from error
    kind = model_kind(path, found, manifests)
    base = os.path.basename(os.path.normpath(path))
    if base in DIRECTION_LABELS or base.isdigit():  # saved_models/NAME/generator -> NAME
        base = os.path.basename(os.path.dirname(os.path.abspath(path))) or base
    factors = [m["render_factor"] for m in manifests.values() if m.get("render_factor")]
    deoldify = any(m.get("pipeline") == DEOLDIFY for m in manifests.values())
    label = "DeOldify" if deoldify else KIND_LABELS[kind]
    return DemoModel(name=f"{label}: {base}", path=path, kind=kind,
                     translators=translators,
                     facts={d: manifest_facts(found[d], manifests[d]) for d in found},
                     render_factor=factors[0] if factors else default_render_factor(),
                     pipeline="deoldify" if deoldify else "kgan")


# ----------------------------------------------------------------------------- translation


def translate_array(translator, image, tile=DEFAULT_TILE):
    """Translates one uint8 (H, W, 3) image as ``kgan.translate`` does: whole, or through
    overlapping tiles when it is larger than ``tile`` (None or -1: chosen from the model's
    memory needs; a TFLite model's fixed size), retrying in tiles when memory runs out."""
    return translate_one(translator, image, tile=tile)[0]


def _safe_stem(path, used):
    stem = os.path.splitext(os.path.basename(path))[0]
    stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "image"
    while stem in used:
        stem += "_"
    used.add(stem)
    return stem


def colorize_array(translator, image, render_factor, pipeline="kgan"):
    """Colourises one uint8 image (kgan.colorization.colorizer: the model runs at 16 * render_factor
    px, its chroma is merged with the image's own full-resolution luma, or DeOldify's pipeline
    for ``pipeline="deoldify"``); ``render_factor`` may be ``"auto"``."""
    return Colorizer(translator, render_factor, pipeline=pipeline).colorize(image)


def translate_files(model, direction, paths, output_dir, tile=DEFAULT_TILE, render_factor=None):
    """Translates uploaded files into ``output_dir``.

    Args:
        model: a ``DemoModel``.
        direction: a key of ``model.translators``.
        paths: image file paths (any format ``kgan.data.images.load_image`` reads).
        output_dir: where ``<stem>_input.png`` (the decoded RGB input) and
            ``<stem>_output.png`` go.
        tile: tile side for large images.
        render_factor: colourisation models: 16 * N px, or ``"auto"`` (default:
            ``model.render_factor``).

    Returns:
        ``(results, errors)``: results are dicts with ``name``, ``input``, ``output`` (PNG
        paths), ``size`` ((H, W)) and ``seconds`` (translation time); errors are one-line
        messages naming the file (unreadable files, failed translations).
    """
    translator = model.translators[direction]
    os.makedirs(output_dir, exist_ok=True)
    results, errors, used = [], [], set()
    for path in paths:
        name = os.path.basename(path)
        try:
            image = load_image(path)
        except ImageReadError as error:
            errors.append(str(error).replace(path, name))
            continue
        start = time.perf_counter()
        try:
            with model.lock:  # TFLite interpreters are not thread-safe
                if model.kind == "colorize":
                    output = colorize_array(translator, image,
                                            render_factor or model.render_factor, model.pipeline)
                else:
                    output = translate_array(translator, image, tile)
        except Exception as error:  # noqa: BLE001 - reported in the page, logged in one line
            logging.warning("Translating %s failed: %s", name, error)
            errors.append(f"{name}: translation failed ({type(error).__name__}: {error})")
            continue
        seconds = time.perf_counter() - start
        stem = _safe_stem(path, used)
        result = {"name": name, "input": os.path.join(output_dir, stem + "_input.png"),
                  "output": os.path.join(output_dir, stem + "_output.png"),
                  "size": tuple(image.shape[:2]), "seconds": seconds}
        write_image(result["input"], image)
        write_image(result["output"], output)
        results.append(result)
    return results, errors


def summary_markdown(model, direction, results, errors):
    """The page's text under the images: what ran, the time per image, and any errors."""
    lines = [f"**Model** `{model.path}` ({DIRECTION_LABELS.get(direction, direction)})"]
    lines += [f"- {label}: {text}" for label, text in model.facts[direction]]
    verb = "colourised" if getattr(model, "kind", None) == "colorize" else "translated"
    if results:
        mean = sum(r["seconds"] for r in results) / len(results)
        lines.append(f"\n**{verb.capitalize()} {len(results)} image(s)**, {mean:.2f} s per "
                     "image:")
        lines += [f"- {r['name']}: {r['size'][1]}×{r['size'][0]}, {r['seconds']:.2f} s"
                  for r in results]
    if errors:
        lines.append(f"\n**{len(errors)} file(s) not {verb}:**")
        lines += [f"- ⚠ {message}" for message in errors]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- page


def _file_paths(files):
    if not files:
        return []
    files = files if isinstance(files, list) else [files]
    return [f if isinstance(f, str) else getattr(f, "name", str(f)) for f in files]


def _model_tab(gr, model, index, output_root, tile):
    """The widgets and events of one model's tab."""
    directions = list(model.translators)
    with gr.Row():
        with gr.Column(scale=1):
            files = gr.File(label="Images (one or more; any size)", file_count="multiple",
                            type="filepath", elem_id=f"kgan-upload-{index}")
            direction = gr.Radio([(DIRECTION_LABELS.get(d, d), d) for d in directions],
                                 value=directions[0], label="Direction",
                                 visible=len(directions) > 1)
            colour = model.kind == "colorize"
            factor = gr.Slider(4, 60, value=model.render_factor, step=1, visible=colour,
                               label="Render factor (the model runs at 16 x N px)",
                               elem_id=f"kgan-render-factor-{index}")
            auto = gr.Checkbox(False, label="auto (pick the factor per image)", visible=colour,
                               elem_id=f"kgan-auto-{index}")
            run = gr.Button("Colourise" if colour else "Translate", variant="primary",
                            elem_id=f"kgan-run-{index}")
            info = gr.Markdown(summary_markdown(model, directions[0], [], []),
                               elem_id=f"kgan-info-{index}")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Before / after (full resolution)", type="filepath",
                                    format="png", elem_id=f"kgan-slider-{index}",
                                    max_height=2000)
            gallery = gr.Gallery(label="Outputs (select one to compare)", columns=6,
                                 height=200, object_fit="contain", format="png", preview=False,
                                 elem_id=f"kgan-gallery-{index}")
            downloads = gr.File(label="Download the output PNGs", file_count="multiple",
                                interactive=False, elem_id=f"kgan-downloads-{index}")
    state = gr.State([])

    def translate(uploaded, chosen, render_factor=model.render_factor, use_auto=False):
        paths = _file_paths(uploaded)
        if not paths:
            return (None, [], None, summary_markdown(model, chosen, [], ["no file uploaded"]),
                    [])
        folder = tempfile.mkdtemp(prefix="run_", dir=output_root)
        results, errors = translate_files(model, chosen, paths, folder, tile,
                                          AUTO if use_auto else int(render_factor))
        pairs = [(r["input"], r["output"]) for r in results]
        return (pairs[0] if pairs else None,
                [(r["output"], r["name"]) for r in results],
                [r["output"] for r in results] or None,
                summary_markdown(model, chosen, results, errors), pairs)

    def select(pairs, event: gr.SelectData):
        return pairs[event.index] if pairs and event.index < len(pairs) else None

    def switch(uploaded, chosen, render_factor, use_auto):
        if not _file_paths(uploaded):  # nothing to redo yet: only show the new model facts
            return (gr.update(), gr.update(), gr.update(),
                    summary_markdown(model, chosen, [], []), gr.update())
        return translate(uploaded, chosen, render_factor, use_auto)

    outputs = [slider, gallery, downloads, info, state]
    inputs = [files, direction, factor, auto]
    files.upload(translate, inputs, outputs)
    run.click(translate, inputs, outputs)
    direction.change(switch, inputs, outputs)
    gallery.select(select, [state], [slider])


def build_demo(model_paths, tile=DEFAULT_TILE, title="kgan demo", output_root=None,
               max_memory_growth_mib=0):
    """Builds the demo page: one tab per model.

    Args:
        model_paths: ``--model`` paths (export folders, CycleGAN export folders with
            ``AtoB/``/``BtoA/``, SavedModel folders or ``.tflite`` files).
        tile: images with a side above this go through tiles (TFLite: its fixed size).
        title: the page title.
        output_root: where translated PNGs are written (default: a new temp folder).
        max_memory_growth_mib: see ``load_demo_model`` (0: the models run in this process).

    Returns:
        ``(blocks, output_root)``: the ``gr.Blocks`` page and the folder to allow serving.

    Raises:
        DemoModelError, DemoDependencyError: with the fix in the message.
    """
    if not model_paths:
        raise DemoModelError("Pass at least one --model=EXPORT (an export folder or a "
                             ".tflite file).")
    gr = import_gradio()
    models = [demo_model(path, max_memory_growth_mib) for path in model_paths]
    output_root = output_root or tempfile.mkdtemp(prefix="kgan_demo_")
    with gr.Blocks(title=title, analytics_enabled=False) as blocks:
        gr.Markdown(f"# {title}\nDrop images on a tab; the output appears next to the input "
                    "at full resolution. Everything runs on this machine.")
        with gr.Tabs():
            for index, model in enumerate(models):
                with gr.Tab(model.name, id=index):
                    _model_tab(gr, model, index, output_root, tile)
    return blocks, output_root


def launch(blocks, output_root, host="127.0.0.1", port=7860, share=False, block=True,
           log=None):
    """Serves the page on ``host:port`` (a public share link only with ``share=True``).

    Gradio's own start-up lines name ``launch(share=True)``, which a command-line user cannot
    set: without ``share`` kgan says where the page is and names ``--share`` instead; with it,
    Gradio prints the public link.
    """
    if not share:
        (log or functools.partial(print, flush=True))(
            f"kgan.demo: open http://{host}:{port} (Ctrl-C stops; --share also makes a public "
            "link)")
    return blocks.launch(server_name=host, server_port=port, share=share,
                         allowed_paths=[output_root], prevent_thread_lock=not block,
                         footer_links=[], quiet=not share)
