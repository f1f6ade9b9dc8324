"""Picture reports of training runs: ``RUN/report.html`` with held-out images at full size,
the metrics table and the loss curves, and one page comparing several runs side by side.

Everything is static files (PNG + HTML with relative links): no TensorBoard server. The loss
curves are read from the run's TensorBoard event files (``read_scalars``) and plotted with
matplotlib's Agg backend, steps on the x axis.

Called by ``kgan.train`` at the end of a run, by ``kgan.evaluate --report`` / ``--runs``, and
by ``benchmarks/cyclegan_ablation.py``::

    examples = held_out_examples(generator, dataset, n=4)
    write_run_report("runs/x", examples, metrics=evaluate_results)
    write_comparison_report("runs/compare.html", [RunSummary("a", "runs/a", examples_a, m_a),
                                                  RunSummary("b", "runs/b", examples_b, m_b)])
"""

import dataclasses
import html
import os

import numpy as np

from kgan.core.atomic import write_text
from kgan.data.images import write_image
from kgan.evaluation.curves import (
    EVENT_PATTERN,
    plot_curves,
    plot_or_explain,
    read_scalars,
)
from kgan.evaluation.evaluate import run_generator

__all__ = ["EVENT_PATTERN", "RunSummary", "held_out_examples", "plot_curves", "read_scalars",
           "write_comparison_report", "write_run_report"]


@dataclasses.dataclass
class RunSummary:
    """One column of a comparison page.

    Attributes:
        name: the column title.
        run_dir: the run folder (its TensorBoard logs give the curves).
        examples: ``[(name, input_u8, output_u8, target_u8 | None)]``, the same held-out
            images (same names, same order) for every run of a page.
        metrics: a metrics dict as ``write_run_report`` takes, or None.
    """

    name: str
    run_dir: str
    examples: list
    metrics: dict = None


def _slug(text):
    """A file-name-safe version of an example name."""
    safe = "".join(c if c.isalnum() or c in "-_" else "_" for c in text)
    return safe.strip("_") or "image"


def _save_examples(examples, folder, prefix=""):
    """Writes each example's images as PNGs; returns rows of {role: file path}."""
    rows, used = [], set()
    for name, *images in examples:
        slug = _slug(prefix + name)
        while slug in used:
            slug += "_"
        used.add(slug)
        row = {"name": name}
        for role, image in zip(("input", "output", "target"), images):
            if image is not None:
                row[role] = os.path.join(folder, f"{slug}_{role}.png")
                write_image(row[role], image)
        rows.append(row)
    return rows


# ----------------------------------------------------------------------------- metrics


def _format(value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        return html.escape(str(value))
    value = float(value)
    if value == 0 or 1e-3 <= abs(value) < 1e5:
        return f"{value:.4g}" if abs(value) < 1 else f"{value:.2f}"
    return f"{value:.3g}"


def metrics_rows(metrics):
    """Flattens a metrics dict into (row name, {column: value}) pairs.

    ``kgan.evaluation.evaluate`` results (``{"model": {"psnr": ..}, "degraded_input": {...}, ...}``)
    give one row per method; their scalar entries (``num_images``, ``bicubic_factor``) are
    settings, not a method, and give no row. A plain ``{name: number}`` dict gives one ``""``
    row.
    """
    rows, plain = [], {}
    for key, value in (metrics or {}).items():
        if isinstance(value, dict):
            rows.append((str(key), {k: v for k, v in value.items()
                                    if not isinstance(v, (dict, list))}))
        elif isinstance(value, (int, float, np.floating, np.integer)):
            plain[str(key)] = value
    if plain and not rows:
        rows.append(("", plain))
    return rows


def metrics_table_html(named_metrics):
    """An HTML table of ``[(label, metrics dict)]``: one row per (label, method)."""
    rows = [(label, method, values) for label, metrics in named_metrics
            for method, values in metrics_rows(metrics)]
    if not rows:
        return "<p>No metrics.</p>"
    columns = list(dict.fromkeys(c for _, _, values in rows for c in values))
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    lines = [f"<table class='metrics'><tr><th>run</th><th>method</th>{head}</tr>"]
    for label, method, values in rows:
        cells = "".join(f"<td>{_format(values[c]) if c in values else ''}</td>"
                        for c in columns)
        lines.append(f"<tr><td>{html.escape(label)}</td><td>{html.escape(method)}</td>"
                     f"{cells}</tr>")
    lines.append("</table>")
    return "\n".join(lines)


# ----------------------------------------------------------------------------- pages

_STYLE = ("body{font-family:sans-serif;margin:16px} table{border-collapse:collapse}"
          "td,th{border:1px solid #ccc;padding:4px 8px;vertical-align:top;text-align:center}"
          "table.metrics td{text-align:right;font-variant-numeric:tabular-nums}"
          "img.full{max-width:none;image-rendering:pixelated}"
          "img.fit{width:100%;height:auto} .scroll{overflow-x:auto;white-space:nowrap}"
          "figure{display:inline-block;margin:4px}figcaption{font-size:12px;color:#555}")


def _page(title, body):
    return ("<!DOCTYPE html>\n<html><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>\n{body}\n</body></html>\n")


def _link(page_dir, path):
    return html.escape(os.path.relpath(path, page_dir).replace(os.sep, "/"), quote=True)


def write_run_report(run_dir, examples, metrics=None, title=None, log_dir=None,
                     output_path=None):
    """Writes ``RUN/report.html``: held-out images at full size (input / output / target),
    the metrics table and the loss curves of the run's TensorBoard logs.

    Args:
        run_dir: the run folder.
        examples: ``[(name, input_u8, output_u8, target_u8 | None)]`` (uint8 (H, W, 3); e.g.
            from ``held_out_examples``).
        metrics: a ``kgan.evaluation.evaluate`` results dict, or any ``{name: number}`` or
            ``{group: {name: number}}`` dict; None for no table.
        title: the page title (default: the run folder's name).
        log_dir: where the event files are (default ``run_dir``, searched recursively).
        output_path: the page (default ``run_dir/report.html``); its images and plot go
            to ``<page stem>_files/`` next to it.

    Returns:
        The path of the page.
    """
    output_path = output_path or os.path.join(run_dir, "report.html")
    page_dir = os.path.dirname(os.path.abspath(output_path))
    files = os.path.splitext(os.path.abspath(output_path))[0] + "_files"
    title = title or f"kgan run {os.path.basename(os.path.normpath(run_dir))}"
    rows = _save_examples(examples, files)
    curves = os.path.join(files, "curves.png")
    drawn, missing = plot_or_explain(read_scalars(log_dir or run_dir), curves)

    body = [f"<p>Run folder: <code>{html.escape(os.path.abspath(run_dir))}</code></p>",
            "<h2>Metrics</h2>", metrics_table_html([("this run", metrics)] if metrics else []),
            "<h2>Held-out images (full size)</h2>"]
    for row in rows:
        figures = "".join(
            f"<figure><a href='{_link(page_dir, row[role])}'><img class='full' "
            f"src='{_link(page_dir, row[role])}' alt='{html.escape(row['name'])} {role}'></a>"
            f"<figcaption>{role}</figcaption></figure>"
            for role in ("input", "output", "target") if role in row)
        body.append(f"<h3>{html.escape(row['name'])}</h3><div class='scroll'>{figures}</div>")
    if not rows:
        body.append("<p>No held-out images.</p>")
    body.append("<h2>Training curves</h2>")
    body.append(f"<img src='{_link(page_dir, curves)}' alt='training curves'>" if drawn else
                missing or "<p>No TensorBoard scalars found under "
                f"<code>{html.escape(os.path.abspath(log_dir or run_dir))}</code>.</p>")
    write_text(output_path, _page(title, "\n".join(body)))
    return output_path


def write_comparison_report(output_path, runs, title="kgan runs compared"):
    """Writes one page comparing runs: the same held-out images in rows with one column per
    run, the runs' metrics in one table, and their curves overlaid (one panel per tag).

    Args:
        output_path: the HTML file; images go to ``<page stem>_files/`` next to it.
        runs: ``RunSummary`` objects (or dicts with the same keys), at least one. Rows are
            matched by example name; the first run with an example gives its input/target.
        title: the page title.

    Returns:
        The path of the page.
    """
    runs = [r if isinstance(r, RunSummary) else RunSummary(**r) for r in runs]
    if not runs:
        raise ValueError("write_comparison_report needs at least one run.")
    page_dir = os.path.dirname(os.path.abspath(output_path))
    files = os.path.splitext(os.path.abspath(output_path))[0] + "_files"
    saved, seen = [], set()
    for i, run in enumerate(runs):
        # Inputs and targets are written once, from the first run showing each example.
        examples = [(name, None, output, None) if name in seen else (name, x, output, target)
                    for name, x, output, target in run.examples]
        seen.update(name for name, *_ in run.examples)
        saved.append(_save_examples(examples, files, prefix=f"run{i}_"))
    names = list(dict.fromkeys(row["name"] for rows in saved for row in rows))
    by_name = [{row["name"]: row for row in rows} for rows in saved]
    has_target = any("target" in row for rows in saved for row in rows)

    head = "<th>image</th><th>input</th>" + ("<th>target</th>" if has_target else "")
    head += "".join(f"<th>{html.escape(run.name)}</th>" for run in runs)
    table = [f"<table class='compare'><tr>{head}</tr>"]

    def cell(row, role):
        if not row or role not in row:
            return "<td>–</td>"
        link = _link(page_dir, row[role])
        return f"<td><a href='{link}'><img class='fit' src='{link}' alt='{role}'></a></td>"

    for name in names:
        first = next(rows[name] for rows in by_name if name in rows)
        cells = cell(first, "input") + (cell(first, "target") if has_target else "")
        cells += "".join(cell(rows.get(name), "output") for rows in by_name)
        table.append(f"<tr><th>{html.escape(name)}</th>{cells}</tr>")
    table.append("</table>")

    curves = os.path.join(files, "curves.png")
    drawn, missing = plot_or_explain({run.name: read_scalars(run.run_dir) for run in runs},
                                      curves)
    body = ["<h2>Held-out images</h2><p>Click an image for full size.</p>", "\n".join(table),
            "<h2>Metrics</h2>",
            metrics_table_html([(run.name, run.metrics) for run in runs if run.metrics]),
            "<h2>Training curves</h2>",
            f"<img src='{_link(page_dir, curves)}' alt='training curves'>" if drawn else
            missing or "<p>No TensorBoard scalars found.</p>",
            "<h2>Runs</h2><ul>" + "".join(
                f"<li>{html.escape(run.name)}: <code>{html.escape(os.path.abspath(run.run_dir))}"
                "</code></li>" for run in runs) + "</ul>"]
    write_text(output_path, _page(title, "\n".join(body)))
    return output_path


# ----------------------------------------------------------------------------- examples


def _to_uint8(images):
    return np.clip(np.round((np.asarray(images, np.float32) + 1.0) * 127.5), 0,
                   255).astype(np.uint8)


def _to_float(images):
    """float32 in [-1, 1] from float [-1, 1] or uint8 images (arrays or tensors)."""
    images = np.asarray(images)
    if images.dtype == np.uint8:
        return images.astype(np.float32) / 127.5 - 1.0
    return images.astype(np.float32)


def held_out_examples(generator, dataset, n=4, names=None):
    """Runs a kgan generator on the first ``n`` (input, target) pairs of a dataset.

    Args:
        generator: a kgan generator (float [-1, 1] in and out; any input size is padded to
            its size multiple and cropped back, as ``kgan.evaluation.evaluate``).
        dataset: finite (input, target) batches or single images, float32 in [-1, 1] or
            uint8, e.g. ``kgan.evaluation.evaluate.make_dataset(...)`` or a list of full-size
            ``(degraded, clean)`` photos; elements that are not pairs (unpaired data) get no
            target.
        n: number of examples.
        names: names of the examples (default ``held-out 1``, ...).

    Returns:
        ``[(name, input_u8, output_u8, target_u8 | None)]`` for ``write_run_report``.
    """

    examples = []
    for element in dataset:
        inputs, targets = element if isinstance(element, (tuple, list)) else (element, None)
        inputs = _to_float(inputs)
        targets = None if targets is None else _to_float(targets)
        if inputs.ndim == 3:
            inputs = inputs[None]
            targets = None if targets is None else targets[None]
        outputs = run_generator(generator, inputs).numpy()
        for i in range(len(inputs)):
            if len(examples) == n:
                return examples
            index = len(examples)
            name = names[index] if names and index < len(names) else f"held-out {index + 1}"
            target = None if targets is None else _to_uint8(targets[i])
            examples.append((name, _to_uint8(inputs[i]), _to_uint8(outputs[i]), target))
        if len(examples) == n:
            break
    return examples
