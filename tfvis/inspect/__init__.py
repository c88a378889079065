"""Inside the network and across a dataset: activations, gradients, kernels, layer statistics
and dead channels, top-k dataset patches with exact receptive fields, nearest neighbours,
boxes and segmentation from maps, class mean maps.

Computation only: figures are in `tfvis.plotting` (matplotlib and OpenCV load on use).
"""

from tfvis.inspect.activations import activations, gradients
from tfvis.inspect.classes import ClassMeans, class_mean_maps
from tfvis.inspect.kernels import kernels
from tfvis.inspect.localization import boxes, localization_error
from tfvis.inspect.neighbours import FeatureIndex
from tfvis.inspect.segmentation import segment
from tfvis.inspect.stats import LayerStats, layer_stats
from tfvis.inspect.top import TopActivations, top_activations
from tfvis.surgery.receptive import ReceptiveField, receptive_field

__all__ = [
    "ClassMeans",
    "FeatureIndex",
    "LayerStats",
    "ReceptiveField",
    "TopActivations",
    "activations",
    "boxes",
    "class_mean_maps",
    "gradients",
    "kernels",
    "layer_stats",
    "localization_error",
    "receptive_field",
    "segment",
    "top_activations",
]
