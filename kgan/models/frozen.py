"""Inference copies of frozen networks: batch norm folded into the convolution before it,
spectral-norm wrappers replaced by the convolution they wrap, and weights stored in the
compute dtype. A training phase that only runs a network forward (NoGAN's critic phase runs
the pretrained generator on every batch) then reads no per-use float32 -> bf16 weight casts
and no float32 batch-norm round trips.

Called by kgan.training.trainers.critic.
"""

import keras
import numpy as np
from keras import ops

from kgan.models.decoder_layers import Im2colConv2D, MatmulFilterGradConv2D
from kgan.models.normalization import SpectralNorm

# Conv2D and the subclasses that only change how the same kernel and bias are applied.
_CONV_CLASSES = (keras.layers.Conv2D, Im2colConv2D, MatmulFilterGradConv2D)


def _conv_of(layer):
    """The Conv2D that ``layer`` is or wraps in spectral norm, else None."""
    conv = layer.layer if isinstance(layer, SpectralNorm) else layer
    return conv if type(conv) in _CONV_CLASSES else None


def _foldable_pairs(model):
    """{conv layer name: batch norm layer} for each inference batch norm whose only input
    is a linear Conv2D (or spectral-normalised Conv2D) whose only consumer it is."""
    pairs = {}
    for layer in model.layers:
        if not (isinstance(layer, keras.layers.BatchNormalization)
                and layer.axis in (-1, 3) and len(layer._inbound_nodes) == 1
                and not layer.renorm):
            continue
        producer = layer._inbound_nodes[0].input_tensors[0]._keras_history.operation
        conv = _conv_of(producer)
        if (conv is not None and conv.activation is keras.activations.linear
                and len(producer._inbound_nodes) == 1 and len(producer._outbound_nodes) == 1):
            pairs[producer.name] = layer
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


def inference_copy(model, name=None):
    """A forward-only copy of a functional ``model`` that computes the same function faster.

    Each ``BatchNormalization`` fed only by a linear ``Conv2D`` (or ``Im2colConv2D``,
    ``MatmulFilterGradConv2D``, or one in ``SpectralNorm``) is folded into it: ``conv(x) * s + (beta - mean * s)`` with
    ``s = gamma / sqrt(moving_variance + epsilon)`` becomes one conv with a bias. The other
    spectral-norm wrappers become the conv they wrap (in inference they apply its stored
    kernel). Layers under a mixed policy (``mixed_bfloat16``, ``mixed_float16``) get the
    compute dtype as their policy, so their weights are stored in it once instead of cast at
    every call; batch norms that stay keep their float32 statistics. In float32 the copy
    equals ``model(x, training=False)`` to float32 rounding; in bf16 to bf16 rounding.

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
    >>> copy = inference_copy(net)
    >>> x = np.random.uniform(-1, 1, (1, 32, 32, 3)).astype("float32")
    >>> bool(np.allclose(copy(x), net(x, training=False), atol=1e-5))
    True
    """
    config = model.get_config() if isinstance(model, keras.Model) else {}
    if isinstance(model, keras.Sequential) or "input_layers" not in config:
        raise ValueError(f"inference_copy needs a functional keras.Model, not "
                         f"{type(model).__name__}.")
    pairs = _foldable_pairs(model)
    folded_norms = {norm.name for norm in pairs.values()}
    for entry in config["layers"]:
        layer = model.get_layer(entry["name"])
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
        source = model.get_layer(layer.name)
        if layer.name in folded_norms:
            continue
        if layer.name in pairs:
            weights = _folded_weights(_conv_of(source), pairs[layer.name])
        elif isinstance(source, SpectralNorm) and _conv_of(source) is not None:
            weights = _conv_of(source).get_weights()
        else:
            weights = source.get_weights()
        for variable, value in zip(layer.weights, weights, strict=True):
            variable.assign(ops.cast(value.astype(np.float32), variable.dtype))
    copy.trainable = False
    return copy
