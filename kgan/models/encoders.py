"""Pretrained encoders (keras.applications backbones) for the restoration UNet, as fastai's
DynamicUnet builds its encoder from a ResNet body (DeOldify: resnet34 / resnet101).

An encoder maps backbone-preprocessed images to five feature maps at strides 2, 4, 8, 16 and
32 (the last is the UNet bottleneck). ``ImageNetPreprocess`` turns kgan's [-1, 1] RGB images
into each backbone's own input convention inside the model, so saved generators need no
preprocessing outside them.

ImageNet weights are never downloaded (this package must work offline): ``imagenet`` means
the file keras.applications would have cached in ``$KERAS_HOME/models`` (``~/.keras/models``);
when it is absent, ``EncoderWeightsMissingError`` names the file to place and where.
"""

import keras
from absl import logging
from keras import ops

from kgan.core.errors import KganError
from kgan.core.weights import resolve_weights_file

ENCODERS = ("none", "resnet50", "mobilenet_v2")
ENCODER_STRIDES = (2, 4, 8, 16, 32)
# MobileNetV2 widths with published no-top ImageNet weights (at 224 px).
MOBILENET_V2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)

# Per backbone: the keras.applications constructor, its preprocessing convention, and the
# layers whose outputs are the stride 2/4/8/16/32 feature maps (the last ReLU at each
# resolution; the stride-32 one is the backbone's own output).
_SPECS = {
    "resnet50": dict(
        constructor="ResNet50", preprocess="caffe",
        layers=("conv1_relu", "conv2_block3_out", "conv3_block4_out", "conv4_block6_out",
                "conv5_block3_out")),
    "mobilenet_v2": dict(
        constructor="MobileNetV2", preprocess="tf",
        layers=("block_1_expand_relu", "block_3_expand_relu", "block_6_expand_relu",
                "block_13_expand_relu", "out_relu")),
}

# keras.applications' "caffe" convention: BGR channel order, ImageNet mean subtracted (0-255).
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
# The "torch" convention: RGB in [0, 1], normalised by ImageNet mean and std.
TORCH_MEAN = (0.485, 0.456, 0.406)
TORCH_STD = (0.229, 0.224, 0.225)
PREPROCESS_MODES = ("caffe", "tf", "torch")


class EncoderWeightsMissingError(KganError, FileNotFoundError):
    """The ImageNet weights of an encoder are not on this machine (and are never downloaded)."""


@keras.saving.register_keras_serializable(package="kgan")
class ImageNetPreprocess(keras.layers.Layer):
    """Converts RGB images in [-1, 1] to a keras.applications backbone's input convention.

    Modes (as ``keras.applications.imagenet_utils.preprocess_input``):
        ``caffe``: (x + 1) * 127.5, RGB -> BGR, minus the ImageNet BGR mean (ResNet50, VGG).
        ``tf``: [-1, 1] already (MobileNetV2): the identity.
        ``torch``: (x + 1) / 2, minus the ImageNet mean, divided by its std.

    Args:
        mode: ``caffe``, ``tf`` or ``torch``.
    """

    def __init__(self, mode="caffe", **kwargs):
        super().__init__(**kwargs)
        if mode not in PREPROCESS_MODES:
            raise ValueError(f"Unknown preprocessing mode {mode!r}; use one of "
                             f"{', '.join(PREPROCESS_MODES)}.")
        self.mode = mode

    def call(self, inputs):
        if self.mode == "tf":
            return inputs
        if self.mode == "caffe":
            x = ops.flip((inputs + 1.0) * 127.5, axis=-1)
            return x - ops.convert_to_tensor(CAFFE_MEAN_BGR, dtype=x.dtype)
        x = (inputs + 1.0) * 0.5
        mean = ops.convert_to_tensor(TORCH_MEAN, dtype=x.dtype)
        std = ops.convert_to_tensor(TORCH_STD, dtype=x.dtype)
        return (x - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def check_encoder(encoder, alpha=1.0):
    """Raises a clear ValueError for an unknown encoder or an unsupported width."""
    if encoder not in _SPECS:
        raise ValueError(f"Unknown encoder {encoder!r}; use one of {', '.join(ENCODERS)}.")
    if encoder == "resnet50" and float(alpha) != 1.0:
        raise ValueError(f"--encoder_alpha={alpha} applies to mobilenet_v2 only; resnet50 has "
                         "a single width (use 1.0).")
    if float(alpha) <= 0:
        raise ValueError(f"--encoder_alpha must be positive, got {alpha}.")


def preprocess_mode(encoder):
    """The ``ImageNetPreprocess`` mode a backbone expects."""
    check_encoder(encoder)
    return _SPECS[encoder]["preprocess"]


def feature_layers(encoder):
    """The backbone layer names giving the stride 2, 4, 8, 16 and 32 feature maps."""
    check_encoder(encoder)
    return _SPECS[encoder]["layers"]


def imagenet_weights_file(encoder, alpha=1.0):
    """The file name keras.applications caches the no-top ImageNet weights under."""
    check_encoder(encoder, alpha)
    if encoder == "resnet50":
        return "resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5"
    return f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_224_no_top.h5"


def resolve_encoder_weights(encoder, encoder_weights="imagenet", alpha=1.0):
    """Turns ``--encoder_weights`` into a weights file path, or None for random weights.

    Args:
        encoder: ``resnet50`` or ``mobilenet_v2``.
        encoder_weights: ``imagenet`` (from the Keras cache, never downloaded), a path to a
            weights file of the no-top backbone (``.h5`` as keras.applications publishes, or a
            Keras 3 ``.weights.h5``), ``none`` (random initialisation, with a warning), or
            None (random, silently: for callers that load trained weights over it).
        alpha: MobileNetV2 width multiplier (the ImageNet file name depends on it).

    Returns:
        A file path, or None.

    Raises:
        EncoderWeightsMissingError: the file is not there; the message names the file to place.
        ValueError: an unknown encoder, or a width without published ImageNet weights.
    """
    check_encoder(encoder, alpha)
    if encoder_weights is None:
        return None
    if encoder_weights in ("none", ""):
        logging.warning("The %s encoder has RANDOM weights (--encoder_weights=none): training "
                        "starts without ImageNet features, which a pretrained encoder is for.",
                        encoder)
        return None
    if encoder_weights == "imagenet":
        if encoder == "mobilenet_v2" and float(alpha) not in MOBILENET_V2_ALPHAS:
            raise ValueError(f"MobileNetV2 ImageNet weights exist for alpha in "
                             f"{', '.join(map(str, MOBILENET_V2_ALPHAS))}, not {alpha}; choose "
                             "one of those or --encoder_weights=none.")
    return resolve_weights_file(
        encoder_weights, imagenet_weights_file(encoder, alpha), EncoderWeightsMissingError,
        imagenet_message=f"{encoder} ImageNet weights not found at {{path}}. kgan never "
        "downloads them: place {filename} (from the keras-applications release on GitHub, the "
        "file keras.applications caches) in {folder}/, or pass "
        "--encoder_weights=/path/to/{filename}; or train the encoder from scratch with "
        "--encoder_weights=none (or use --encoder=none, the plain UNet).",
        path_message="--encoder_weights={weights}: no such file. Give imagenet (the Keras "
        f"cache: {{cache}}), a path to the {encoder} no-top weights (.h5), or none.")


def build_encoder(encoder, encoder_weights="imagenet", alpha=1.0, name="encoder"):
    """A keras.applications backbone (include_top=False, any input size) cut into UNet features.

    Args:
        encoder: ``resnet50`` or ``mobilenet_v2``.
        encoder_weights: see ``resolve_encoder_weights``.
        alpha: MobileNetV2 width multiplier (1.0 for resnet50).
        name: the model name.

    Returns:
        A ``keras.Model`` mapping backbone-preprocessed (N, H, W, 3) images (see
        ``ImageNetPreprocess``) to the five feature maps at strides 2, 4, 8, 16, 32.

    Raises:
        EncoderWeightsMissingError: ImageNet weights asked for but absent.
        ValueError: unknown encoder, or a weights file that does not fit the backbone.
    """
    path = resolve_encoder_weights(encoder, encoder_weights, alpha)
    spec = _SPECS[encoder]
    constructor = getattr(keras.applications, spec["constructor"])
    options = dict(alpha=float(alpha)) if encoder == "mobilenet_v2" else {}
    try:
        backbone = constructor(include_top=False, weights=path, input_shape=(None, None, 3),
                               **options)
    except (ValueError, OSError, KeyError) as error:
        if path is None:
            raise
        raise ValueError(f"Could not load {encoder} weights from {path}: {error}. The file must "
                         f"hold the no-top {encoder} backbone"
                         + (f" with alpha={alpha}" if encoder == "mobilenet_v2" else "")
                         + f" (as {imagenet_weights_file(encoder, alpha)}).") from error
    outputs = [backbone.get_layer(layer).output for layer in spec["layers"]]
    return keras.Model(backbone.input, outputs, name=name)
