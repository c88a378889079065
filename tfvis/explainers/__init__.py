"""All explainers, and the registry name -> class used by the demo, the CLI and callbacks.

Adding a method: one file with an `Explainer` subclass (``name``, ``title``,
``explain_batch`` or a family hook), plus its class in ``_EXPLAINERS`` below.
"""

from __future__ import annotations

import difflib
from types import MappingProxyType
from typing import Any, Mapping

from tfvis.explainers.base import Explainer
from tfvis.explainers.cam import CAM, CounterfactualGradCAM, GradCAM, GradCAMPlusPlus
from tfvis.explainers.gradients import (
    Deconvnet,
    GradientInput,
    GuidedBackprop,
    GuidedGradCAM,
    InputGradients,
    Saliency,
)
from tfvis.explainers.integrated import IntegratedGradients, IntegratedGradientsExplanation
from tfvis.explainers.smoothing import SmoothGrad
from tfvis.explainers.occlusion import Occlusion, OcclusionExplanation
from tfvis.explainers.rise import RISE

_EXPLAINERS: tuple[type[Explainer], ...] = (
    CAM,
    GradCAM,
    GradCAMPlusPlus,
    CounterfactualGradCAM,
    Saliency,
    GuidedBackprop,
    Deconvnet,
    GradientInput,
    SmoothGrad,
    IntegratedGradients,
    GuidedGradCAM,
    Occlusion,
    RISE,
)

REGISTRY: Mapping[str, type[Explainer]] = MappingProxyType({c.name: c for c in _EXPLAINERS})


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
    spellings = {_spelling(s): c for c in _EXPLAINERS for s in (c.name, c.title)}
    cls = spellings.get(_spelling(name))
    if cls is None:
        key = str(name).lower().replace("-", "_").replace(" ", "_")
        close = difflib.get_close_matches(key, list(REGISTRY), n=3, cutoff=0.4)
        hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
        raise ValueError(f"unknown method {name!r}.{hint} Available: {', '.join(REGISTRY)}")
    return cls(model, **options)


__all__ = [
    "CAM",
    "CounterfactualGradCAM",
    "Deconvnet",
    "Explainer",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientInput",
    "GuidedBackprop",
    "GuidedGradCAM",
    "InputGradients",
    "IntegratedGradients",
    "IntegratedGradientsExplanation",
    "Occlusion",
    "OcclusionExplanation",
    "RISE",
    "REGISTRY",
    "Saliency",
    "SmoothGrad",
    "get_explainer",
    "methods",
]
