"""Plotting: numpy/OpenCV image helpers and matplotlib figures (never call ``show()``)."""

from tfvis.plotting.figures import grid, show_map
from tfvis.plotting.images import colorize, normalize, overlay, resize, to_uint8_rgb

__all__ = ["colorize", "grid", "normalize", "overlay", "resize", "show_map", "to_uint8_rgb"]
