"""Loads the PyTorch reference's state dicts (junyanz/pytorch-CycleGAN-and-pix2pix) into kgan's
Keras networks, and back.

kgan's ``resnet_{6,9}blocks``, ``unet_{128,256}``, ``basic`` / ``n_layers`` PatchGAN and
``pixel`` discriminators match the reference parameter for parameter, so each reference module
maps to one Keras layer (``layer_map``). Loading:

- strips the ``module.`` prefix of checkpoints saved from ``nn.DataParallel``;
- drops the ``running_mean`` / ``running_var`` / ``num_batches_tracked`` that old PyTorch saved
  for InstanceNorm2d (the reference deletes them too: instance norm uses per-image statistics);
- loads BatchNorm2d's running statistics (used in inference);
- transposes Conv2d kernels (out, in, kh, kw) and ConvTranspose2d kernels (in, out, kh, kw) to
  Keras' (kh, kw, in, out) and (kh, kw, out, in): both are ``w.transpose(2, 3, 1, 0)``;
- stops on the first missing, unexpected or mis-shaped key with one line naming it and the
  flags that describe the checkpoint (``describe_checkpoint``).

Called by ``kgan.cli.convert`` and ``kgan.interop.init_from`` (``kgan.train --init_from``).
"""

import collections
import os

import keras
import numpy as np
from absl import logging

from kgan.core.errors import KganError, ModelNotFoundError
from kgan.interop import deoldify_keys, torch_pickle
from kgan.models import build_discriminator, build_generator
from kgan.models.layers import InstanceNormalization

IN_STATS = ("running_mean", "running_var", "num_batches_tracked")


class WeightMismatchError(KganError, ValueError):
    """The checkpoint does not fit the network the flags describe."""


# ----------------------------------------------------------------------------- layer maps


def _resnet_map(n_blocks, dropout):
    pairs = [("model.1", "c7s1"), ("model.2", "c7s1_norm"), ("model.4", "down1"),
             ("model.5", "down1_norm"), ("model.7", "down2"), ("model.8", "down2_norm")]
    shift = 1 if dropout else 0  # nn.Dropout sits between the two convs of each block
    for b in range(n_blocks):
        block, name = f"model.{10 + b}.conv_block", f"block{b + 1}"
        pairs += [(f"{block}.1", name + "_conv1"), (f"{block}.2", name + "_norm1"),
                  (f"{block}.{5 + shift}", name + "_conv2"),
                  (f"{block}.{6 + shift}", name + "_norm2")]
    up = 10 + n_blocks
    pairs += [(f"model.{up}", "up1"), (f"model.{up + 1}", "up1_norm"),
              (f"model.{up + 3}", "up2"), (f"model.{up + 4}", "up2_norm"),
              (f"model.{up + 7}", "out")]
    return pairs


def _unet_map(num_downs):
    """UnetSkipConnectionBlock nesting: the outermost block's Sequential is ``model.model``
    (down conv 0, submodule 1, up conv 3); a middle block's is (LeakyReLU 0, down conv 1, norm
    2, submodule 3, ReLU 4, up conv 5, norm 6); the innermost (down 1, up 3, norm 4)."""
    pairs, prefix = [], "model"
    for d in range(num_downs):
        seq = prefix + ".model"
        if d == 0:
            pairs += [(seq + ".0", "down0"), (seq + ".3", "up0")]
            prefix = seq + ".1"
        elif d == num_downs - 1:
            pairs += [(seq + ".1", f"down{d}"), (seq + ".3", f"up{d}"),
                      (seq + ".4", f"up{d}_norm")]
        else:
            pairs += [(seq + ".1", f"down{d}"), (seq + ".2", f"down{d}_norm"),
                      (seq + ".5", f"up{d}"), (seq + ".6", f"up{d}_norm")]
            prefix = seq + ".3"
    return pairs


def _patchgan_map(n_layers):
    pairs = [("model.0", "conv0")]
    for n in range(1, n_layers + 1):
        index = 2 + 3 * (n - 1)
        pairs += [(f"model.{index}", f"conv{n}"), (f"model.{index + 1}", f"conv{n}_norm")]
    return pairs + [(f"model.{2 + 3 * n_layers}", "logits")]


def _pixel_map():
    return [("net.0", "conv0"), ("net.2", "conv1"), ("net.3", "conv1_norm"), ("net.5", "logits")]


def architecture_of(model):
    """Which reference network a kgan model is, from its layer names.

    Returns:
        ``("resnet", n_blocks, dropout)``, ``("unet", num_downs)``, ``("patchgan", n_layers)``
        or ``("pixel",)``.

    Raises:
        WeightMismatchError: for networks the reference does not have.
    """
    names = {layer.name for layer in model.layers}
    if "c7s1" in names:
        n_blocks = sum(1 for n in names if n.startswith("block") and n.endswith("_add"))
        return ("resnet", n_blocks, "block1_dropout" in names)
    if "down0" in names and "up0" in names:
        return ("unet", sum(1 for n in names if n.startswith("down") and n[4:].isdigit()))
    if "logits" in names and "conv0" in names:
        if any(n.endswith("_pad") for n in names):
            return ("patchgan", sum(1 for n in names if n.startswith("conv") and n[4:].isdigit())
                    - 1)
        return ("pixel",)
    raise WeightMismatchError(f"{model.name} has no PyTorch reference counterpart; only "
                              "resnet_*blocks, unet_* and basic / n_layers / pixel "
                              "discriminators can be converted.")


def layer_map(model):
    """``[(reference module prefix, kgan layer)]`` for ``model``; norm layers a ``--norm=none``
    network lacks are left out (the reference has parameter-free Identity modules there)."""
    arch = architecture_of(model)
    pairs = {"resnet": lambda: _resnet_map(arch[1], arch[2]), "unet": lambda: _unet_map(arch[1]),
             "patchgan": lambda: _patchgan_map(arch[1]), "pixel": _pixel_map}[arch[0]]()
    names = {layer.name for layer in model.layers}
    out = []
    for prefix, name in pairs:
        if name not in names:
            if name.endswith(("_norm", "_norm1", "_norm2")):
                continue
            raise WeightMismatchError(f"{model.name} lacks the layer {name}.")
        layer = model.get_layer(name)
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose,
                                  keras.layers.BatchNormalization, InstanceNormalization)):
            raise WeightMismatchError(
                f"{model.name}'s layer {name} is a {type(layer).__name__} (spectral norm or a "
                "non-reference option?); only the reference's layers can take its weights.")
        out.append((prefix, layer))
    return out


# ----------------------------------------------------------------------------- checkpoint facts


def strip_module_prefix(state_dict):
    """Drops the ``module.`` every key has when saved from ``nn.DataParallel``."""
    if state_dict and all(k.startswith("module.") for k in state_dict):
        return collections.OrderedDict((k[len("module."):], v) for k, v in state_dict.items())
    return collections.OrderedDict(state_dict)


def _norm_of(keys, norm_prefix, conv_prefix):
    if norm_prefix + ".weight" in keys and norm_prefix + ".running_mean" in keys:
        return "batch"
    return "instance" if conv_prefix + ".bias" in keys else "none"


def resnet_has_dropout(state_dict):
    """Whether a reference ResNet generator's state dict was saved with dropout: nn.Dropout
    shifts each block's second conv to ``conv_block.6``, so that key holds a 4-D conv weight.
    Without dropout ``conv_block.6`` is the second norm, whose 1-D running statistics (old
    PyTorch saved them for instance norm) or batch-norm weights must not count."""
    return any(k.endswith(".conv_block.6.weight") and len(v.shape) == 4
               for k, v in state_dict.items())


def describe_checkpoint(state_dict):
    """What reference network a state dict holds, as kgan.convert flags.

    Args:
        state_dict: ``{name: array}`` (``module.`` prefix already stripped).

    Returns:
        ``(description, flags)``, e.g. ``("a ResNet generator with 9 residual blocks, ngf 64,
        instance norm, no dropout", "--generator=resnet_9blocks --ngf=64 --norm=instance
        --no_dropout")``; flags is None when the network is not recognised.
    """
    deoldify = deoldify_keys.recognise(state_dict)
    if deoldify:
        return deoldify["text"], deoldify["flags"]
    keys = set(state_dict)
    shape = lambda k: state_dict[k].shape if k in state_dict else None  # noqa: E731
    if any(".conv_block." in k for k in keys):
        blocks = {k.split(".")[1] for k in keys if ".conv_block." in k}
        dropout = resnet_has_dropout(state_dict)
        norm = _norm_of(keys, "model.2", "model.4")
        ngf = shape("model.1.weight")[0] if shape("model.1.weight") else "?"
        n = len(blocks)
        flag = f"--generator=resnet_{n}blocks" if n in (6, 9) else f"(no kgan flag for {n} blocks)"
        text = (f"a ResNet generator with {n} residual blocks, ngf {ngf}, {norm} norm, "
                f"{'dropout' if dropout else 'no dropout'}")
        return text, (f"{flag} --ngf={ngf} --norm={norm} "
                      f"{'--no_dropout=false' if dropout else '--no_dropout'}")
    if "model.model.0.weight" in keys:
        num_downs, sub = 1, "model.model.1"
        while any(k.startswith(sub + ".model.") for k in keys):
            num_downs, sub = num_downs + 1, sub + ".model.3"
        norm = _norm_of(keys, "model.model.1.model.2", "model.model.1.model.1")
        ngf = shape("model.model.0.weight")[0]
        size = 2 ** num_downs
        flag = (f"--generator=unet_{size}" if size in (128, 256)
                else f"(no kgan flag for a {num_downs}-level UNet)")
        return (f"a UNet generator with {num_downs} levels (unet_{size}), ngf {ngf}, {norm} norm",
                f"{flag} --ngf={ngf} --norm={norm}")
    if "net.0.weight" in keys:
        norm = _norm_of(keys, "net.3", "net.2")
        ndf = shape("net.0.weight")[0]
        return (f"a pixel discriminator, ndf {ndf}, {norm} norm",
                f"--discriminator=pixel --ndf={ndf} --norm={norm}")
    convs = sorted(int(k.split(".")[1]) for k in keys
                   if k.startswith("model.") and k.endswith(".weight") and k.count(".") == 2
                   and len(state_dict[k].shape) == 4)
    if convs and convs[0] == 0 and shape("model.0.weight")[2:] == (4, 4):
        n_layers = len(convs) - 2
        norm = _norm_of(keys, "model.3", "model.2")
        ndf, channels = shape("model.0.weight")[:2]
        flag = "--discriminator=basic" if n_layers == 3 else (
            f"--discriminator=n_layers --n_layers_d={n_layers}")
        return (f"a PatchGAN discriminator with {n_layers} layers, ndf {ndf}, {norm} norm, "
                f"{channels} input channels", f"{flag} --ndf={ndf} --norm={norm}")
    return (f"not a reference network (first keys: {', '.join(list(state_dict)[:3])})", None)


def _hint(state_dict):
    text, flags = describe_checkpoint(state_dict)
    return f"the checkpoint is {text}" + (f": use {flags}" if flags else "")


# ----------------------------------------------------------------------------- loading


def _layer_values(layer, prefix, state_dict, used, notes, norm_free):
    """``[(keras variable, value)]`` for one layer, consuming its keys from ``state_dict``.

    ``norm_free``: the network has no norm layers (``--norm=none``), where the reference's
    convs have no bias. Returns ``(pairs, problems)``; a problem is one line about one key.
    """
    pairs, problems = [], []

    def take(suffix, variable, convert=lambda v: v):
        key = f"{prefix}.{suffix}"
        if key not in state_dict:
            problems.append(f"missing key {key} (for {layer.name})")
            return
        used.add(key)
        value = convert(np.asarray(state_dict[key], np.float32))
        if tuple(value.shape) != tuple(variable.shape):
            problems.append(f"{key} has shape {state_dict[key].shape}, but {layer.name} needs "
                            f"{_torch_shape(layer, suffix, variable.shape)}")
            return
        pairs.append((variable, value))

    if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
        take("weight", layer.kernel, lambda w: w.transpose(2, 3, 1, 0) if w.ndim == 4 else w)
        if layer.use_bias:
            if (norm_free and f"{prefix}.bias" not in state_dict
                    and f"{prefix}.weight" in state_dict):
                # The reference puts no conv bias under --norm=none; zero is the same function.
                notes.append(f"{prefix} has no bias (the reference's --norm=none): set to 0")
                pairs.append((layer.bias, np.zeros(layer.bias.shape, np.float32)))
            else:
                take("bias", layer.bias)
    elif isinstance(layer, keras.layers.BatchNormalization):
        take("weight", layer.gamma)
        take("bias", layer.beta)
        take("running_mean", layer.moving_mean)
        take("running_var", layer.moving_variance)
        used.add(f"{prefix}.num_batches_tracked")
    elif isinstance(layer, InstanceNormalization):
        stale = [f"{prefix}.{s}" for s in IN_STATS if f"{prefix}.{s}" in state_dict]
        used.update(stale)
        if stale:
            notes.append(f"{prefix}: dropped {len(stale)} instance-norm running statistics")
        if layer.affine:
            take("weight", layer.gamma)
            take("bias", layer.beta)
    return pairs, problems


def _torch_shape(layer, suffix, keras_shape):
    if suffix == "weight" and len(keras_shape) == 4:
        kh, kw, a, b = keras_shape
        return (b, a, kh, kw)
    return tuple(keras_shape)


def assign_state_dict(model, state_dict, source="the checkpoint"):
    """Loads a reference state dict into a built kgan network (all or nothing).

    Args:
        model: a kgan network (``resnet_*blocks``, ``unet_*``, PatchGAN or pixel D).
        state_dict: ``{name: array}`` as ``torch_pickle.load_state_dict`` returns.
        source: the file name, for messages.

    Returns:
        Notes (strings) about what was adapted, also logged.

    Raises:
        WeightMismatchError: one line naming the first missing, unexpected or mis-shaped key
            and the flags that describe the checkpoint.
    """
    state_dict = strip_module_prefix(state_dict)
    used, notes, assignments, problems = set(), [], [], []
    norm_free = not any(isinstance(layer, (keras.layers.BatchNormalization,
                                           InstanceNormalization)) for layer in model.layers)
    for prefix, layer in layer_map(model):
        pairs, layer_problems = _layer_values(layer, prefix, state_dict, used, notes,
                                              norm_free)
        assignments += pairs
        problems += layer_problems
    problems += [f"unexpected key {k}" for k in state_dict if k not in used]
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise WeightMismatchError(f"{source} does not fit {model.name}: {problems[0]}{more}; "
                                  f"{_hint(state_dict)}.")
    for variable, value in assignments:
        variable.assign(value)
    stats = [n for n in notes if "instance-norm running statistics" in n]
    if stats:
        logging.info("%s: dropped the instance-norm running_mean/running_var/"
                     "num_batches_tracked of %d layers (old PyTorch saved them; instance norm "
                     "uses per-image statistics, as the reference does when loading).",
                     source, len(stats))
    for note in notes:
        if note not in stats:
            logging.info("%s: %s", source, note)
    return notes


def _input_channels(state_dict, key):
    value = state_dict.get(key)
    return int(value.shape[1]) if value is not None and value.ndim == 4 else 3


def read_state_dict(path):
    """``torch_pickle.load_state_dict``, also accepting fastai v1 ``Learner.save`` files
    (``{'model': state_dict, 'opt': optimizer state}``, as DeOldify's are): the ``model``
    entry is the state dict, the optimizer state is ignored.

    Raises:
        ModelNotFoundError: no such file.
        torch_pickle.CheckpointError: not a state dict.
    """
    if not os.path.isfile(path):
        raise ModelNotFoundError(f"No checkpoint file {path}: check the --pytorch path "
                                 "(kgan never downloads weights).")
    obj = torch_pickle.load(path)
    if isinstance(obj, dict) and isinstance(obj.get("model"), dict):
        obj = obj["model"]
    return torch_pickle.as_state_dict(obj, path)


def load_pytorch_generator(path, generator="resnet_9blocks", ngf=64, norm="instance",
                           use_dropout=None, input_channels=3, output_channels=3):
    """Builds a kgan generator and loads a reference ``latest_net_G.pth`` into it.

    Args:
        path: the ``.pth`` file (zip or legacy format; read without unpickling code).
        generator, ngf, norm: as the reference's ``--netG``, ``--ngf``, ``--norm``.
        use_dropout: dropout in the network (the reference's ``not --no_dropout``); None takes
            it from the checkpoint (ResNet blocks with dropout have shifted keys; the UNet's
            dropout holds no weights, and inference never applies it).
        input_channels, output_channels: image channels.

    Returns:
        The built ``keras.Model``, float32 [-1, 1] in and out.

    Raises:
        WeightMismatchError, torch_pickle.CheckpointError: see ``assign_state_dict``.
    """
    state_dict = strip_module_prefix(read_state_dict(path))
    deoldify = deoldify_keys.recognise(state_dict)
    if deoldify:
        raise WeightMismatchError(f"{os.path.basename(path)} is {deoldify['text']}"
                                  + (f": use {deoldify['flags']}." if deoldify["flags"] else "."))
    if use_dropout is None:
        use_dropout = (resnet_has_dropout(state_dict) if generator.startswith("resnet")
                       else True)
    model = build_generator(generator, ngf=ngf, norm=norm, use_dropout=use_dropout,
                            input_channels=input_channels, output_channels=output_channels)
    assign_state_dict(model, state_dict, os.path.basename(path))
    return model


def load_pytorch_discriminator(path, discriminator="basic", ndf=64, n_layers_d=3,
                               norm="instance", in_channels=None):
    """Builds a kgan discriminator and loads a reference ``latest_net_D*.pth`` into it.

    Args:
        path: the ``.pth`` file.
        discriminator, ndf, n_layers_d, norm: as the reference's ``--netD``, ``--ndf``,
            ``--n_layers_D``, ``--norm``.
        in_channels: input channels (None: from the checkpoint; 6 for pix2pix's pairs).

    Returns:
        The built ``keras.Model`` producing float32 logits.
    """
    state_dict = strip_module_prefix(torch_pickle.load_state_dict(path))
    if in_channels is None:
        in_channels = _input_channels(state_dict, "net.0.weight" if discriminator == "pixel"
                                      else "model.0.weight")
    model = build_discriminator(discriminator, in_channels, ndf, n_layers_d, norm)
    assign_state_dict(model, state_dict, os.path.basename(path))
    return model


def keras_to_state_dict(model):
    """The reference state dict of a kgan network (the inverse of ``assign_state_dict``):
    float32 arrays in PyTorch layouts, BN ``num_batches_tracked`` as int64 0."""
    out = collections.OrderedDict()
    for prefix, layer in layer_map(model):
        if isinstance(layer, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)):
            out[prefix + ".weight"] = np.asarray(layer.kernel).transpose(3, 2, 0, 1).copy()
            if layer.use_bias:
                out[prefix + ".bias"] = np.asarray(layer.bias)
        elif isinstance(layer, keras.layers.BatchNormalization):
            for suffix, variable in (("weight", layer.gamma), ("bias", layer.beta),
                                     ("running_mean", layer.moving_mean),
                                     ("running_var", layer.moving_variance)):
                out[f"{prefix}.{suffix}"] = np.asarray(variable)
            out[prefix + ".num_batches_tracked"] = np.zeros((), np.int64)
        elif layer.affine:
            out[prefix + ".weight"] = np.asarray(layer.gamma)
            out[prefix + ".bias"] = np.asarray(layer.beta)
    return out
