"""The pointing game (Zhang et al. 2016) and its energy variant (Wang et al. 2020).

Numpy only: importing or running this module loads neither TensorFlow nor OpenCV.

Conventions:
  * Maps are ``(N, H, W)`` arrays or `tfvis.Explanation` objects (their ``maps``).
  * Object masks are ``(N, H, W)`` (bool, or numbers where non-zero means "object"), or boxes
    ``(N, 4)`` as ``(x0, y0, x1, y1)`` in input pixels with ``x1``, ``y1`` exclusive (issue 13's
    convention). Float boxes cover every pixel they touch (starts floored, ends ceiled); boxes are
    clipped to the image.
  * The map's maximum is the **first maximum in raster order** (``numpy.argmax`` of the
    flattened map): with ties, only that one pixel is tested, whether or not another maximum
    lies on the object. This matches TorchRay's reference implementation and makes the result
    independent of how many pixels tie.
  * "Within ``tolerance`` pixels" is the Euclidean distance from that pixel to the nearest mask
    pixel (a disk of radius ``tolerance``, as in TorchRay); ``tolerance=0`` means on the mask.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from tfvis.metrics.result import MetricResult


def _as_maps(maps: Any, what: str = "maps") -> np.ndarray:
    """``(N, H, W)`` float64 maps from an array or an `Explanation` (its ``maps``)."""
    if hasattr(maps, "maps") and not isinstance(maps, np.ndarray):
        maps = maps.maps
    out = np.asarray(maps, dtype=np.float64)
    if out.ndim != 3:
        raise ValueError(
            f"{what} must be (N, H, W) arrays or an Explanation, got shape {out.shape}; "
            "for one map pass map[None]"
        )
    if len(out) == 0:
        raise ValueError(f"{what} is empty (shape {out.shape}): pass at least one map")
    if not np.all(np.isfinite(out)):
        bad = np.flatnonzero(~np.isfinite(out.reshape(len(out), -1)).all(axis=1))
        raise ValueError(f"{what} {bad.tolist()} hold NaN or infinite values")
    return out


def boxes_to_masks(boxes: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Bool masks ``shape`` = ``(N, H, W)`` from boxes ``(N, 4)`` ``(x0, y0, x1, y1)``.

    Args:
      boxes: ``(N, 4)`` boxes in input pixels, ``x1`` and ``y1`` exclusive; float boxes cover
        every pixel they touch. Boxes are clipped to the image.
      shape: ``(N, H, W)`` of the maps the masks go with.

    Returns:
      bool ``(N, H, W)``, True inside each box.

    Raises:
      ValueError: boxes not ``(N, 4)`` with the maps' N.
    """
    b = np.asarray(boxes, dtype=np.float64)
    n, h, w = shape
    if b.shape != (n, 4):
        raise ValueError(
            f"boxes must be (N, 4) = ({n}, 4) (x0, y0, x1, y1), one per map, got shape {b.shape}"
        )
    x0 = np.clip(np.floor(b[:, 0]), 0, w).astype(np.int64)
    y0 = np.clip(np.floor(b[:, 1]), 0, h).astype(np.int64)
    x1 = np.clip(np.ceil(b[:, 2]), 0, w).astype(np.int64)
    y1 = np.clip(np.ceil(b[:, 3]), 0, h).astype(np.int64)
    rows = np.arange(h)[None, :, None]
    cols = np.arange(w)[None, None, :]
    return ((rows >= y0[:, None, None]) & (rows < y1[:, None, None])
            & (cols >= x0[:, None, None]) & (cols < x1[:, None, None]))


def _as_masks(masks: Any, shape: tuple[int, int, int]) -> np.ndarray:
    """Bool ``(N, H, W)`` object masks from masks or ``(N, 4)`` boxes; none may be empty."""
    m = np.asarray(masks)
    if m.ndim == 2:
        m = boxes_to_masks(m, shape)
    elif m.shape != tuple(shape):
        raise ValueError(
            f"masks must be (N, H, W) like the maps, {tuple(shape)}, or (N, 4) boxes "
            f"(x0, y0, x1, y1); got shape {m.shape}"
        )
    else:
        m = m != 0 if m.dtype != bool else m
    empty = np.flatnonzero(~m.reshape(len(m), -1).any(axis=1))
    if len(empty):
        raise ValueError(
            f"the object masks of images {empty.tolist()} are empty (or their boxes lie outside "
            f"the {shape[1]}x{shape[2]} image): the pointing game needs an object on every "
            "image; leave those images out"
        )
    return m


def maxima(maps: Any) -> np.ndarray:
    """The ``(row, col)`` of each map's first maximum in raster order, int ``(N, 2)``."""
    m = _as_maps(maps)
    flat = m.reshape(len(m), -1).argmax(axis=1)
    rows, cols = np.unravel_index(flat, m.shape[1:])
    return np.stack([rows, cols], axis=1).astype(np.int64)


class PointingGame:
    """Zhang et al. 2016: does the map's maximum point at the object?

    A hit (1.0) when the first maximum in raster order lies within ``tolerance`` pixels
    (Euclidean) of the object mask, a miss (0.0) otherwise. With ``energy=True`` the value is
    instead the fraction of the map's non-negative energy inside the mask, in [0, 1]
    (Wang et al. 2020's energy-based pointing game): ``sum(max(m, 0) * mask) / sum(max(m, 0))``,
    with the mask as given (``tolerance`` does not apply) and 0.0 for a map with no positive
    value.

    Example:
      >>> result = tfvis.metrics.PointingGame(tolerance=15)(explanation, boxes)
      >>> result.mean  # the pointing-game accuracy

    Args:
      tolerance: pixels (>= 0) the maximum may lie away from the mask and still hit.
      energy: return the energy fraction instead of hits.
    """

    def __init__(self, tolerance: float = 15, energy: bool = False) -> None:
        if not np.isfinite(tolerance) or tolerance < 0:
            raise ValueError(f"tolerance must be a finite number >= 0 pixels, got {tolerance!r}")
        self.tolerance = float(tolerance)
        self.energy = bool(energy)

    def __repr__(self) -> str:
        return f"PointingGame(tolerance={self.tolerance:g}, energy={self.energy})"

    def __call__(self, maps: Any, masks: Any) -> MetricResult:
        """Scores ``maps`` against object ``masks``.

        Args:
          maps: ``(N, H, W)`` array or an `Explanation`.
          masks: ``(N, H, W)`` object masks (bool or non-zero = object) or ``(N, 4)`` boxes
            ``(x0, y0, x1, y1)``, ``x1``/``y1`` exclusive, in the maps' pixels.

        Returns:
          `MetricResult` named ``"pointing_game"`` (values 1.0 hit / 0.0 miss; extras
          ``points`` (N, 2) the (row, col) tested and ``distances`` (N,) from it to the mask)
          or ``"energy_pointing_game"`` (values the energy fractions).

        Raises:
          ValueError: shapes that do not match (the message gives both), an empty mask, or
            non-finite maps.
        """
        m = _as_maps(maps)
        mask = _as_masks(masks, m.shape)
        if self.energy:
            e = np.maximum(m, 0.0)
            total = e.reshape(len(e), -1).sum(axis=1)
            inside = (e * mask).reshape(len(e), -1).sum(axis=1)
            frac = np.divide(inside, total, out=np.zeros_like(total), where=total > 0)
            return MetricResult("energy_pointing_game", np.clip(frac, 0.0, 1.0))
        points = maxima(m)
        distances = np.empty(len(m))
        for i, (r, c) in enumerate(points):
            if mask[i, r, c]:
                distances[i] = 0.0
            else:
                ys, xs = np.nonzero(mask[i])
                distances[i] = np.sqrt(np.min((ys - r) ** 2 + (xs - c) ** 2))
        hits = (distances <= self.tolerance).astype(np.float64)
        return MetricResult("pointing_game", hits,
                            extras=MappingProxyType({"points": points,
                                                            "distances": distances}))
