"""tfvis: see what a Keras / TensorFlow network has learned and why it decided.

Importing tfvis has no side effects: no environment variables, no global Keras policy, no
logging configuration.
"""

from tfvis.explainers import (
    CAM,
    REGISTRY,
    CounterfactualGradCAM,
    Deconvnet,
    Explainer,
    GradCAM,
    GradCAMPlusPlus,
    GradientInput,
    GuidedBackprop,
    GuidedGradCAM,
    IntegratedGradients,
    IntegratedGradientsExplanation,
    Occlusion,
    OcclusionExplanation,
    RISE,
    Saliency,
    SmoothGrad,
    get_explainer,
    methods,
)
from tfvis.explanation import Explanation
from tfvis.features import feature_saliency
from tfvis.surgery import layer_table

__version__ = "0.1.0"

__all__ = [
    "CAM",
    "REGISTRY",
    "CounterfactualGradCAM",
    "Deconvnet",
    "Explainer",
    "Explanation",
    "GradCAM",
    "GradCAMPlusPlus",
    "GradientInput",
    "GuidedBackprop",
    "GuidedGradCAM",
    "IntegratedGradients",
    "IntegratedGradientsExplanation",
    "Occlusion",
    "OcclusionExplanation",
    "RISE",
    "Saliency",
    "SmoothGrad",
    "feature_saliency",
    "get_explainer",
    "layer_table",
    "methods",
]
