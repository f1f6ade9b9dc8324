"""torchvision's ImageNet ResNet weights (``resnet34-*.pth``, ``resnet101-*.pth``) onto kgan's
torchvision-layout ResNet bodies (``kgan.models.resnet_body``): the ImageNet start of
DeOldify's generators (``--model=colorize --generator=deoldify_*``), as fastai's
``create_body(resnet34/101, pretrained=True)`` gives DeOldify.

The files are read with the restricted ``.pth`` reader (no torch, no general unpickler) and
never downloaded: ``--encoder_weights=imagenet`` looks for torchvision's own cache file
(``$TORCH_HOME/hub/checkpoints/``, default ``~/.cache/torch/hub/checkpoints/``), a path is used
as given, ``none`` starts from random weights. keras.applications' ResNet-101 file is not used
on purpose: it is the Caffe-style ResNet v1 (stride on the first 1x1 conv of a block, conv
biases, BGR mean-subtracted input), a different function from torchvision's v1.5 body whose
layout DeOldify's published weights (and so kgan's network) have; its weights would not give
the features they were trained to give.

Called by kgan.recipes.colorize.
"""

import os
import re

import keras
import numpy as np
from absl import logging

from kgan.core.errors import KganError
from kgan.interop.pytorch_weights import WeightMismatchError, read_state_dict

# The files torchvision's ``ResNet34_Weights.IMAGENET1K_V1`` / ``ResNet101_Weights.IMAGENET1K_V1``
# download to its hub cache.
TORCHVISION_FILES = {"resnet34": "resnet34-b627a593.pth", "resnet101": "resnet101-63fe2227.pth"}
# torchvision's stage blocks: layer1_0_conv1, layer3_5_downsample_1, ...
BODY_LAYER = re.compile(r"layer[1-4]_\d+_")


class BodyWeightsMissingError(KganError, FileNotFoundError):
    """torchvision's ImageNet weights for a ResNet body are not on this machine."""


def torch_hub_dir():
    """torchvision's download folder: ``$TORCH_HOME/hub/checkpoints`` (default
    ``~/.cache/torch``)."""
    home = os.environ.get("TORCH_HOME") or os.path.join(os.path.expanduser("~"), ".cache",
                                                        "torch")
    return os.path.join(home, "hub", "checkpoints")


def resolve_body_weights(arch, weights="imagenet"):
    """Turns ``--encoder_weights`` into a torchvision ``.pth`` path, or None for random weights.

    Args:
        arch: ``resnet34`` or ``resnet101``.
        weights: ``imagenet`` (torchvision's cache file), a path, ``none`` (random, with a
            warning) or None (random, silently).

    Returns:
        A file path, or None.

    Raises:
        BodyWeightsMissingError: the file is not there (one line naming it and where it goes).
    """
    if weights is None:
        return None
    if str(weights).lower() in ("none", ""):
        logging.warning("The %s body has RANDOM weights (--encoder_weights=none): DeOldify "
                        "starts from ImageNet features.", arch)
        return None
    filename = TORCHVISION_FILES[arch]
    path = (os.path.join(torch_hub_dir(), filename) if weights == "imagenet"
            else os.path.expanduser(str(weights)))
    if not os.path.isfile(path):
        if weights == "imagenet":
            raise BodyWeightsMissingError(
                f"{arch} ImageNet weights not found at {path}. kgan never downloads them: "
                f"place torchvision's {filename} in {torch_hub_dir()}/ (or pass "
                f"--encoder_weights=/path/to/{filename}), or train from random weights with "
                "--encoder_weights=none.")
        raise BodyWeightsMissingError(f"--encoder_weights={weights}: no such file. Give "
                                      f"imagenet (torchvision's {filename}), a path, or none.")
    return path


def _torch_name(layer_name):
    """``layer1_0_downsample_1`` -> ``layer1.0.downsample.1``; ``conv1``, ``bn1`` unchanged."""
    return layer_name.replace("_", ".")


def body_layers(model):
    """The Conv2D / BatchNormalization layers of ``model``'s ResNet body, by torchvision name."""
    found = {}
    for layer in model.layers:
        if not isinstance(layer, (keras.layers.Conv2D, keras.layers.BatchNormalization)):
            continue
        # The decoder's layers are named after DeOldify's ``layers.N`` (``layers_3_0_0``).
        if layer.name in ("conv1", "bn1") or BODY_LAYER.match(layer.name):
            found[_torch_name(layer.name)] = layer
    return found


def load_body_weights(model, path):
    """Loads a torchvision ResNet state dict into the body of ``model`` (a DeOldify generator).

    Conv kernels (out, in, kh, kw) become Keras' (kh, kw, in, out); BatchNorm2d's weight, bias,
    running mean and variance become gamma, beta, moving mean and variance. The ``fc`` head is
    ignored.

    Args:
        model: a ``keras.Model`` holding ``kgan.models.resnet_body`` layers.
        path: a torchvision ``resnet34-*.pth`` / ``resnet101-*.pth`` (or any file with its keys).

    Returns:
        The number of layers loaded.

    Raises:
        WeightMismatchError: a body layer has no key in the file, or another shape (another
            architecture or ``--ngf`` than the file's 64).
    """
    state = read_state_dict(path)
    loaded = 0
    for prefix, layer in body_layers(model).items():
        if isinstance(layer, keras.layers.Conv2D):
            values = [np.transpose(_take(state, prefix + ".weight", path), (2, 3, 1, 0))]
        else:
            values = [_take(state, prefix + "." + key, path)
                      for key in ("weight", "bias", "running_mean", "running_var")]
        for variable, value in zip(layer.weights, values):
            if tuple(variable.shape) != value.shape:
                raise WeightMismatchError(
                    f"{path}: {prefix} has shape {value.shape}, the network's {layer.name} "
                    f"{tuple(variable.shape)}: the file is another ResNet than this generator's "
                    "body (resnet34 for deoldify_artistic, resnet101 for deoldify_stable/video), "
                    "or --ngf is not 64 (torchvision's width).")
            variable.assign(value.astype(np.float32))
        loaded += 1
    if not loaded:
        raise WeightMismatchError(f"{model.name} has no ResNet body to load {path} into.")
    return loaded


def _take(state, key, path):
    if key not in state:
        raise WeightMismatchError(f"{path} has no {key}: not a torchvision ResNet state dict of "
                                  "this generator's body.")
    return np.asarray(state[key])
