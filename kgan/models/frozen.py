"""Inference copies of frozen networks: batch norm folded into the convolution before it,
spectral-norm wrappers replaced by the convolution they wrap, and weights stored in the
compute dtype. A training phase that only runs a network forward (NoGAN's critic phase runs
the pretrained generator on every batch) then reads no per-use float32 -> bf16 weight casts
and no float32 batch-norm round trips.

Called by kgan.training.trainers.critic.
"""

import collections

import keras
import numpy as np
from keras import ops

from kgan.models.decoder_layers import Im2colConv2D, MatmulFilterGradConv2D
from kgan.models.normalization import SpectralNorm

# Conv2D and the subclasses that only change how the same kernel and bias are applied.
_CONV_CLASSES = (keras.layers.Conv2D, Im2colConv2D, MatmulFilterGradConv2D)


def is_functional(model):
    """Whether ``model`` is a functional ``keras.Model`` (what ``inference_copy`` copies).

    Args:
        model: anything.

    Returns:
        bool: False for Sequential and subclassed models and for plain layers.
    """
    # Only functional models hold a graph of operations, and it starts at InputLayers.
    return (isinstance(model, keras.Model) and not isinstance(model, keras.Sequential)
            and any(isinstance(operation, keras.layers.InputLayer)
                    for operation in getattr(model, "operations", ())))


def casts_weights(model):
    """Whether a layer of ``model`` stores its weights in another dtype than it computes in
    (a mixed-precision policy), so that every call casts them: where ``inference_copy`` saves
    the most.

    Args:
        model: a ``keras.Model``.

    Returns:
        bool.
    """
    return any(layer.dtype_policy.compute_dtype != layer.dtype_policy.variable_dtype
               for layer in model.layers if layer.weights)


def _conv_of(layer):
    """The Conv2D that ``layer`` is or wraps in spectral norm, else None."""
    conv = layer.layer if isinstance(layer, SpectralNorm) else layer
    return conv if type(conv) in _CONV_CLASSES else None


def _sources(value):
    """Names of the layers producing the Keras tensors in serialized node arguments."""
    if isinstance(value, dict):
        if value.get("class_name") == "__keras_tensor__":
            return [value["config"]["keras_history"][0]]
        return [name for item in value.values() for name in _sources(item)]
    if isinstance(value, (list, tuple)):
        return [name for item in value for name in _sources(item)]
    return []


def _output_sources(output_layers):
    """Names of the layers in a functional config's ``output_layers`` ([name, node, index])."""
    if (isinstance(output_layers, (list, tuple)) and len(output_layers) == 3
            and isinstance(output_layers[0], str)):
        return [output_layers[0]]
    if isinstance(output_layers, dict):
        output_layers = list(output_layers.values())
    return [name for item in output_layers for name in _output_sources(item)]


def _foldable_pairs(config, operations):
    """{conv name: batch norm layer} for each batch norm called once on the output of a linear,
    channels-last, not float16 Conv2D (or one in spectral norm) that is called once and whose
    output nothing else reads, model outputs included."""
    entries = {entry["name"]: entry for entry in config["layers"]}
    reads = collections.Counter(_output_sources(config["output_layers"]))
    for entry in entries.values():
        reads.update(_sources(entry["inbound_nodes"]))
    pairs = {}
    for entry in entries.values():
        norm = operations.get(entry["name"])
        sources = _sources(entry["inbound_nodes"])
        if not (isinstance(norm, keras.layers.BatchNormalization) and norm.axis in (-1, 3)
                and not norm.renorm and len(entry["inbound_nodes"]) == 1
                and len(sources) == 1):
            continue
        producer = operations[sources[0]]
        conv = _conv_of(producer)
        # Folding moves the shift into the conv: float16's range could overflow there.
        if (conv is not None and conv.activation is keras.activations.linear
                and conv.data_format == "channels_last"
                and producer.dtype_policy.compute_dtype != "float16"
                and len(entries[sources[0]]["inbound_nodes"]) == 1 and reads[sources[0]] == 1):
            pairs[sources[0]] = norm
    return pairs


def _folded_weights(conv, norm):
    """Conv kernel and bias with ``norm``'s inference affine map folded in (float64 math)."""
    channels = conv.filters
    gamma = (np.asarray(norm.gamma, np.float64) if norm.scale else np.ones(channels))
    beta = (np.asarray(norm.beta, np.float64) if norm.center else np.zeros(channels))
    scale = gamma / np.sqrt(np.asarray(norm.moving_variance, np.float64) + norm.epsilon)
    bias = (np.asarray(conv.bias, np.float64) if conv.use_bias else np.zeros(channels))
    kernel = np.asarray(conv.kernel, np.float64) * scale
    return [kernel, (bias - np.asarray(norm.moving_mean, np.float64)) * scale + beta]


def inference_copy(model, name=None):
    """A forward-only copy of a functional ``model`` that computes the same function faster.

    Each ``BatchNormalization`` fed only by a linear ``Conv2D`` (or ``Im2colConv2D``,
    ``MatmulFilterGradConv2D``, or one in ``SpectralNorm``) is folded into it:
    ``conv(x) * s + (beta - mean * s)`` with ``s = gamma / sqrt(moving_variance + epsilon)``
    becomes one conv with a bias. The other spectral-norm wrappers become the conv they wrap
    (in inference they apply its stored kernel). Layers under a mixed policy
    (``mixed_bfloat16``, ``mixed_float16``) get the compute dtype as their policy, so their
    weights are stored in it once instead of cast at every call; batch norms that stay keep
    their float32 statistics, and float16 convs are not folded (the folded shift could
    overflow). In float32 the copy equals ``model(x, training=False)`` to float32 rounding; in
    bf16 to bf16 rounding.

    The copy holds a snapshot of the weights: make a new one after they change. Nested models
    are copied as they are (unfolded).

    Args:
        model: a functional ``keras.Model``.
        name: the copy's name (default: ``model.name + "_inference"``).

    Returns:
        A non-trainable ``keras.Model`` with the same inputs and outputs.

    Raises:
        ValueError: ``model`` is not a functional model.

    Example:

    >>> import numpy as np
    >>> from kgan.models import generators
    >>> from kgan.models.frozen import inference_copy
    >>> net = generators.unet_generator(num_downs=5, ngf=8, norm="batch")
    >>> norm = next(layer for layer in net.layers if "norm" in type(layer).__name__.lower())
    >>> _ = norm.moving_variance.assign(np.full(norm.moving_variance.shape, 4.0, "float32"))
    >>> copy = inference_copy(net)
    >>> x = np.random.uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    >>> bool(np.allclose(copy(x), net(x, training=False), atol=1e-5))
    True
    """
    if not is_functional(model):
        raise ValueError(f"inference_copy needs a functional keras.Model, not "
                         f"{type(model).__name__}.")
    config = model.get_config()
    operations = {operation.name: operation for operation in model.operations}
    pairs = _foldable_pairs(config, operations)
    folded_norms = {norm.name for norm in pairs.values()}
    for entry in config["layers"]:
        layer = operations.get(entry["name"])
        if entry["name"] in folded_norms:
            entry.update(module="keras.layers", class_name="Identity", registered_name=None,
                         config={"name": entry["name"], "dtype": entry["config"]["dtype"]})
            entry.pop("build_config", None)
            for node in entry["inbound_nodes"]:
                node["kwargs"] = {}  # Identity takes no mask
        elif isinstance(layer, SpectralNorm) and _conv_of(layer) is not None:
            inner = layer.get_config()["layer"]
            entry.update(module=inner["module"], class_name=inner["class_name"],
                         registered_name=inner.get("registered_name"),
                         config={**inner["config"], "name": entry["name"]})
        if entry["name"] in pairs:
            entry["config"]["use_bias"] = True
        dtype = entry["config"].get("dtype")
        if (dtype is not None and entry["class_name"] != "InputLayer"
                and not isinstance(layer, keras.layers.BatchNormalization)):
            policy = keras.dtype_policies.get(dtype)
            if policy.compute_dtype != policy.variable_dtype:
                entry["config"]["dtype"] = policy.compute_dtype
    config["name"] = name or model.name + "_inference"
    copy = keras.Model.from_config(config)
    for layer in copy.layers:
        if layer.name in folded_norms:
            continue
        source = operations[layer.name]
        if layer.name in pairs:
            weights = _folded_weights(_conv_of(source), pairs[layer.name])
        elif isinstance(source, SpectralNorm) and _conv_of(source) is not None:
            weights = _conv_of(source).get_weights()
        else:
            weights = source.get_weights()
        for variable, value in zip(layer.weights, weights, strict=True):
            variable.assign(ops.cast(value, variable.dtype))
    copy.trainable = False
    return copy
