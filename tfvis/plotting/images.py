"""Numpy/OpenCV image helpers: normalise maps, colourise, overlay on images -> uint8 RGB.

Everything here is pure numpy in, numpy out; shapes are ``(H, W)`` maps and ``(H, W)``,
``(H, W, 1)`` or ``(H, W, 3)`` images of any numeric range. OpenCV sizes are ``(W, H)``:
that conversion happens in exactly one place, `resize`.
"""

from __future__ import annotations

import warnings

import cv2
import numpy as np

EPS = 1e-8
_MODES = ("minmax", "positive", "absolute", "diverging")


def normalize(
    maps: np.ndarray,
    mode: str = "minmax",
    clip_percentile: float | None = None,
    warn_constant: bool = False,
) -> np.ndarray:
    """Normalises each map (over its last two axes) to [0, 1] (``diverging``: [-1, 1]).

    Args:
      maps: ``(H, W)`` or a batch ``(..., H, W)``.
      mode: ``minmax`` (min -> 0, max -> 1), ``positive`` (negatives -> 0, max -> 1),
        ``absolute`` (|m| / max |m|), ``diverging`` (m / max |m|, sign kept).
      clip_percentile: clip values above this percentile of each map (and, for signed
        modes, below its mirror) before scaling; e.g. 99 tames single hot pixels.
      warn_constant: warn when a map is constant (it normalises to all zeros).

    Returns:
      float32 maps of the same shape; constant maps become zeros, never NaN.
    """
    if mode not in _MODES:
        raise ValueError(f"mode must be one of {_MODES}, got {mode!r}")
    m = np.asarray(maps, dtype=np.float32)
    if not np.all(np.isfinite(m)):
        raise ValueError("maps contain NaN or Inf; they cannot be normalised")
    axes = (-2, -1)
    if clip_percentile is not None:
        if not 0 < clip_percentile <= 100:
            raise ValueError("clip_percentile must be in (0, 100]")
        hi = np.percentile(m, clip_percentile, axis=axes, keepdims=True)
        lo = np.percentile(m, 100 - clip_percentile, axis=axes, keepdims=True)
        if mode == "minmax":
            m = np.clip(m, lo, hi)
        else:
            bound = np.percentile(np.abs(m), clip_percentile, axis=axes, keepdims=True)
            m = np.clip(m, -bound, bound)
    if mode == "minmax":
        m = m - m.min(axis=axes, keepdims=True)
        scale = m.max(axis=axes, keepdims=True)
    elif mode == "positive":
        m = np.maximum(m, 0)
        scale = m.max(axis=axes, keepdims=True)
    else:
        if mode == "absolute":
            m = np.abs(m)
        scale = np.abs(m).max(axis=axes, keepdims=True)
    constant = scale <= EPS
    if warn_constant and np.any(constant):
        count = int(np.sum(constant))
        warnings.warn(
            f"{count} map(s) are constant (e.g. all zero): they are shown as zeros. The target "
            "may not depend on the explained layer, or its evidence is all negative.",
            RuntimeWarning,
            stacklevel=3,
        )
    return np.where(constant, 0.0, m / np.maximum(scale, EPS)).astype(np.float32)


def resize(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """Bilinear resize of an ``(H, W)`` or ``(H, W, C)`` array to ``(height, width)``."""
    a = np.asarray(array, dtype=np.float32)
    if a.shape[:2] == (height, width):
        return a
    out = cv2.resize(a, (int(width), int(height)), interpolation=cv2.INTER_LINEAR)
    if a.ndim == 3 and out.ndim == 2:
        out = out[..., None]
    return out


def to_uint8_rgb(image: np.ndarray) -> np.ndarray:
    """An image of any range and 1 or 3 channels as displayable uint8 RGB ``(H, W, 3)``.

    uint8 images are kept as they are; float images in [0, 1] or [0, 255] are scaled by that
    range; anything else is min-max scaled for display.
    """
    img = np.asarray(image)
    if img.ndim == 3 and img.shape[-1] == 1:
        img = img[..., 0]
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=-1)
    if img.ndim != 3 or img.shape[-1] != 3:
        raise ValueError(f"expected an (H, W), (H, W, 1) or (H, W, 3) image, got {img.shape}")
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
    """Maps a ``(H, W)`` array in [0, 1] to uint8 RGB with an OpenCV colormap name."""
    code = getattr(cv2, f"COLORMAP_{cmap.upper()}", None)
    if code is None:
        raise ValueError(f"unknown colormap {cmap!r}; use an OpenCV name such as jet, turbo, magma")
    h = np.asarray(heatmap, dtype=np.float32)
    if h.ndim != 2:
        raise ValueError(f"heatmap must be (H, W), got {h.shape}")
    scaled = np.uint8(np.round(np.clip(np.nan_to_num(h), 0, 1) * 255))
    return cv2.cvtColor(cv2.applyColorMap(scaled, code), cv2.COLOR_BGR2RGB)


def overlay(
    image: np.ndarray, heatmap: np.ndarray, alpha: float = 0.5, cmap: str = "jet"
) -> np.ndarray:
    """Blends a colourised ``heatmap`` in [0, 1] over ``image`` -> uint8 RGB of the image size.

    The heatmap is resized to the image (so grey and non-square images work) and blended as
    ``(1 - alpha) * image + alpha * colour``.
    """
    if not 0 <= alpha <= 1:
        raise ValueError("alpha must be in [0, 1]")
    rgb = to_uint8_rgb(image)
    heat = resize(np.asarray(heatmap, dtype=np.float32), *rgb.shape[:2])
    colour = colorize(heat, cmap).astype(np.float32)
    return np.clip(np.round((1 - alpha) * rgb + alpha * colour), 0, 255).astype(np.uint8)


def tile(images: np.ndarray, columns: int | None = None, gap: int = 1) -> np.ndarray:
    """Tiles uint8 RGB images ``(N, h, w, 3)`` into one grid image (white gaps)."""
    images = np.asarray(images, dtype=np.uint8)
    n, h, w = images.shape[:3]
    columns = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / columns))
    grid = np.full((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), 255, np.uint8)
    for k, image in enumerate(images):
        r, c = divmod(k, columns)
        grid[r * (h + gap): r * (h + gap) + h, c * (w + gap): c * (w + gap) + w] = image
    return grid
