"""tfvis: see what a Keras / TensorFlow network has learned and why it decided.

Importing tfvis is cheap and has no side effects: no environment variables, no global Keras
policy, no logging configuration, and TensorFlow is imported only when a name that needs it is
first used (``tfvis.GradCAM``, ``tfvis.methods()``, ...). Every registered method is a
top-level name; `tfvis.plotting`, `tfvis.callbacks` and `tfvis.targets` are submodules loaded
on first access (plotting imports matplotlib and OpenCV only when it draws).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.2.0"

#: Top-level names that are not registered methods: name -> module defining it.
_NAMES = {
    "REGISTRY": "tfvis.explainers",
    "Explainer": "tfvis.explainers",
    "InputGradients": "tfvis.explainers",
    "IntegratedGradientsExplanation": "tfvis.explainers",
    "OcclusionExplanation": "tfvis.explainers",
    "get_explainer": "tfvis.explainers",
    "methods": "tfvis.explainers",
    "Explanation": "tfvis.explanation",
    "feature_saliency": "tfvis.features",
    "layer_table": "tfvis.surgery",
    "visualize": "tfvis.featurevis",
    "class_model": "tfvis.featurevis",
    "filters": "tfvis.featurevis",
    "multifaceted": "tfvis.featurevis",
    "deepdream": "tfvis.featurevis",
    "Visualization": "tfvis.featurevis",
    "invert": "tfvis.featurevis.inversion",
    "Inversion": "tfvis.featurevis.inversion",
    "Inverter": "tfvis.featurevis.inversion",
    "StyleTransfer": "tfvis.featurevis.style",
    "gram_matrix": "tfvis.featurevis.style",
    "InversionNetwork": "tfvis.featurevis.inversion_net",
    "style_transfer": "tfvis.featurevis.style",
    "fooling_image": "tfvis.featurevis.fooling",
    "adversarial": "tfvis.featurevis.adversarial",
    "AdversarialResult": "tfvis.featurevis.adversarial",
    "Attack": "tfvis.featurevis.adversarial",
    "explain_adversarial": "tfvis.featurevis.adversarial",
    "explain_dataset": "tfvis.distributed",
    "open_explanations": "tfvis.distributed",
    "DatasetExplanation": "tfvis.distributed",
}
_SUBMODULES = ("callbacks", "distributed", "engine", "explainers", "featurevis", "inputs", "inspect",
               "metrics", "plotting", "surgery", "targets")


def _method_classes() -> dict[str, Any]:
    from tfvis.explainers import REGISTRY

    return {cls.__name__: cls for cls in REGISTRY.values()}


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"tfvis.{name}")
    if name == "objectives":
        return importlib.import_module("tfvis.featurevis.objectives")
    if name in _NAMES:
        return getattr(importlib.import_module(_NAMES[name]), name)
    if name == "__all__":
        return sorted([*_NAMES, *_method_classes()])
    if not name.startswith("__"):
        classes = _method_classes()
        if name in classes:
            return classes[name]
    raise AttributeError(f"module 'tfvis' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES, *_SUBMODULES, "objectives", *_method_classes()])
