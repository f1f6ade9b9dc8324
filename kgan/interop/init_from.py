"""Starts a CycleGAN or pix2pix run (or the restoration recipes' generator) from converted
weights (``kgan.train --init_from=DIR``): the PyTorch reference's ``latest_net_*.pth`` files,
kgan ``.keras`` files or a ``kgan.convert`` output folder, loaded into the already-built
networks of a new run. A resumed run ignores ``--init_from`` (its checkpoint wins); that
decision belongs to ``kgan.recipes.common.initialize_from``, which calls ``init_from_folder``
only for a fresh run.
"""

import os

import keras

from kgan.interop import torch_pickle
from kgan.interop.pytorch_weights import WeightMismatchError, assign_state_dict

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
    "G": ("latest_net_G.pth", "G.keras", "generator.keras", "generators/generator.keras"),
    "D": ("latest_net_D.pth", "D.keras"),
}


def trainer_networks(trainer):
    """``{reference name: kgan model}`` of a CycleGAN or pix2pix trainer (``CYCLEGAN_NAMES``,
    ``PIX2PIX_NAMES``), for ``init_from_folder``."""
    names = CYCLEGAN_NAMES if hasattr(trainer, "generator_ab") else PIX2PIX_NAMES
    return {name: getattr(trainer, attribute) for name, attribute in names.items()}


def _copy_keras(target, path, name):
    source = keras.saving.load_model(path, safe_mode=True, compile=False)
    src, dst = source.get_weights(), target.get_weights()
    if [w.shape for w in src] != [w.shape for w in dst]:
        raise WeightMismatchError(f"{path} ({source.name}, {source.count_params()} parameters) "
                                  f"does not fit {name} ({target.name}, "
                                  f"{target.count_params()} parameters); build the run with "
                                  "the flags that trained it.")
    target.set_weights(src)


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
        paths = [os.path.join(folder, c) for c in _CANDIDATES[name]]
        return next((p for p in paths if os.path.isfile(p)), None)

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
            assign_state_dict(networks[name], torch_pickle.load_state_dict(path),
                              os.path.basename(path))
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
