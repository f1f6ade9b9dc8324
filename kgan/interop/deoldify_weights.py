"""Loads DeOldify's published generator files (``ColorizeArtistic_gen.pth``,
``ColorizeStable_gen.pth``, ``ColorizeVideo_gen.pth``) into kgan's DeOldify colourisers
(kgan.models.deoldify), folding what PyTorch computes at run time into plain weights:

- spectral norm, as PyTorch's ``spectral_norm`` computes it in eval mode: no power iteration,
  ``sigma = u . (W_orig v)`` from the stored ``weight_u`` / ``weight_v`` (``W_orig`` flattened to
  out x rest), ``W = W_orig / sigma``;
- weight norm (``layers.8.conv.0``: ``weight_g``, a 4-D ``weight_v``): ``W = g * v / |v|`` per
  output channel;
- pixel shuffles: PyTorch's ``PixelShuffle`` reads channel ``c * 4 + s``, ``depth_to_space``
  reads ``s * C + c``, so those convs (and the batch norm after them) are permuted;
- self-attention: fastai's softmax runs over the query axis of ``query^T key``, so fastai's
  ``key`` is kgan's ``SelfAttention2D`` query and fastai's ``query`` its key; Conv1d weights
  become 1x1 Conv2D kernels; ``gamma`` (1,) becomes a scalar;
- batch norm running statistics as they are.

The file is fastai v1's ``Learner.save`` (``{'model': ..., 'opt': ...}``) or a bare state dict,
zip or legacy format, read without torch and without unpickling code (kgan.interop.torch_pickle).
Width and block counts come from the file, so the small test fixtures convert too.

DeOldify's critic files (``*_crit.pth``, ``custom_gan_critic``) convert the same way into
kgan.models.deoldify_critic (``load_deoldify_critic``).

Called by ``kgan.cli.convert`` (``--generator=deoldify_*``, ``--discriminator=deoldify_critic``)
and kgan.interop.init_from.
"""

import os

import keras
import numpy as np

from kgan.interop import deoldify_keys
from kgan.interop.pytorch_weights import WeightMismatchError, read_state_dict
from kgan.models.deoldify import VARIANTS, deoldify_generator, variant_of
from kgan.models.deoldify_critic import deoldify_critic
from kgan.models.layers import SelfAttention2D

# torchvision child names -> fastai's body index (layers.0.<index>)
_BODY = {"conv1": "0", "bn1": "1", "layer1": "4", "layer2": "5", "layer3": "6", "layer4": "7"}
_KINDS = {"artistic": "deep", "stable": "wide", "video": "wide"}


def torch_prefix(layer_name):
    """kgan layer name -> DeOldify module prefix (``layer1_0_conv1`` -> ``layers.0.4.0.conv1``,
    ``layers_4_shuf_conv_0`` -> ``layers.4.shuf.conv.0``)."""
    head, _, rest = layer_name.partition("_")
    if head in _BODY:
        return ".".join(["layers", "0", _BODY[head]] + (rest.split("_") if rest else []))
    return layer_name.replace("_", ".")


def fold_spectral_norm(weight_orig, u, v):
    """PyTorch eval-mode spectral norm: ``W_orig / (u . (W_orig.reshape(out, -1) @ v))``."""
    w = np.asarray(weight_orig, np.float64)
    sigma = float(np.dot(np.asarray(u, np.float64), w.reshape(w.shape[0], -1) @ v))
    return (w / sigma).astype(np.float32)


def fold_weight_norm(g, v):
    """PyTorch weight norm (dim 0): ``g * v / |v|`` with the norm over all but the first axis."""
    v = np.asarray(v, np.float64)
    norm = np.sqrt((v.reshape(v.shape[0], -1) ** 2).sum(axis=1))
    return (np.asarray(g, np.float64).reshape(-1) / norm).reshape(
        (-1,) + (1,) * (v.ndim - 1)) * v


def _shuffle_order(channels):
    """Keras channel k of a depth_to_space input <- PyTorch PixelShuffle channel."""
    c = channels // 4
    return np.array([(k % c) * 4 + k // c for k in range(channels)])


class _Reader:
    """Takes weights from the state dict, recording used keys and problems."""

    def __init__(self, state_dict):
        self.state_dict, self.used, self.problems = state_dict, set(), []

    def get(self, key):
        if key not in self.state_dict:
            self.problems.append(f"missing key {key}")
            return None
        self.used.add(key)
        return np.asarray(self.state_dict[key], np.float32)

    def conv_weight(self, prefix):
        """The effective (folded) weight of a conv at ``prefix``, PyTorch layout."""
        if f"{prefix}.weight_orig" in self.state_dict:
            w, u, v = (self.get(f"{prefix}.{s}") for s in ("weight_orig", "weight_u", "weight_v"))
            return None if w is None else fold_spectral_norm(w, u, v)
        if f"{prefix}.weight_g" in self.state_dict:
            g, v = self.get(f"{prefix}.weight_g"), self.get(f"{prefix}.weight_v")
            return None if g is None else fold_weight_norm(g, v).astype(np.float32)
        return self.get(f"{prefix}.weight")


def _sn_vector(reader, prefix, order=None):
    """DeOldify's stored ``weight_u`` (PyTorch's left singular vector estimate) as Keras
    ``SpectralNormalization.vector_u`` (1, out), or None without one."""
    u = reader.state_dict.get(f"{prefix}.weight_u")
    if u is None:
        return None
    u = np.asarray(u, np.float32)
    return (u[order] if order is not None else u).reshape(1, -1)


def _assignments(model, reader, prefix_of=torch_prefix):
    """(variable, value) pairs for every weight of ``model``. Convs may be plain (the folded
    weight) or wrapped in ``keras.layers.SpectralNormalization`` (the folded weight as its
    normalised kernel, which inference uses, and ``weight_u`` as its power-iteration vector,
    so training continues from DeOldify's state)."""
    pairs = []

    def put(variable, value, key):
        if value is None:
            return
        if tuple(value.shape) != tuple(variable.shape):
            reader.problems.append(f"{key} has shape {value.shape}, but {variable.path} needs "
                                   f"{tuple(variable.shape)}")
            return
        pairs.append((variable, value))

    for wrapper in model.layers:
        sn = isinstance(wrapper, keras.layers.SpectralNormalization)
        layer = wrapper.layer if sn else wrapper
        name = wrapper.name.removesuffix("_sn") if sn else wrapper.name
        prefix = prefix_of(name)
        order = None
        if "shuf_conv" in name or name.startswith("layers_8_conv"):
            order = _shuffle_order(layer.weights[0].shape[-1]) if layer.weights else None
        if isinstance(layer, keras.layers.Conv2D):
            w = reader.conv_weight(prefix)
            if w is not None:
                w = w[order] if order is not None else w
                put(layer.kernel, w.transpose(2, 3, 1, 0), prefix)
            if sn:
                put(wrapper.vector_u, _sn_vector(reader, prefix, order), prefix + ".weight_u")
            if layer.use_bias:
                b = reader.get(f"{prefix}.bias")
                put(layer.bias, b[order] if b is not None and order is not None else b, prefix)
        elif isinstance(layer, keras.layers.BatchNormalization):
            for variable, suffix in ((layer.gamma, "weight"), (layer.beta, "bias"),
                                     (layer.moving_mean, "running_mean"),
                                     (layer.moving_variance, "running_var")):
                value = reader.get(f"{prefix}.{suffix}")
                put(variable, value[order] if value is not None and order is not None
                    else value, f"{prefix}.{suffix}")
            reader.used.add(f"{prefix}.num_batches_tracked")
        elif isinstance(layer, SelfAttention2D):
            gamma = reader.get(f"{prefix}.gamma")
            put(layer.gamma, None if gamma is None else gamma.reshape(()), prefix + ".gamma")
            for sub, source in ((layer.query, "key"), (layer.key, "query"),
                                (layer.value, "value")):
                w = reader.conv_weight(f"{prefix}.{source}")
                if w is not None:
                    put(sub.kernel, w.reshape(w.shape[0], w.shape[1], 1, 1).transpose(2, 3, 1, 0),
                        f"{prefix}.{source}")
                if isinstance(sub, keras.layers.SpectralNormalization):
                    put(sub.vector_u, _sn_vector(reader, f"{prefix}.{source}"),
                        f"{prefix}.{source}.weight_u")
    return pairs


def critic_prefix(layer_name):
    """kgan critic layer name -> DeOldify's critic key prefix (``critic_4_2`` -> ``4.2``)."""
    return layer_name.removeprefix("critic_").replace("_", ".")


def assign_deoldify_state_dict(model, state_dict, source="the checkpoint",
                               prefix_of=torch_prefix):
    """Loads a DeOldify state dict into a ``deoldify_generator`` or ``deoldify_critic`` model
    (all or nothing).

    Args:
        model: the network, with plain convs (the folded weights) or spectral-normed ones (the
            folded weights as the normalised kernel plus DeOldify's ``weight_u``: the same
            outputs at inference, and training goes on from DeOldify's state).
        state_dict: ``{name: array}``.
        source: the file name, for messages.
        prefix_of: layer name -> key prefix (``critic_prefix`` for the critic).

    Raises:
        WeightMismatchError: one line naming the first missing, unexpected or mis-shaped key.
    """
    reader = _Reader(state_dict)
    pairs = _assignments(model, reader, prefix_of)
    reader.problems += [f"unexpected key {k}" for k in state_dict if k not in reader.used]
    if reader.problems:
        more = (f" (and {len(reader.problems) - 1} more)" if len(reader.problems) > 1 else "")
        raise WeightMismatchError(f"{source} does not fit {model.name}: {reader.problems[0]}"
                                  f"{more}.")
    for variable, value in pairs:
        variable.assign(value)


def _recognised(path):
    state_dict = read_state_dict(path)
    return state_dict, deoldify_keys.recognise(state_dict)


def load_deoldify_critic(path, spectral_norm=True):
    """Builds DeOldify's critic and loads a DeOldify ``*_crit.pth`` file into it.

    Args:
        path: the file (``Learner.save`` dict or bare state dict; zip or legacy).
        spectral_norm: build the convs spectral-normed (for training; the same outputs).

    Returns:
        The ``keras.Model`` (``kgan.models.deoldify_critic``); nf and blocks from the file.

    Raises:
        ModelNotFoundError: no such file.
        WeightMismatchError: not a DeOldify critic (one line naming what it is), or a file
            that does not fit.
    """
    name = os.path.basename(path)
    state_dict, info = _recognised(path)
    if info is None or info["kind"] != "critic":
        what = info["text"] if info else "not a DeOldify file"
        raise WeightMismatchError(f"{name} is {what}, not DeOldify's critic "
                                  "(ColorizeArtistic_crit.pth and the like).")
    model = deoldify_critic(nf=info["nf"], n_blocks=info["blocks"],
                            spectral_norm=spectral_norm)
    assign_deoldify_state_dict(model, state_dict, name, critic_prefix)
    return model


def load_deoldify_generator(path, generator="deoldify_stable", spectral_norm=False):
    """Builds a DeOldify colouriser and loads a DeOldify ``*_gen.pth`` file into it.

    Args:
        path: the file (Learner.save dict or bare state dict; zip or legacy).
        generator: ``deoldify_artistic``, ``deoldify_stable`` or ``deoldify_video``.
        spectral_norm: build the decoder spectral-normed, for training (the same outputs).

    Returns:
        The ``keras.Model`` (RGB in [-1, 1] -> RGB in [-1, 1]); its manifest render factor is
        ``kgan.models.deoldify.VARIANTS[variant]["render_factor"]``.

    Raises:
        ModelNotFoundError: no such file.
        WeightMismatchError: the file is another DeOldify network (one line naming the flag)
            or does not fit.
    """
    variant = variant_of(generator)
    name = os.path.basename(path)
    state_dict, info = _recognised(path)
    if info is None:
        raise WeightMismatchError(f"{name} is not a DeOldify generator file (first keys: "
                                  f"{', '.join(list(state_dict)[:3])}); --generator="
                                  f"deoldify_{variant} needs {VARIANTS[variant]['file']}.")
    if info["kind"] != _KINDS[variant]:
        flags = f": use {info['flags']}" if info["flags"] else ""
        raise WeightMismatchError(f"{name} is {info['text']}, not what --generator="
                                  f"deoldify_{variant} needs{flags}.")
    model = deoldify_generator(variant, width=info["width"], blocks=info["blocks"],
                               wide_nf=info.get("wide_nf"), spectral_norm=spectral_norm)
    assign_deoldify_state_dict(model, state_dict, name)
    return model
