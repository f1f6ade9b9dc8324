"""Building blocks shared by the network builders: initialisers, normalisation, size checks."""

import keras

from kgan.models.layers import BatchNorm, InstanceNormalization, SizeCheck

INIT_TYPES = ("normal", "xavier", "kaiming", "orthogonal")
NORMS = ("instance", "batch", "none")


def kernel_initializer(init_type="normal", init_gain=0.02, seed=None):
    """Returns the reference's conv weight initialiser (``networks.init_weights``).

    Args:
        init_type: ``normal`` N(0, gain), ``xavier`` (xavier_normal with gain), ``kaiming``
            (kaiming_normal, fan_in, a=0) or ``orthogonal`` (with gain).
        init_gain: the std of ``normal`` and the gain of ``xavier`` / ``orthogonal``.
        seed: optional seed.

    Returns:
        A ``keras.initializers.Initializer``.
    """
    if init_type == "normal":
        return keras.initializers.RandomNormal(0.0, init_gain, seed=seed)
    if init_type == "xavier":
        return keras.initializers.VarianceScaling(init_gain ** 2, "fan_avg",
                                                  "untruncated_normal", seed=seed)
    if init_type == "kaiming":
        return keras.initializers.VarianceScaling(2.0, "fan_in", "untruncated_normal", seed=seed)
    if init_type == "orthogonal":
        return keras.initializers.Orthogonal(gain=init_gain, seed=seed)
    raise ValueError(f"Unknown init_type {init_type!r}; use one of {', '.join(INIT_TYPES)}.")


def check_norm(norm):
    """Raises a clear error for an unknown ``norm`` name."""
    if norm not in NORMS:
        raise ValueError(f"Unknown norm {norm!r}; use one of {', '.join(NORMS)}.")


def uses_bias(norm):
    """The reference puts conv biases only where the norm has no offset of its own."""
    check_norm(norm)
    return norm != "batch"


def norm_layer(norm, name, init_gain=0.02):
    """Returns the normalisation layer for ``norm`` (None for ``none``).

    Batch norm uses momentum 0.9 and epsilon 1e-5 with gamma ~ N(1, init_gain), as the
    reference; instance norm has no affine parameters and no running statistics.
    """
    check_norm(norm)
    if norm == "instance":
        return InstanceNormalization(name=name)
    if norm == "batch":
        return BatchNorm(
            momentum=0.9, epsilon=1e-5, name=name,
            gamma_initializer=keras.initializers.RandomNormal(1.0, init_gain))
    return None


def apply_norm(x, norm, name, init_gain=0.02):
    """Applies ``norm_layer(norm)`` to ``x`` when there is one."""
    layer = norm_layer(norm, name, init_gain)
    return x if layer is None else layer(x)



def size_multiple(model):
    """Returns the size multiple a kgan network needs (1 when it has no ``SizeCheck`` layer)."""
    for layer in model.layers:
        if isinstance(layer, SizeCheck):
            return layer.multiple
    return 1
