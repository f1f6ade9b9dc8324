"""Training curves for the picture reports: every scalar of a run's TensorBoard event files
(TF2 tensor summaries included, resumed runs merged, sub-run folders prefixed) and matplotlib
plots of them (Agg backend, steps on the x axis). No TensorBoard server needed.

Called by kgan.evaluation.report.
"""

import collections
import glob
import os

import numpy as np

from kgan.core.atomic import atomic_path

EVENT_PATTERN = "events.out.tfevents.*"
# Tags not plotted by default: throughput figures are not training curves.
SKIPPED_PREFIXES = ("speed/",)


def _scalar_value(value):
    """The float of one summary value, or None when it is not a scalar (images, text)."""
    import tensorflow as tf

    if value.HasField("simple_value"):
        return float(value.simple_value)
    if value.HasField("tensor"):
        array = tf.make_ndarray(value.tensor)
        if array.size == 1 and np.issubdtype(array.dtype, np.number):
            return float(array.reshape(()))
    return None


def _prefix(log_dir, folder):
    """Tag prefix of an event folder below ``log_dir``: ``RUN/logs`` -> ``""``,
    ``RUN/pretrain_g/logs`` -> ``"pretrain_g/"`` (each restoration phase has its own steps)."""
    relative = os.path.relpath(folder, log_dir).replace(os.sep, "/")
    parts = [p for p in relative.split("/") if p not in (".", "logs")]
    return "/".join(parts) + "/" if parts else ""


def read_scalars(log_dir):
    """Reads every scalar of the TensorBoard event files under ``log_dir`` (recursively).

    Handles TF1 ``simple_value`` summaries and the tensor summaries ``tf.summary.scalar``
    writes in TF2. Event files of one folder (a resumed run writes a new file) are merged;
    when a step appears twice, the later write wins.

    Args:
        log_dir: a run folder or its ``logs/`` folder.

    Returns:
        ``{tag: (steps, values)}``, two int64 / float64 arrays per tag, sorted by step.
        Tags of a sub-run's events (``RUN/pretrain_g/logs``) start with ``pretrain_g/``.
    """
    import tensorflow as tf

    points = collections.defaultdict(dict)
    files = sorted(glob.glob(os.path.join(log_dir, "**", EVENT_PATTERN), recursive=True))
    for path in files:
        prefix = _prefix(log_dir, os.path.dirname(path))
        events = []
        try:
            for record in tf.data.TFRecordDataset(path):
                events.append(tf.compat.v1.Event.FromString(record.numpy()))
        except tf.errors.DataLossError:  # a file cut short by a kill: keep what was read
            pass
        for event in sorted(events, key=lambda e: e.wall_time):
            for value in event.summary.value:
                number = _scalar_value(value)
                if number is not None:
                    points[prefix + value.tag][int(event.step)] = number
    scalars = {}
    for tag, by_step in sorted(points.items()):
        steps = np.array(sorted(by_step), dtype=np.int64)
        scalars[tag] = (steps, np.array([by_step[s] for s in steps], dtype=np.float64))
    return scalars


# ----------------------------------------------------------------------------- plots


def _plot_tags(scalars, include=None):
    include = include or (lambda tag: not tag.startswith(SKIPPED_PREFIXES) and
                          "/speed/" not in tag)
    return [tag for tag in scalars if include(tag)]


def plot_curves(series, path, columns=3, title=None):
    """Plots training curves, one panel per tag, steps on the x axis, and saves a PNG.

    Args:
        series: ``{run name: {tag: (steps, values)}}`` (several runs share panels, one line
            each) or ``{tag: (steps, values)}`` for a single run.
        path: the PNG to write (atomically).
        columns: panels per row.
        title: figure title.

    Returns:
        ``{tag: {run name: x data of the plotted line}}`` (what was drawn), or ``{}`` when
        there is nothing to plot (no file is written then).
    """
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    if series and all(isinstance(v, tuple) for v in series.values()):
        series = {"": series}
    tags = list(dict.fromkeys(tag for scalars in series.values() for tag in _plot_tags(scalars)))
    if not tags:
        return {}
    columns = min(columns, len(tags))
    rows = -(-len(tags) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4.2 * columns, 2.8 * rows),
                                squeeze=False)
    drawn = {}
    for axis, tag in zip(axes.flat, tags):
        drawn[tag] = {}
        for run, scalars in series.items():
            if tag in scalars:
                steps, values = scalars[tag]
                (line,) = axis.plot(steps, values, label=run or None, linewidth=1.2)
                drawn[tag][run] = np.asarray(line.get_xdata())
        axis.set_title(tag, fontsize=9)
        axis.set_xlabel("step", fontsize=8)
        axis.tick_params(labelsize=7)
        axis.grid(alpha=0.3)
    for axis in list(axes.flat)[len(tags):]:
        axis.axis("off")
    legend_rows = 0
    if len(series) > 1:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        columns_legend = min(len(series), 4)
        legend_rows = -(-len(series) // columns_legend)
        figure.legend(handles, labels, loc="upper center", ncol=columns_legend, fontsize=8,
                      bbox_to_anchor=(0.5, 1.0), frameon=False)
    if title:
        figure.suptitle(title, fontsize=11, y=0.995)
    top = 1.0 - (0.05 * legend_rows + (0.04 if title else 0)) * 3 / max(rows + 1, 3)
    figure.tight_layout(rect=(0, 0, 1, top))
    with atomic_path(path, "a loss-curve plot") as partial:
        figure.savefig(partial, dpi=90, format="png")
    plt.close(figure)
    return drawn


def plot_or_explain(series, path):
    """``plot_curves`` for the pages: ``(drawn, None)``, or ``({}, html note)`` when
    matplotlib is missing (the rest of the report is still written)."""
    try:
        return plot_curves(series, path), None
    except ImportError:
        return {}, ("<p>The loss curves need matplotlib: <code>pip install -e "
                    "\".[report]\"</code>.</p>")
