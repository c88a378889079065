"""Plotting: numpy image helpers and matplotlib figures (never call ``show()``).

Importing this package loads neither matplotlib nor OpenCV: they are imported by the
functions that draw, on first use. The computation explainers need (`normalize`) lives in
`tfvis.engine.imageops` and is re-exported here.
"""

from tfvis.plotting.evaluation import deletion_curves
from tfvis.plotting.figures import grid, show_map
from tfvis.plotting.inspect import (
    class_means,
    feature_maps,
    kernel_figure,
    layer_stats_figure,
    neighbours,
    top_classes,
    top_classes_figure,
    top_patches,
)
from tfvis.plotting.images import (
    colorize,
    image_batch,
    map_batch,
    normalize,
    overlay,
    resize,
    tile,
    to_uint8_rgb,
)
from tfvis.plotting.metrics import sanity_curves

__all__ = [
    "class_means",
    "colorize",
    "feature_maps",
    "kernel_figure",
    "layer_stats_figure",
    "neighbours",
    "top_classes",
    "top_classes_figure",
    "top_patches",
    "deletion_curves",
    "grid",
    "image_batch",
    "map_batch",
    "normalize",
    "overlay",
    "resize",
    "sanity_curves",
    "show_map",
    "tile",
    "to_uint8_rgb",
]
