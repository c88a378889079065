"""Figures of feature visualisations (matplotlib is imported by the functions only)."""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def grid(images: np.ndarray, titles: Sequence[str] | None = None, *, columns: int | None = None,
         size: float = 1.6):
    """A Figure showing ``images`` ``(N, H, W, C)`` in [0, 1] in a grid (never shown).

    Args:
      images: the images (1 or 3 channels).
      titles: one per image, or None.
      columns: grid columns (default about sqrt(N), at most 8).
      size: inches per image.
    """
    from matplotlib.figure import Figure

    images = np.clip(np.asarray(images, np.float32), 0, 1)
    n = len(images)
    cols = columns or min(8, max(1, math.ceil(math.sqrt(n))))
    rows = math.ceil(n / cols)
    fig = Figure(figsize=(cols * size, rows * (size + (0.25 if titles else 0))))
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i >= n:
            continue
        img = images[i]
        ax.imshow(img[..., 0] if img.shape[-1] == 1 else img[..., :3],
                  cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
        if titles:
            ax.set_title(str(titles[i]), fontsize=8)
    fig.tight_layout()
    return fig


def convergence(values: np.ndarray, title: str = ""):
    """A Figure of the objective per step, one line per image."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3))
    ax = fig.subplots()
    ax.plot(np.asarray(values), lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("objective")
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def reconstructions(originals: np.ndarray, images: np.ndarray, layers: Sequence[str], *,
                    size: float = 1.6):
    """Images x layers (Mahendran & Vedaldi's "reconstruction from different layers").

    Row ``n`` shows original ``n`` and then its reconstruction from each layer, left to
    right in the order given.

    Args:
      originals: ``(N, H, W, C)`` in [0, 1].
      images: ``(L, N, H, W, C)`` reconstructions (`tfvis.featurevis.Inversion.images`).
      layers: the column titles, one per layer.
      size: inches per image.
    """
    from matplotlib.figure import Figure

    originals = np.clip(np.asarray(originals, np.float32), 0, 1)
    images = np.clip(np.asarray(images, np.float32), 0, 1)
    if images.ndim != 5 or images.shape[1:] != originals.shape or len(layers) != len(images):
        raise ValueError(f"need (L, N, H, W, C) reconstructions of the (N, H, W, C) originals "
                         f"and L layer names, got {images.shape}, {originals.shape} and "
                         f"{len(layers)} names")
    n, cols = len(originals), len(layers) + 1
    fig = Figure(figsize=(cols * size, n * size + 0.3))
    axes = fig.subplots(n, cols, squeeze=False)
    for row in range(n):
        for col, ax in enumerate(axes[row]):
            img = originals[row] if col == 0 else images[col - 1, row]
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img[..., :3],
                      cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1)
            ax.set_xticks([])
            ax.set_yticks([])
            if row == 0:
                ax.set_title("original" if col == 0 else str(layers[col - 1]), fontsize=8)
    fig.tight_layout()
    return fig
