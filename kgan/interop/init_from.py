"""Starts a CycleGAN or pix2pix run (or the restoration recipes' generator and critic) from
converted weights (``kgan.train --init_from=DIR``): the PyTorch reference's ``latest_net_*.pth``
files, kgan ``.keras`` files or a ``kgan.convert`` output folder, loaded into the already-built
networks of a new run; also DeOldify's ``*_gen.pth`` / ``*_crit.pth`` files and their converted
``generator.keras`` / ``discriminator.keras`` for ``--generator=deoldify_*`` runs (plain
converted convs into the training networks' spectral-normed ones, layer by layer name). A resumed run ignores ``--init_from`` (its checkpoint wins); that
decision belongs to ``kgan.recipes.common.initialize_from``, which calls ``init_from_folder``
only for a fresh run.
"""

import glob
import os

import keras
import numpy as np

from kgan.interop import deoldify_keys, deoldify_weights
from kgan.interop.pytorch_weights import (
    WeightMismatchError,
    assign_state_dict,
    read_state_dict,
)
from kgan.models.layers import SelfAttention2D

# CycleGAN: the reference's names (REFERENCE.md section 1.4) -> kgan.training.trainers.cyclegan.CycleGAN
# attributes. G_A maps A -> B; D_A judges domain B images (real B vs G_A(A)), so it is kgan's
# discriminator_b (build_cyclegan names that model "D_A").
CYCLEGAN_NAMES = {"G_A": "generator_ab", "G_B": "generator_ba",
                  "D_A": "discriminator_b", "D_B": "discriminator_a"}
PIX2PIX_NAMES = {"G": "generator", "D": "discriminator"}
# Files init_from_folder looks for, first match wins (kgan's own export names included).
_CANDIDATES = {
    "G_A": ("latest_net_G_A.pth", "G_A.keras", "AtoB.keras", "generators/AtoB.keras"),
    "G_B": ("latest_net_G_B.pth", "G_B.keras", "BtoA.keras", "generators/BtoA.keras"),
    "D_A": ("latest_net_D_A.pth", "D_A.keras"),
    "D_B": ("latest_net_D_B.pth", "D_B.keras"),
    "G": ("latest_net_G.pth", "G.keras", "generator.keras", "generators/generator.keras",
          "*_gen.pth"),
    "D": ("latest_net_D.pth", "D.keras", "discriminator.keras", "*_crit.pth"),
}


def trainer_networks(trainer):
    """``{reference name: kgan model}`` of a CycleGAN or pix2pix trainer (``CYCLEGAN_NAMES``,
    ``PIX2PIX_NAMES``), for ``init_from_folder``."""
    names = CYCLEGAN_NAMES if hasattr(trainer, "generator_ab") else PIX2PIX_NAMES
    return {name: getattr(trainer, attribute) for name, attribute in names.items()}


def _unwrapped(layer):
    return layer.layer if isinstance(layer, keras.layers.SpectralNormalization) else layer


def _copy_by_layer_name(target, source):
    """Copies ``source``'s weights into ``target`` layer by layer name, where one side's conv
    is wrapped in ``SpectralNormalization`` (``<name>_sn``) and the other's is not (a converted
    DeOldify network, plain, into a training one, spectral-normed: the kernel is the
    normalised one either way). Returns False when the layers do not correspond."""
    def weighted(model):
        out = {}
        for layer in model.layers:
            if layer.weights:
                sn = isinstance(layer, keras.layers.SpectralNormalization)
                out[layer.name.removesuffix("_sn") if sn else layer.name] = layer
        return out

    src, dst = weighted(source), weighted(target)
    if set(src) != set(dst):
        return False
    pairs = []
    for name, layer in dst.items():
        found = _matching(src[name], layer)
        if found is None:
            return False
        pairs += found
    for layer, weights in pairs:
        layer.set_weights(weights)
    return True


def _matching(a, b):
    """``[(target layer, source weights)]`` copying layer ``a`` into ``b`` (one side
    spectral-normed, or a self-attention layer whose 1x1 convs are), or None."""
    if isinstance(a, SelfAttention2D) and isinstance(b, SelfAttention2D):
        pairs = []
        for x, y in ((a.query, b.query), (a.key, b.key), (a.value, b.value)):
            found = _matching(x, y)
            if found is None:
                return None
            pairs += found
        b_gamma = [v for v in b.weights if v.path.endswith("gamma")]
        a_gamma = [v for v in a.weights if v.path.endswith("gamma")]
        return pairs + [(_Variable(b_gamma[0]), [np.asarray(a_gamma[0])])]
    if type(a) is not type(b):
        a, b = _unwrapped(a), _unwrapped(b)
    if [w.shape for w in a.get_weights()] != [w.shape for w in b.get_weights()]:
        return None
    return [(b, a.get_weights())]


class _Variable:
    """A variable with ``set_weights``, to be copied like a layer."""

    def __init__(self, variable):
        self.variable = variable

    def set_weights(self, weights):
        self.variable.assign(weights[0])


def _copy_keras(target, path, name):
    source = keras.saving.load_model(path, safe_mode=True, compile=False)
    src, dst = source.get_weights(), target.get_weights()
    if ([w.shape for w in src] != [w.shape for w in dst]
            and not _copy_by_layer_name(target, source)):
        raise WeightMismatchError(f"{path} ({source.name}, {source.count_params()} parameters) "
                                  f"does not fit {name} ({target.name}, "
                                  f"{target.count_params()} parameters); build the run with "
                                  "the flags that trained it.")
        return
    if [w.shape for w in src] == [w.shape for w in dst]:
        target.set_weights(src)


def _load_pth(target, path):
    """A reference ``latest_net_*.pth`` or a DeOldify ``*_gen.pth`` / ``*_crit.pth``."""
    state_dict = read_state_dict(path)  # also fastai's Learner.save, as DeOldify's files
    info = deoldify_keys.recognise(state_dict)
    if info is None:
        assign_state_dict(target, state_dict, os.path.basename(path))
        return
    prefix_of = (deoldify_weights.critic_prefix if info["kind"] == "critic"
                 else deoldify_weights.torch_prefix)
    deoldify_weights.assign_deoldify_state_dict(target, state_dict, os.path.basename(path),
                                                prefix_of)


def has_file(folder, name):
    """Whether ``folder`` holds a file ``init_from_folder`` would load for ``name``."""
    return _first_file(folder, name) is not None


def _first_file(folder, name):
    for candidate in _CANDIDATES[name]:
        paths = sorted(glob.glob(os.path.join(folder, candidate)))
        if paths and os.path.isfile(paths[0]):
            return paths[0]
    return None


def init_from_folder(folder, networks, model="cycle_gan", strict=True):
    """Loads converted or kgan weights into a new run's networks (``kgan.train --init_from``).

    File names per network (first found wins): CycleGAN ``G_A``: ``latest_net_G_A.pth``,
    ``G_A.keras``, ``AtoB.keras``, ``generators/AtoB.keras``; ``G_B`` likewise with ``BtoA``;
    ``D_A``: ``latest_net_D_A.pth`` or ``D_A.keras``; ``D_B`` likewise. pix2pix ``G``:
    ``latest_net_G.pth``, ``G.keras``, ``generator.keras``, ``generators/generator.keras``;
    ``D``: ``latest_net_D.pth`` or ``D.keras``. The reference's names map to kgan's
    ``CycleGAN`` as ``CYCLEGAN_NAMES``: G_A = generator_ab (A -> B), G_B = generator_ba,
    D_A = discriminator_b (judges B), D_B = discriminator_a.

    A CycleGAN folder holding none of its four names but one single generator (pix2pix's ``G``
    names: a ``kgan.convert`` output folder's ``generator.keras``, or the reference's published
    ``latest_net_G.pth``, which are A -> B test models) seeds ``G_A``; the other networks keep
    their fresh initialisation, whatever ``strict`` says.

    Args:
        folder: the folder holding the files.
        networks: ``{reference name: built kgan model}``, e.g. ``trainer_networks(trainer)``
            (a subset is fine: ``{"G": generator}`` for a restoration generator).
        model: ``cycle_gan`` or ``pix2pix`` (which names to expect).
        strict: every network must have a file; otherwise missing ones keep their fresh
            initialisation (see ``describe``), e.g. to fine-tune from a published generator.

    Returns:
        ``{reference name: the file loaded}``.

    Raises:
        FileNotFoundError: a missing folder, no file for any network, or (strict) a network
            without a file.
        WeightMismatchError: a file that does not fit its network.
    """
    expected = CYCLEGAN_NAMES if model == "cycle_gan" else PIX2PIX_NAMES
    if model not in ("cycle_gan", "pix2pix"):
        raise WeightMismatchError(f"--init_from supports cycle_gan and pix2pix, not {model}.")
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--init_from folder {folder} does not exist.")
    unknown = set(networks) - set(expected)
    if unknown:
        raise WeightMismatchError(f"{model} has no networks {sorted(unknown)}; its names are "
                                  f"{', '.join(expected)}.")

    def first_file(name):
        return _first_file(folder, name)

    found, missing = {}, []
    for name in expected:
        if name not in networks:
            continue
        path = first_file(name)
        if path is None:
            missing.append(f"{name} ({' or '.join(_CANDIDATES[name])})")
            continue
        found[name] = path
    if model == "cycle_gan" and not found and "G_A" in networks and first_file("G"):
        found, missing = {"G_A": first_file("G")}, []  # one converted A -> B generator
    elif missing and (strict or not found):
        single = (f"; or one generator ({' or '.join(_CANDIDATES['G'])}) for G_A"
                  if model == "cycle_gan" else "")
        raise FileNotFoundError(f"--init_from {folder} lacks {'; '.join(missing)}{single}.")
    for name, path in found.items():
        if path.endswith(".pth"):
            _load_pth(networks[name], path)
        else:
            _copy_keras(networks[name], path, name)
    return found


def describe(folder, found, networks):
    """One line saying what ``init_from_folder`` loaded and which networks start fresh, e.g.
    ``--init_from=DIR: G_A <- DIR/generator.keras; G_B, D_A, D_B start fresh``."""
    loaded = ", ".join(f"{name} <- {path}" for name, path in found.items())
    fresh = [name for name in networks if name not in found]
    return (f"--init_from={folder}: {loaded}"
            + (f"; {', '.join(fresh)} start{'s' if len(fresh) == 1 else ''} fresh"
               if fresh else ""))
