"""Weakly supervised localisation from maps (Zhou et al. 2016, the CAM paper's protocol).

`boxes` turns each map into one box: the bounding box of the largest 8-connected component
of the pixels ``>= threshold * max`` (OpenCV's connected components; OpenCV is imported when
`boxes` runs, never when this module is imported). `LocalizationError` scores those boxes
against ground-truth boxes by IoU, optionally requiring the right class (the ILSVRC protocol).

Boxes are ``(x0, y0, x1, y1)`` in input pixels with ``x1``, ``y1`` exclusive (issue 13's
convention), so a box's area is ``(x1 - x0) * (y1 - y0)``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from tfvis.metrics.pointing import _as_maps
from tfvis.metrics.result import MetricResult


def boxes(maps: Any, threshold: float = 0.2) -> np.ndarray:
    """The box of the largest connected component above ``threshold * max``, per map.

    A pixel is above the threshold when its value is ``>= threshold * max(map)`` (so a pixel
    at exactly 20% of the maximum counts with the default); components are 8-connected. With
    several components of the largest area, the one whose first pixel comes first in raster
    order wins. A map whose maximum is not positive has no evidence and gets the empty box
    ``(0, 0, 0, 0)`` (IoU 0 with anything).

    Args:
      maps: ``(N, H, W)`` array or an `Explanation` (its ``maps``).
      threshold: fraction of each map's maximum, in [0, 1].

    Returns:
      int64 ``(N, 4)`` boxes ``(x0, y0, x1, y1)``, ends exclusive.

    Raises:
      ValueError: maps not ``(N, H, W)``, non-finite values, or a threshold outside [0, 1].
      ImportError: OpenCV (``opencv-python``) is not installed.
    """
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(
            f"threshold must be a fraction of the maximum in [0, 1], got {threshold!r}")
    m = _as_maps(maps)
    try:
        import cv2  # deferred: computation modules must not load OpenCV at import
    except ImportError as err:  # pragma: no cover - opencv is a dependency
        raise ImportError("tfvis.metrics.localization.boxes needs OpenCV (cv2): "
                          "pip install opencv-python-headless") from err
    out = np.zeros((len(m), 4), np.int64)
    for i, one in enumerate(m):
        peak = one.max()
        if peak <= 0:
            continue
        above = (one >= float(threshold) * peak).astype(np.uint8)
        count, _, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
        # label 0 is the background; labels are numbered in raster order of first pixels,
        # and argmax keeps the first of equal areas
        best = 1 + int(np.argmax(stats[1:count, cv2.CC_STAT_AREA]))
        x, y, w, h = (int(stats[best, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP,
                                                      cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
        out[i] = (x, y, x + w, y + h)
    return out


_boxes = boxes  # LocalizationError.__call__'s argument shadows the name


def iou(a: Any, b: Any) -> np.ndarray:
    """Intersection over union of boxes ``a`` and ``b`` (``(..., 4)``, broadcast), ends exclusive.

    Two empty boxes have IoU 0.
    """
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,):
        raise ValueError(f"boxes must end in 4 values (x0, y0, x1, y1), got shapes "
                         f"{a.shape} and {b.shape}")
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih

    def area(x):
        return (np.clip(x[..., 2] - x[..., 0], 0, None) * np.clip(x[..., 3] - x[..., 1], 0, None))

    union = area(a) + area(b) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _ground_truth(gt: Any, n: int) -> list[np.ndarray]:
    """Ground truth as a list of ``(k_i, 4)`` arrays, one per image."""
    try:
        arr = np.asarray(gt, np.float64)
    except ValueError:  # ragged: a different number of boxes per image
        arr = None
    if arr is not None and arr.shape == (n, 4):
        return [row[None] for row in arr]
    if arr is not None and arr.ndim == 3 and arr.shape[0] == n and arr.shape[2] == 4:
        return list(arr)
    if isinstance(gt, np.ndarray) or not isinstance(gt, (list, tuple)) or len(gt) != n:
        got = f"shape {arr.shape}" if arr is not None else f"{len(gt)} ragged entries"
        raise ValueError(f"ground-truth boxes must be (N, 4) = ({n}, 4) (x0, y0, x1, y1), or a "
                         f"list of N = {n} (k, 4) arrays; got {got}")
    out = []
    for i, item in enumerate(gt):
        one = np.asarray(item, np.float64)
        one = one[None] if one.ndim == 1 else one
        if one.ndim != 2 or one.shape[1] != 4 or len(one) == 0:
            raise ValueError(f"ground truth of image {i} must be (k, 4) boxes with k >= 1, got "
                             f"shape {np.shape(item)}")
        out.append(one)
    return out


class LocalizationError:
    """Zhou et al. 2016's localisation error: 1.0 for a miss, 0.0 for a hit, per map.

    The predicted box is `boxes` (largest 8-connected component ``>= threshold * max``); it
    hits when its IoU with a ground-truth box of the image (the best one, when several) is
    ``>= iou``. With ``predictions`` and ``labels`` the class must be right too, as in the
    ILSVRC protocol (top-1 for ``(N,)`` predictions; for ``(N, k)`` top-k predictions the class
    counts when the label is among them, and the one map's box is used).

    Example:
      >>> err = tfvis.metrics.LocalizationError()(cam_explanation, gt_boxes)
      >>> err.mean  # the localisation error, a fraction in [0, 1]

    Args:
      threshold: fraction of each map's maximum that keeps a pixel (0.2 in the CAM paper).
      iou: the IoU a box needs to count as a hit.
    """

    def __init__(self, threshold: float = 0.2, iou: float = 0.5) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
        if not 0.0 < float(iou) <= 1.0:
            raise ValueError(f"iou must be in (0, 1], got {iou!r}")
        self.threshold = float(threshold)
        self.iou = float(iou)

    def __repr__(self) -> str:
        return f"LocalizationError(threshold={self.threshold:g}, iou={self.iou:g})"

    def __call__(self, maps: Any, boxes: Any, predictions: Any = None,
                 labels: Any = None) -> MetricResult:
        """Scores the maps' boxes against ground-truth ``boxes``.

        Args:
          maps: ``(N, H, W)`` array or an `Explanation`.
          boxes: ground truth, ``(N, 4)`` ``(x0, y0, x1, y1)`` (ends exclusive), or a list of
            N ``(k_i, 4)`` arrays when an image has several objects of its class.
          predictions: optional predicted classes, int ``(N,)`` or top-k ``(N, k)``.
          labels: the true classes, int ``(N,)``; required with ``predictions``.

        Returns:
          `MetricResult` named ``"localization_error"``: values 1.0 (miss) / 0.0 (hit); extras
          ``boxes`` (N, 4) predicted, ``iou`` (N,) the best IoU, and ``correct`` (N,) bool
          class correctness when predictions were given.

        Raises:
          ValueError: shapes that do not match (the message gives them), or only one of
            ``predictions`` and ``labels``.
        """
        m = _as_maps(maps)
        n = len(m)
        gt = _ground_truth(boxes, n)
        predicted = _boxes(m, self.threshold)
        best = np.array([iou(predicted[i], g).max() for i, g in enumerate(gt)])
        hit = best >= self.iou
        extras: dict[str, Any] = {"boxes": predicted, "iou": best}
        if (predictions is None) != (labels is None):
            raise ValueError("class-correct localisation needs both predictions and labels "
                             "(or neither, for box-only localisation error)")
        if predictions is not None:
            p = np.asarray(predictions)
            p = p[:, None] if p.ndim == 1 else p
            y = np.asarray(labels).reshape(-1)
            if p.ndim != 2 or len(p) != n or len(y) != n:
                raise ValueError(f"predictions must be (N,) or (N, k) and labels (N,) with N = "
                                 f"{n} maps; got shapes {np.shape(predictions)} and "
                                 f"{np.shape(labels)}")
            correct = (p == y[:, None]).any(axis=1)
            extras["correct"] = correct
            hit = hit & correct
        return MetricResult("localization_error", (~hit).astype(np.float64),
                            extras=MappingProxyType(extras))
