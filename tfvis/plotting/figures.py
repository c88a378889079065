"""matplotlib figures. They take ``ax=``, return the Figure, and never call ``show()``.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state), so they work
headless and in notebooks alike (a Figure displays itself as the last expression of a cell).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from tfvis.plotting.images import overlay, to_uint8_rgb


def _maps_of(explanation: Any) -> np.ndarray:
    return np.asarray(getattr(explanation, "maps", explanation))


def show_map(
    image: np.ndarray,
    heatmap: np.ndarray,
    ax: Any = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """Draws ``heatmap`` (in [0, 1]) over ``image`` on ``ax`` (a new figure when None)."""
    if ax is None:
        ax = Figure(figsize=(3, 3)).add_subplot()
    ax.imshow(overlay(image, heatmap, alpha, cmap))
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure


def grid(
    images: np.ndarray,
    explanations: Mapping[str, Any],
    alpha: float = 0.5,
    cmap: str = "jet",
    row_titles: Sequence[str] | None = None,
    cell_size: float = 2.0,
) -> Figure:
    """A grid of images (rows) x methods (columns), the input first.

    Args:
      images: ``(N, H, W[, C])`` inputs.
      explanations: column title -> `Explanation` (or an ``(N, H, W)`` map array).
      row_titles: optional labels of the rows.
    """
    images = np.asarray(images)
    columns = list(explanations)
    for name in columns:
        if len(_maps_of(explanations[name])) != len(images):
            raise ValueError(f"{name!r} has {len(_maps_of(explanations[name]))} maps for "
                             f"{len(images)} images")
    fig = Figure(figsize=(cell_size * (len(columns) + 1), cell_size * len(images)))
    axes = fig.subplots(len(images), len(columns) + 1, squeeze=False)
    for i, image in enumerate(images):
        axes[i, 0].imshow(to_uint8_rgb(image))
        axes[i, 0].set_axis_off()
        if row_titles is not None:
            axes[i, 0].set_title(str(row_titles[i]), fontsize=9)
        elif i == 0:
            axes[i, 0].set_title("input", fontsize=9)
        for j, name in enumerate(columns, start=1):
            show_map(image, _maps_of(explanations[name])[i], axes[i, j], alpha, cmap,
                     name if i == 0 else None)
    fig.tight_layout()
    return fig
