"""All explainers, and the registry name -> class used by the demo, the CLI, callbacks and tests.

Adding a method is one new file in this package: an `Explainer` subclass with a ``name``, a
``title`` and a ``gallery_order``, and its ``explain_batch`` or family hook. The registry is
found by scanning this package's modules once, at import: `tfvis.__all__`, `tfvis.methods()`,
the command's choices, the README table check and the contract tests all derive from it.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from types import MappingProxyType
from typing import Any, Mapping

from tfvis.explainers.base import Explainer


def _discover() -> tuple[type[Explainer], ...]:
    """Every registered method class in this package, in gallery order."""
    found: dict[int, type[Explainer]] = {}
    for module in pkgutil.iter_modules(__path__):
        loaded = importlib.import_module(f"{__name__}.{module.name}")
        for value in vars(loaded).values():
            if (isinstance(value, type) and issubclass(value, Explainer)
                    and value.__module__ == loaded.__name__ and "name" in vars(value)
                    and value.name):
                found[id(value)] = value
    classes = sorted(found.values(), key=lambda c: (c.gallery_order, c.name))
    names = [c.name for c in classes]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ImportError(f"two explainers are registered as {duplicated}")
    return tuple(classes)


_EXPLAINERS = _discover()

REGISTRY: Mapping[str, type[Explainer]] = MappingProxyType({c.name: c for c in _EXPLAINERS})

#: Public classes of this package: the registered methods and the other names users import.
_PUBLIC = {c.__name__: c for c in _EXPLAINERS}


def methods() -> list[str]:
    """Registry names of all methods, in gallery order."""
    return list(REGISTRY)


def _spelling(name: str) -> str:
    # "Grad-CAM++", "gradcam_pp" and "GradCAMPP" all read "gradcampp".
    return "".join(c for c in str(name).lower().replace("+", "p") if c.isalnum())


def get_explainer(name: str, model: Any, **options: Any) -> Explainer:
    """Builds the explainer registered as ``name`` for ``model``.

    Args:
      name: a registry name from `methods()` or a method's title (``"Grad-CAM++"``); case,
        spaces, ``-`` and ``_`` are ignored.
      model: the Keras model to explain.
      **options: constructor options of that method (``layer=``, ``output=``, ...).

    Raises:
      ValueError: unknown name, with close matches.
    """
    return explainer_class(name)(model, **options)


def explainer_class(name: str) -> type[Explainer]:
    """The registered class for a registry name or title (see `get_explainer`)."""
    spellings = {_spelling(s): c for c in _EXPLAINERS for s in (c.name, c.title)}
    cls = spellings.get(_spelling(name))
    if cls is None:
        key = str(name).lower().replace("-", "_").replace(" ", "_")
        close = difflib.get_close_matches(key, list(REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Available: {', '.join(REGISTRY)}")
    return cls


def __getattr__(name: str) -> Any:
    if name in _PUBLIC:
        return _PUBLIC[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


from tfvis.explainers.gradients import InputGradients  # noqa: E402  (a base users subclass)
from tfvis.explainers.integrated import IntegratedGradientsExplanation  # noqa: E402
from tfvis.explainers.occlusion import OcclusionExplanation  # noqa: E402

__all__ = sorted([
    *_PUBLIC, "Explainer", "InputGradients", "IntegratedGradientsExplanation",
    "OcclusionExplanation", "REGISTRY", "explainer_class", "get_explainer", "methods",
])
