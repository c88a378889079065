"""Feature visualisation by optimisation: what a unit or class wants to see.

`visualize` optimises images for composable `objectives` (class logits, channels, neurons,
layer norms, directions, diversity) through one compiled loop (`loop.Visualizer`) with pixel or
Fourier `params`, `regularizers` and random `transforms`. `class_model`, `filters`,
`deepdream` and `multifaceted` are thin methods over it; each returns a `Visualization`.
"""

from tfvis.featurevis import objectives, params, regularizers, transforms
from tfvis.featurevis.deepdream import deepdream
from tfvis.featurevis.loop import Visualizer, score_images
from tfvis.featurevis.methods import class_model, filters, visualize
from tfvis.featurevis.multifaceted import multifaceted
from tfvis.featurevis.params import color_decorrelation
from tfvis.featurevis.result import Visualization

__all__ = [
    "Visualization",
    "Visualizer",
    "class_model",
    "color_decorrelation",
    "deepdream",
    "filters",
    "multifaceted",
    "objectives",
    "params",
    "regularizers",
    "score_images",
    "transforms",
    "visualize",
]
