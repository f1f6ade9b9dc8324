"""torchvision's ResNet bodies (ResNet-34: BasicBlock 3-4-6-3; ResNet-101: Bottleneck
3-4-23-3) as Keras layers with PyTorch's padding and layer layout, so PyTorch weights load one
to one: the DeOldify generators' encoders (fastai's ``create_body``: conv1, bn1, relu, maxpool,
layer1-4, no pooling head).

Layers are named after torchvision's modules with ``_`` for ``.`` (``conv1``, ``bn1``,
``layer1_0_conv1``, ``layer3_0_downsample_0``); strided convolutions pad explicitly as PyTorch
does (``ZeroPadding2D`` + ``valid``), so odd feature-map sizes match PyTorch exactly; the max
pool pads with zeros, which equals PyTorch's -inf padding because it follows a ReLU.

Called by kgan.models.deoldify.
"""

import keras
from keras import layers

from kgan.models.layers import BatchNorm

BLOCKS = {"resnet34": ("basic", (3, 4, 6, 3)), "resnet101": ("bottleneck", (3, 4, 23, 3))}
EXPANSION = {"basic": 1, "bottleneck": 4}
BN_EPSILON = 1e-5  # PyTorch's BatchNorm2d default
BN_MOMENTUM = 0.9  # PyTorch's momentum 0.1


def batch_norm(x, name, gamma=1.0, beta=0.0):
    """PyTorch-equivalent BatchNorm2d (epsilon 1e-5, momentum 0.1)."""
    return BatchNorm(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=name,
        gamma_initializer=keras.initializers.Constant(gamma),
        beta_initializer=keras.initializers.Constant(beta))(x)


def torch_conv(x, filters, kernel_size, stride=1, padding=0, use_bias=False, name=None,
               kernel_initializer="he_normal"):
    """``nn.Conv2d(..., stride, padding)``: explicit zero padding, then a valid convolution."""
    if padding:
        x = layers.ZeroPadding2D(padding, name=name + "_pad")(x)
    return layers.Conv2D(filters, kernel_size, strides=stride, padding="valid",
                         use_bias=use_bias, kernel_initializer=kernel_initializer,
                         name=name)(x)


def _block(x, kind, planes, stride, downsample, name):
    identity = x
    if kind == "basic":
        y = torch_conv(x, planes, 3, stride, 1, name=name + "_conv1")
        y = layers.ReLU(name=name + "_relu1")(batch_norm(y, name + "_bn1"))
        y = batch_norm(torch_conv(y, planes, 3, 1, 1, name=name + "_conv2"), name + "_bn2")
        out_planes = planes
    else:
        y = torch_conv(x, planes, 1, name=name + "_conv1")
        y = layers.ReLU(name=name + "_relu1")(batch_norm(y, name + "_bn1"))
        y = torch_conv(y, planes, 3, stride, 1, name=name + "_conv2")
        y = layers.ReLU(name=name + "_relu2")(batch_norm(y, name + "_bn2"))
        y = batch_norm(torch_conv(y, planes * 4, 1, name=name + "_conv3"), name + "_bn3")
        out_planes = planes * 4
    if downsample:
        identity = torch_conv(x, out_planes, 1, stride, name=name + "_downsample_0")
        identity = batch_norm(identity, name + "_downsample_1")
    y = layers.Add(name=name + "_add")([y, identity])
    return layers.ReLU(name=name + "_out")(y)


def resnet_body(x, arch="resnet101", width=64, blocks=None):
    """Applies a torchvision ResNet body to ``x`` (ImageNet-normalised RGB, NHWC).

    Args:
        x: the input tensor.
        arch: ``resnet34`` (BasicBlock) or ``resnet101`` (Bottleneck).
        width: channels of conv1 (64 in torchvision; smaller for tests).
        blocks: blocks per stage (default: the architecture's).

    Returns:
        A list of five tensors, the outputs of torchvision's children 2 (relu, stride 2) and
        4-7 (layer1 at stride 4, layer2 at 8, layer3 at 16, layer4 at 32).
    """
    kind, default_blocks = BLOCKS[arch]
    blocks = tuple(blocks or default_blocks)
    x = torch_conv(x, width, 7, 2, 3, name="conv1")
    relu = layers.ReLU(name="relu")(batch_norm(x, "bn1"))
    x = layers.ZeroPadding2D(1, name="maxpool_pad")(relu)
    x = layers.MaxPooling2D(3, 2, padding="valid", name="maxpool")(x)
    outputs = [relu]
    inplanes = width
    for stage, count in enumerate(blocks):
        planes = width * 2 ** stage
        stride = 1 if stage == 0 else 2
        for b in range(count):
            name = f"layer{stage + 1}_{b}"
            downsample = b == 0 and (stride != 1 or inplanes != planes * EXPANSION[kind])
            x = _block(x, kind, planes, stride if b == 0 else 1, downsample, name)
        inplanes = planes * EXPANSION[kind]
        outputs.append(x)
    return outputs


def skip_channels(arch, width=64):
    """Channels of ``resnet_body``'s five outputs."""
    e = EXPANSION[BLOCKS[arch][0]]
    return (width, width * e, width * 2 * e, width * 4 * e, width * 8 * e)
