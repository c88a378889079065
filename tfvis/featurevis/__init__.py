"""Feature visualisation by optimisation: what a unit or class wants to see.

`visualize` optimises images for composable `objectives` (class logits, channels, neurons,
layer norms, directions, diversity) through one compiled loop (`loop.Visualizer`) with pixel or
Fourier `params`, `regularizers` and random `transforms`. `class_model`, `filters`,
`deepdream` and `multifaceted` are thin methods over it; each returns a `Visualization`.
`invert` (feature inversion, Mahendran & Vedaldi) and `style_transfer` (Gatys et al.) are
losses on the same loop (`objectives.feature_match`, `objectives.gram_match`).
"""

from tfvis.featurevis import objectives, params, regularizers, transforms
from tfvis.featurevis.deepdream import deepdream
from tfvis.featurevis.inversion import Inversion, Inverter, invert
from tfvis.featurevis.loop import Visualizer, score_images
from tfvis.featurevis.methods import class_model, filters, visualize
from tfvis.featurevis.multifaceted import multifaceted
from tfvis.featurevis.params import color_decorrelation
from tfvis.featurevis.result import Visualization
from tfvis.featurevis.style import StyleTransfer, gram_matrix, style_transfer

__all__ = [
    "Inversion",
    "Inverter",
    "StyleTransfer",
    "Visualization",
    "Visualizer",
    "class_model",
    "color_decorrelation",
    "deepdream",
    "filters",
    "gram_matrix",
    "invert",
    "multifaceted",
    "objectives",
    "params",
    "regularizers",
    "score_images",
    "style_transfer",
    "transforms",
    "visualize",
]
