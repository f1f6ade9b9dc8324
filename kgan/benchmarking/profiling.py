"""Profiling helpers: run a function under the TF profiler and sum op time by type / name.

Used to find where a training step's time goes beyond its convolution FLOPs, e.g.
``format_summary(profile(lambda: step(data), steps=2), steps=2)``, and by ``kgan.bench
--profile_steps=N`` (``split_by_kind``: op time per step by kind of op); set
``tf.config.threading.set_inter_op_parallelism_threads(1)`` first so that op times add up
to the wall time. On CPU the executor records one trace event per op kernel
(``name:type``); this module reads the XPlane protobuf the profiler writes and aggregates it.
"""

import collections
import glob
import os
import re
import tempfile

import tensorflow as tf


def _load_xspace(logdir):
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    paths = sorted(glob.glob(os.path.join(logdir, "**", "*.xplane.pb"), recursive=True),
                   key=os.path.getmtime)
    if not paths:
        raise FileNotFoundError(f"No .xplane.pb under {logdir}.")
    space = xplane_pb2.XSpace()
    with open(paths[-1], "rb") as f:
        space.ParseFromString(f.read())
    return space


def op_events(space):
    """Yields (thread, op name, op type, start_ps, duration_ps) for every TF op event."""
    for plane in space.planes:
        if not plane.name.startswith("/host:CPU"):
            continue
        metadata = plane.event_metadata
        for line in plane.lines:
            for event in line.events:
                name = metadata[event.metadata_id].name
                if ":" not in name or "::" in name or name.startswith("$"):
                    continue
                op_name, _, op_type = name.rpartition(":")
                if not op_type or not re.match(r"^[A-Z_][A-Za-z0-9_]*$", op_type):
                    continue
                start = line.timestamp_ns * 1000 + event.offset_ps
                yield line.name, op_name, op_type, start, event.duration_ps


def summarize(space):
    """Sums op durations (ms) by type and by name; also the wall span of the ops.

    Returns:
        dict with ``by_type`` and ``by_name`` (lists of (key, ms, count), longest first),
        ``total_op_ms`` and ``wall_ms``.
    """
    by_type = collections.defaultdict(lambda: [0.0, 0])
    by_name = collections.defaultdict(lambda: [0.0, 0])
    first, last, total = None, None, 0.0
    for _, name, kind, start, dur in op_events(space):
        ms = dur / 1e9
        by_type[kind][0] += ms
        by_type[kind][1] += 1
        by_name[f"{name}:{kind}"][0] += ms
        by_name[f"{name}:{kind}"][1] += 1
        total += ms
        first = start if first is None else min(first, start)
        last = start + dur if last is None else max(last, start + dur)
    order = lambda d: sorted(((k, v[0], v[1]) for k, v in d.items()), key=lambda r: -r[1])
    return {"by_type": order(by_type), "by_name": order(by_name), "total_op_ms": total,
            "wall_ms": 0.0 if first is None else (last - first) / 1e9}


def profile(fn, steps=1, logdir=None):
    """Runs ``fn()`` ``steps`` times under the TF profiler and returns ``summarize``'s dict
    (op times summed over the steps)."""
    logdir = logdir or tempfile.mkdtemp(prefix="kgan_profile_")
    tf.profiler.experimental.start(logdir)
    try:
        for _ in range(steps):
            fn()
    finally:
        tf.profiler.experimental.stop()
    result = summarize(_load_xspace(logdir))
    result["logdir"] = logdir
    return result


# Op kinds for the step's time split, matched in this order on the op type (oneDNN's op
# names included: _FusedConv2D, PadWithFusedConv2D, Conv2DBackpropFilterWithBias, ...).
OP_KINDS = (
    ("conv filter gradient", ("backpropfilter",)),
    ("conv input gradient", ("backpropinput",)),
    ("conv forward", ("conv",)),
    ("matmul", ("matmul", "einsum")),
    ("cast", ("cast",)),
    ("normalisation", ("batchnorm", "moments", "rsqrt")),
    ("optimizer", ("apply", "assignsub", "assignadd")),
)


def op_kind(op_type):
    """The kind of an op type: one of ``OP_KINDS``' names, or ``"other"``."""
    lower = op_type.lower()
    for kind, needles in OP_KINDS:
        if any(needle in lower for needle in needles):
            return kind
    return "other"


def split_by_kind(result, steps=1, top=12):
    """``profile``'s result as a JSON-ready split of op time per step by kind.

    Args:
        result: ``profile``'s dict.
        steps: how many steps it summed.
        top: how many op types to list.

    Returns:
        ``{"op_ms_per_step", "wall_ms_per_step", "kinds": {kind: {"ms", "share"}},
        "top_types": [[type, ms per step, calls per step, share], ...]}``, shares of the
        op time.

    Example:
        >>> import tensorflow as tf
        >>> x = tf.random.normal((1, 16, 16, 8))
        >>> k = tf.random.normal((3, 3, 8, 8))
        >>> conv = tf.function(lambda: tf.nn.conv2d(x, k, 1, "SAME"))
        >>> _ = conv()
        >>> split = split_by_kind(profile(conv, steps=2), steps=2)
        >>> split["kinds"]["conv forward"]["share"] > 0
        True
    """
    total = result["total_op_ms"]
    share = lambda ms: ms / total if total else 0.0  # noqa: E731
    kinds = {name: 0.0 for name, _ in OP_KINDS + (("other", ()),)}
    for op_type, ms, _ in result["by_type"]:
        kinds[op_kind(op_type)] += ms
    return {"op_ms_per_step": total / steps, "wall_ms_per_step": result["wall_ms"] / steps,
            "kinds": {k: {"ms": ms / steps, "share": share(ms)} for k, ms in kinds.items()},
            "top_types": [[t, ms / steps, count / steps, share(ms)]
                          for t, ms, count in result["by_type"][:top]]}


def format_summary(result, top=30, steps=1):
    """Renders ``profile``'s result as text: per-step ms by op type and by op name."""
    lines = [f"ops total {result['total_op_ms'] / steps:.0f} ms/step, wall span "
             f"{result['wall_ms'] / steps:.0f} ms/step"]
    lines.append("-- by type (ms/step, calls/step, % of op time)")
    for key, ms, count in result["by_type"][:top]:
        lines.append(f"{key:40s} {ms / steps:9.1f} {count / steps:7.0f} "
                     f"{100 * ms / result['total_op_ms']:5.1f}%")
    lines.append("-- by name")
    for key, ms, count in result["by_name"][:top]:
        lines.append(f"{key[-90:]:90s} {ms / steps:9.1f} {count / steps:5.0f}")
    return "\n".join(lines)
