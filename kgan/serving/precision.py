"""Inference precision of a trained generator: a copy of a Keras model whose layers compute in
bfloat16 (``mixed_bfloat16``: float32 weights, bf16 activations) or float32, whichever policy
it was trained and saved under.

The rule for bfloat16 is the one training under ``mixed_bfloat16`` follows: every layer computes
in bf16 except the output tail, the weight-free layers after the last layer with weights
(kgan's generators pin exactly those to float32: the tanh, the residual ``inputs + correction``
add and clip, ``SigmoidRange``, the colouriser's ``LumaChromaMerge``), so outputs are float32
and the skip connection adds the input at full precision. Normalisation layers keep float32
statistics in bf16 (kgan's InstanceNormalization and Keras's BatchNormalization both do).

Called by kgan.serving.translators (translators with ``precision=``), kgan.exporting.export (a model
trained under a mixed policy is exported computing in float32) and kgan.benchmarking.bench (bf16
inference).
"""

import keras

from kgan.core.errors import UsageError

PRECISIONS = ("float32", "bfloat16")
_POLICIES = {"float32": "float32", "bfloat16": "mixed_bfloat16"}


def check_precision(precision):
    """Returns ``precision`` when it is one of ``PRECISIONS``; raises ``UsageError`` otherwise."""
    if precision not in PRECISIONS:
        raise UsageError(f"--precision={precision}: use one of {', '.join(PRECISIONS)}.")
    return precision


def _inbound_operations(operation):
    """The operations whose outputs feed ``operation`` in its functional graph."""
    found = []
    for node in getattr(operation, "_inbound_nodes", []):
        for tensor in node.input_tensors:
            history = getattr(tensor, "_keras_history", None)
            if history is not None:
                found.append(history.operation)
    return found


def output_tail(model):
    """The weight-free layers of a functional ``model`` from which no layer with weights is
    reachable towards the outputs (the output head), as a set of ``id``s."""
    operations = list(getattr(model, "operations", []) or getattr(model, "layers", []))
    feeds_weights = set()
    # Operations come in topological order; walking them backwards, a layer feeds a weighted
    # layer when it has weights itself or one of the layers it feeds does.
    consumers = {id(op): [] for op in operations}
    for op in operations:
        for source in _inbound_operations(op):
            consumers.setdefault(id(source), []).append(op)
    for op in reversed(operations):
        if op.weights or any(id(c) in feeds_weights for c in consumers.get(id(op), [])):
            feeds_weights.add(id(op))
    return {id(op) for op in operations
            if id(op) not in feeds_weights and not isinstance(op, keras.layers.InputLayer)}


def _set_policy(layer, policy):
    layer.dtype_policy = policy
    for inner in layer._flatten_layers(include_self=False, recursive=True):
        inner.dtype_policy = policy


def with_precision(model, precision):
    """A copy of ``model`` (same weights) computing in ``precision``.

    Args:
        model: a Keras functional generator (float32 in, float32 out).
        precision: ``float32`` or ``bfloat16``.

    Returns:
        A new ``keras.Model``; ``model`` is not changed. For ``bfloat16`` its convolutions,
        normalisations and activations run in bf16, its output tail in float32.
    """
    check_precision(precision)
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    policy = _POLICIES[precision]
    tail = output_tail(copy) if precision == "bfloat16" else set()
    for layer in copy.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        _set_policy(layer, "float32" if id(layer) in tail else policy)
    return copy


def computes_in_float32(model):
    """Whether every layer of ``model`` (nested ones too) computes in float32, i.e. it was not
    built under a mixed policy."""
    # Input layers are skipped, as with_precision skips them: under a mixed global policy a
    # clone's InputLayer reports bf16 though the model computes in float32.
    return all(layer.compute_dtype == "float32"
               for layer in model._flatten_layers(include_self=False, recursive=True)
               if not isinstance(layer, keras.layers.InputLayer))


def compute_dtypes(model):
    """``{layer name: compute dtype}`` of the layers with weights (for reports and tests)."""
    return {layer.name: layer.compute_dtype for layer in model._flatten_layers(recursive=True)
            if layer.weights and layer is not model}
