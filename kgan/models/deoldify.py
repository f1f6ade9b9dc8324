"""DeOldify's colourisers (jantic/DeOldify, MIT licence) as Keras networks.

DeOldify's generators take ImageNet-normalised RGB and end in ``SigmoidRange(-3, 3)``, i.e. they
predict ImageNet-normalised RGB. kgan's models take and give RGB in [-1, 1], so a DeOldify
colouriser is ``ImageNetPreprocess("torch")`` -> the network -> ``DeOldifyOutput`` (denormalise
and clamp to [0, 1] as fastai's ``pred_batch(reconstruct=True)`` does, then to [-1, 1]).
``is_deoldify_model`` tells the colourisation pipeline to use DeOldify's pre- and
post-processing for such a model.

Called by ``kgan.models.build_generator`` (``--generator=deoldify_*``), the DeOldify weight
conversion and the colourisation pipeline.
"""

import keras
from keras import ops

from kgan.models.encoders import TORCH_MEAN, TORCH_STD


@keras.saving.register_keras_serializable(package="kgan")
class DeOldifyOutput(keras.layers.Layer):
    """ImageNet-normalised RGB -> RGB in [-1, 1]: ``clip(x * std + mean, 0, 1) * 2 - 1``.

    fastai denormalises the prediction and clamps it to [0, 1] (``ImageList.reconstruct``)
    before DeOldify turns it into uint8. Computed in float32 (also under mixed precision).
    """

    def __init__(self, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)

    def call(self, inputs):
        x = ops.cast(inputs, "float32")
        mean = ops.convert_to_tensor(TORCH_MEAN, dtype="float32")
        std = ops.convert_to_tensor(TORCH_STD, dtype="float32")
        return ops.clip(x * std + mean, 0.0, 1.0) * 2.0 - 1.0

    def compute_output_shape(self, input_shape):
        return input_shape


def is_deoldify_model(model):
    """True when ``model`` ends in a ``DeOldifyOutput`` (a DeOldify colouriser)."""
    return any(isinstance(layer, DeOldifyOutput) for layer in model.layers)
