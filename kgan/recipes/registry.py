"""The model registry: each recipe module registers itself under its ``--model`` name with the
defaults it needs (``register``), as keras-hub's model folders register their presets; the
training CLI, ``TrainConfig.with_model_defaults`` and ``recipes.train`` look models up here.

A recipe module is anything with ``build(config, strategy)`` and
``train(config, strategy) -> (trainer, sample, generators)``.
"""

import dataclasses
import importlib

from kgan.core.errors import UsageError


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One registered model.

    Attributes:
        name: the ``--model`` name.
        module: the recipe module's import name.
        defaults: ``TrainConfig`` fields whose defaults differ for this model (applied to the
            fields a user did not set).
        summary: one line for ``--help``.
    """

    name: str
    module: str
    defaults: dict
    summary: str

    def load(self):
        """The recipe module."""
        return importlib.import_module(self.module)


_RECIPES = {}


def register(name, module, defaults=None, summary=""):
    """Registers a recipe module (call it at the bottom of the module: ``register("x",
    __name__, DEFAULTS, "...")``).

    Raises:
        ValueError: ``name`` is registered by another module.
    """
    existing = _RECIPES.get(name)
    if existing is not None and existing.module != module:
        raise ValueError(f"--model={name} is registered by {existing.module} already.")
    _RECIPES[name] = Recipe(name, module, dict(defaults or {}), summary)


def names():
    """The registered ``--model`` names, sorted."""
    return tuple(sorted(_RECIPES))


def get(name):
    """The ``Recipe`` registered as ``name``.

    Raises:
        UsageError: no such model (the message lists the registered ones).
    """
    if name not in _RECIPES:
        raise UsageError(f"Unknown --model={name}; use one of {', '.join(_RECIPES)}.")
    return _RECIPES[name]


def model_defaults(name):
    """The defaults ``name`` registered (``{}`` for an unknown name)."""
    recipe = _RECIPES.get(name)
    return dict(recipe.defaults) if recipe else {}
