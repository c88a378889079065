"""Numpy image helpers: normalise maps, colourise, overlay on images -> uint8 RGB.

Everything here is numpy in, numpy out. Each function takes one image or a batch:

- maps (heatmaps): one ``(H, W)`` or a batch ``(N, H, W)``;
- images: one ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)``, or a batch ``(N, H, W[, C])``, of
  any numeric range. A 3-axis array is one image when its last axis is 1 or 3 (unless a
  matching number of maps says it is a grey batch), else a batch of grey images.

OpenCV is imported on first use, never at import, so explainers (which need only
`normalize`, computed in `tfvis.engine.imageops`) do not load it. OpenCV sizes are
``(W, H)``: that conversion happens in exactly one place, `resize`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfvis.engine.imageops import EPS, NORMALIZE_MODES, normalize

_MODES = NORMALIZE_MODES

__all__ = [
    "EPS",
    "colorize",
    "image_batch",
    "map_batch",
    "normalize",
    "overlay",
    "resize",
    "tile",
    "to_uint8_rgb",
]

_IMAGE_FORMS = "one image (H, W), (H, W, 1) or (H, W, 3), or a batch (N, H, W[, C])"


def _cv2():
    import cv2  # deferred: only drawing needs OpenCV

    return cv2


def _maps_of(maps: Any) -> np.ndarray:
    """The map array of an `Explanation` (anything with ``.maps``) or of an array."""
    return np.asarray(getattr(maps, "maps", maps))


def map_batch(maps: Any, what: str = "heatmap") -> np.ndarray:
    """Maps as a batch ``(N, H, W)`` float32: one ``(H, W)`` map gets a batch axis.

    Args:
      maps: ``(H, W)``, ``(N, H, W)``, ``(N, H, W, 1)`` or an `Explanation`.
      what: the name used in error messages.
    """
    m = _maps_of(maps).astype(np.float32, copy=False)
    if m.ndim == 4 and m.shape[-1] == 1:
        m = m[..., 0]
    if m.ndim == 2:
        m = m[None]
    if m.ndim != 3:
        raise ValueError(
            f"{what} must be one map (H, W) or a batch (N, H, W); got shape "
            f"{_maps_of(maps).shape}"
        )
    return m


def image_batch(images: Any, count: int | None = None, what: str = "images") -> np.ndarray:
    """Images as a batch ``(N, H, W[, C])``: one image gets a batch axis.

    A 3-axis array ``(A, B, C)`` is one image when ``C`` is 1 or 3, except when ``count``
    (the number of maps it goes with) is ``A`` and not 1: then it is a batch of grey images.
    Any other 3-axis array is a batch of grey images.

    Args:
      images: one image or a batch (see the module docstring).
      count: the number of maps these images go with, used only to read 3-axis arrays.
      what: the name used in error messages.
    """
    a = np.asarray(images)
    if a.ndim == 2:
        return a[None]
    if a.ndim == 3:
        one_image = a.shape[-1] in (1, 3) and not (count not in (None, 1) and a.shape[0] == count)
        return a[None] if one_image else a
    if a.ndim == 4:
        return a
    raise ValueError(f"{what} must be {_IMAGE_FORMS}; got shape {a.shape}")


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize to ``(height, width)`` of one ``(H, W)`` / ``(H, W, C)`` array or of a
    batch ``(N, H, W, C)`` (each image resized). A 3-axis array is read as ``(H, W, C)``.
    """
    a = np.asarray(array, dtype=np.float32)
    if a.ndim == 4:
        return np.stack([resize(i, height, width) for i in a]) if len(a) else \
            np.zeros((0, height, width, a.shape[-1]), np.float32)
    if a.ndim not in (2, 3):
        raise ValueError(
            f"resize expects (H, W), (H, W, C) or a batch (N, H, W, C); got shape {a.shape}"
        )
    if a.shape[:2] == (height, width):
        return a
    cv2 = _cv2()
    out = cv2.resize(a, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    if a.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """An image of any range and 1 or 3 channels as displayable uint8 RGB ``(H, W, 3)``.

    uint8 images are kept as they are; float images in [0, 1] or [0, 255] are scaled by that
    range; anything else is min-max scaled for display. A batch ``(N, H, W, C)`` gives
    ``(N, H, W, 3)``, each image scaled on its own range.
    """
    img = np.asarray(image)
    if img.ndim == 4 and img.shape[-1] in (1, 3):
        return np.stack([to_uint8_rgb(i) for i in img]) if len(img) else \
            np.zeros((0, *img.shape[1:3], 3), np.uint8)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(
            f"expected an (H, W), (H, W, 1) or (H, W, 3) image, or a batch (N, H, W, C) of "
            f"them; got shape {np.shape(image)}"
        )
    if img.dtype == np.uint8:
        return img.copy()
    img = img.astype(np.float32)
    lo, hi = float(img.min()), float(img.max())
    if lo >= 0 and hi <= 1:
        img = img * 255
    elif not (lo >= 0 and hi <= 255):
        img = (img - lo) / max(hi - lo, EPS) * 255
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def colorize(heatmap: np.ndarray, cmap: str = "jet") -> np.ndarray:
    """Maps values in [0, 1] to uint8 RGB with an OpenCV colormap name.

    Args:
      heatmap: one map ``(H, W)`` -> ``(H, W, 3)``, or a batch ``(N, H, W)`` ->
        ``(N, H, W, 3)``. Values outside [0, 1] are clipped, NaN shows as 0.
      cmap: an OpenCV colormap name (jet, turbo, magma, viridis, ...).
    """
    cv2 = _cv2()
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}", None)
    if code is None:
        raise ValueError(f"unknown colormap {cmap!r}; use an OpenCV name such as jet, turbo, magma")
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim == 3:
        return np.stack([colorize(m, cmap) for m in h]) if len(h) else \
            np.zeros((*h.shape, 3), np.uint8)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be (H, W) or a batch (N, H, W), got shape {h.shape}")
    scaled = np.uint8(np.round(np.clip(np.nan_to_num(h), 0, 1) * 255))
    return cv2.cvtColor(cv2.applyColorMap(scaled, code), cv2.COLOR_BGR2RGB)


def _overlay_one(image: np.ndarray, heatmap: np.ndarray, alpha: float, cmap: str) -> np.ndarray:
    rgb = to_uint8_rgb(image)
    heat = resize(np.asarray(heatmap, dtype=np.float32), *rgb.shape[:2])
    colour = colorize(heat, cmap).astype(np.float32)
    return np.clip(np.round((1 - alpha) * rgb + alpha * colour), 0, 255).astype(np.uint8)


def overlay(image: Any, heatmap: Any, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blends a colourised ``heatmap`` in [0, 1] over ``image`` -> uint8 RGB of the image size.

    The heatmap is resized to the image (so grey and non-square images work) and blended as
    ``(1 - alpha) * image + alpha * colour``.

    Args:
      image: one image ``(H, W[, C])`` or a batch ``(N, H, W[, C])``.
      heatmap: one map ``(H', W')``, a batch ``(N, H', W')`` or an `Explanation`.
      alpha: weight of the colour, in [0, 1].
      cmap: an OpenCV colormap name.

    Returns:
      ``(H, W, 3)`` for one image and one map; ``(N, H, W, 3)`` when either is a batch
      (a batch of one included).

    Raises:
      ValueError: ``alpha`` outside [0, 1], or image and map counts that differ (the message
        gives both shapes).
    """
    if not 0 <= alpha <= 1:
        raise ValueError("alpha must be in [0, 1]")
    heat = _maps_of(heatmap)
    img = np.asarray(image)
    if heat.ndim == 2 and (img.ndim == 2 or (img.ndim == 3 and img.shape[-1] in (1, 3))):
        return _overlay_one(img, heat, alpha, cmap)
    maps = map_batch(heat)
    images = image_batch(img, len(maps), "image")
    if len(images) != len(maps):
        raise ValueError(
            f"overlay got {len(images)} image(s) (shape {img.shape}) and {len(maps)} map(s) "
            f"(shape {heat.shape}); pass one map per image"
        )
    return np.stack([_overlay_one(i, m, alpha, cmap) for i, m in zip(images, maps)])


def tile(images: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tiles images into one uint8 RGB grid image (white gaps), row by row.

    Args:
      images: a batch ``(N, h, w[, C])`` (or one image); uint8 RGB is used as is, anything
        else goes through `to_uint8_rgb`.
      columns: images per row (default: ``ceil(sqrt(N))``).
      gap: white pixels between images.
    """
    batch = image_batch(images)
    if batch.dtype != np.uint8 or batch.ndim != 4 or batch.shape[-1] != 3:
        batch = to_uint8_rgb(batch if batch.ndim == 4 else batch[..., None])
    n, h, w = batch.shape[:3]
    if n == 0:
        raise ValueError("tile needs at least one image, got an empty batch")
    columns = columns or int(np.ceil(np.sqrt(n)))
    if columns < 1 or gap < 0:
        raise ValueError(f"columns must be >= 1 and gap >= 0, got columns={columns}, gap={gap}")
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(batch):
        r, c = divmod(k, columns)
        grid[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = image
    return grid
