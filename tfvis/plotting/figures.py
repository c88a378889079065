"""matplotlib figures. They take ``ax=``, return the Figure, and never call ``show()``.

Figures are built with `matplotlib.figure.Figure` directly (no pyplot state), so they work
headless and in notebooks alike (a Figure displays itself as the last expression of a cell).
matplotlib is imported when a figure is drawn, never when this module is imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from tfvis.plotting.images import _maps_of, image_batch, map_batch, overlay, to_uint8_rgb

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure


def _new_figure(**kwargs: Any) -> Figure:
    from matplotlib.figure import Figure  # deferred: only drawing needs matplotlib

    return Figure(**kwargs)


def show_map(
    image: np.ndarray,
    heatmap: Any,
    ax: Any = None,
    alpha: float = 0.5,
    cmap: str = "jet",
    title: str | None = None,
) -> Figure:
    """Draws ``heatmap`` (in [0, 1]) over ``image`` on ``ax`` (a new figure when None).

    Args:
      image: one image ``(H, W[, C])``, or a batch holding exactly one.
      heatmap: one map ``(H', W')``, a batch of one, or an `Explanation` of one image.
      ax: a matplotlib Axes to draw on; None makes a new Figure.
      title: optional axes title.

    Returns:
      The Figure that holds ``ax``.

    Raises:
      ValueError: more than one image or map (use `grid`); the message gives the shapes.
    """
    maps = map_batch(heatmap)
    images = image_batch(image, len(maps), "image")
    if len(maps) != 1 or len(images) != 1:
        raise ValueError(
            f"show_map draws one image and one map, got {len(images)} image(s) (shape "
            f"{np.shape(image)}) and {len(maps)} map(s) (shape {_maps_of(heatmap).shape}); "
            "use tfvis.plotting.grid for several"
        )
    if ax is None:
        ax = _new_figure(figsize=(3, 3)).add_subplot()
    ax.imshow(overlay(images[0], maps[0], alpha, cmap))
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
      images: one image ``(H, W[, C])`` or a batch ``(N, H, W[, C])``.
      explanations: column title -> `Explanation` or map array, one map per image
        (``(H', W')`` for one image, ``(N, H', W')`` for a batch).
      alpha, cmap: see `overlay`.
      row_titles: optional labels of the rows, one per image.
      cell_size: inches per cell.

    Returns:
      A new matplotlib Figure.

    Raises:
      ValueError: no images, or a column whose map count differs from the image count (the
        message gives both shapes).
    """
    columns = list(explanations)
    maps = {name: map_batch(explanations[name], f"the maps of {name!r}") for name in columns}
    count = len(maps[columns[0]]) if columns else None
    batch = image_batch(images, count)
    n = len(batch)
    if n == 0:
        raise ValueError(f"grid needs at least one image, got shape {np.shape(images)}")
    for name in columns:
        if len(maps[name]) != n:
            raise ValueError(
                f"{name!r} has {len(maps[name])} maps (shape "
                f"{_maps_of(explanations[name]).shape}) for {n} images (shape "
                f"{np.shape(images)}); pass one map per image"
            )
    if row_titles is not None and len(row_titles) != n:
        raise ValueError(f"got {len(row_titles)} row_titles for {n} images")
    fig = _new_figure(figsize=(cell_size * (len(columns) + 1), cell_size * n))
    axes = fig.subplots(n, len(columns) + 1, squeeze=False)
    for i, image in enumerate(batch):
        axes[i, 0].imshow(to_uint8_rgb(image))
        axes[i, 0].set_axis_off()
        if row_titles is not None:
            axes[i, 0].set_title(str(row_titles[i]), fontsize=9)
        elif i == 0:
            axes[i, 0].set_title("input", fontsize=9)
        for j, name in enumerate(columns, start=1):
            show_map(image, maps[name][i], axes[i, j], alpha, cmap, name if i == 0 else None)
    fig.tight_layout()
    return fig
