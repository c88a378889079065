"""Saliency-seeded GrabCut segmentation (Simonyan et al. 2014, sec. 3.2)."""

from __future__ import annotations

from typing import Any

import numpy as np


def segment(image: Any, saliency: Any, fg_quantile: float = 0.95, bg_quantile: float = 0.3,
            iterations: int = 5) -> np.ndarray:
    """A binary object mask from one image and its saliency map, by OpenCV's GrabCut.

    Simonyan's protocol: pixels in the top ``1 - fg_quantile`` of the saliency (5%) seed the
    foreground, those below the ``bg_quantile`` (30%) the background; the rest starts as
    probable foreground above the middle quantile and probable background below it.

    Args:
      image: ``(H, W, 3)`` (or grey ``(H, W)``) image of any range.
      saliency: ``(H, W)`` map (e.g. ``explanation.maps[i]``).
      fg_quantile, bg_quantile: the seed quantiles, ``0 <= bg_quantile < fg_quantile <= 1``.
      iterations: GrabCut iterations.

    Returns:
      bool ``(H, W)`` foreground mask.
    """
    if not 0.0 <= bg_quantile < fg_quantile <= 1.0:
        raise ValueError(f"need 0 <= bg_quantile < fg_quantile <= 1, got bg_quantile="
                         f"{bg_quantile!r}, fg_quantile={fg_quantile!r}")
    import cv2  # deferred: computation modules do not load OpenCV at import

    from tfvis.plotting.images import to_uint8_rgb

    s = np.asarray(getattr(saliency, "maps", saliency), np.float32)
    s = s[0] if s.ndim == 3 and s.shape[0] == 1 else s
    rgb = to_uint8_rgb(np.asarray(image, np.float32))
    if s.shape != rgb.shape[:2]:
        raise ValueError(f"saliency {s.shape} and image {rgb.shape[:2]} differ in size; "
                         "resize the map to the image")
    if not np.isfinite(s).all():
        raise ValueError("saliency contains NaN or Inf")
    hi, mid, lo = np.quantile(s, [fg_quantile, (fg_quantile + bg_quantile) / 2, bg_quantile])
    mask = np.where(s >= mid, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    mask[s <= lo] = cv2.GC_BGD
    mask[s >= hi] = cv2.GC_FGD
    if not (mask == cv2.GC_FGD).any() or not (mask == cv2.GC_BGD).any():
        raise ValueError("the saliency map is constant: no foreground / background seeds")
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.grabCut(np.ascontiguousarray(rgb[..., ::-1]), mask, None, bgd, fgd, int(iterations),
                cv2.GC_INIT_WITH_MASK)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
