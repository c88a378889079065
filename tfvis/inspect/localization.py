"""Boxes from maps and the ILSVRC localisation error (Zhou et al. 2016).

A thin layer over `tfvis.metrics.localization` (the largest 8-connected component of the
pixels ``>= threshold * max``; OpenCV imported on use), adding a minimum component area,
all components per map, and the error as one fraction.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from tfvis.metrics.localization import _ground_truth, iou
from tfvis.metrics.localization import boxes as _largest_boxes
from tfvis.metrics.pointing import _as_maps


def boxes(maps: Any, threshold: float = 0.2, min_area: int = 1,
          all_components: bool = False) -> np.ndarray | list[np.ndarray]:
    """Per map, the box of the largest connected component above ``threshold * max``.

    Boxes are ``(x0, y0, x1, y1)`` in input pixels, ends exclusive; "above" means
    ``>= threshold * max``; components are 8-connected.

    Args:
      maps: ``(N, H, W)`` maps or an `Explanation`.
      threshold: fraction of each map's maximum, in [0, 1] (0.2 in the CAM paper).
      min_area: components with fewer pixels are ignored (a map with none left gets the empty
        box ``(0, 0, 0, 0)``).
      all_components: return every component's box, largest first.

    Returns:
      int64 ``(N, 4)``; with ``all_components`` a list of N ``(k_i, 4)`` arrays.
    """
    if isinstance(min_area, bool) or not isinstance(min_area, (int, np.integer)) or min_area < 1:
        raise ValueError(f"min_area must be a positive number of pixels, got {min_area!r}")
    if min_area == 1 and not all_components:
        return _largest_boxes(maps, threshold)
    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be a fraction of the maximum in [0, 1], got "
                         f"{threshold!r}")
    import cv2  # deferred: computation modules do not load OpenCV at import

    m = _as_maps(maps)
    out = []
    for one in m:
        peak = one.max()
        found = np.zeros((0, 4), np.int64)
        if peak > 0:
            above = (one >= float(threshold) * peak).astype(np.uint8)
            count, _, stats, _ = cv2.connectedComponentsWithStats(above, connectivity=8)
            area = stats[1:count, cv2.CC_STAT_AREA]
            order = [1 + i for i in np.argsort(-area, kind="stable") if area[i] >= min_area]
            found = np.array([[stats[c, cv2.CC_STAT_LEFT], stats[c, cv2.CC_STAT_TOP],
                               stats[c, cv2.CC_STAT_LEFT] + stats[c, cv2.CC_STAT_WIDTH],
                               stats[c, cv2.CC_STAT_TOP] + stats[c, cv2.CC_STAT_HEIGHT]]
                              for c in order], np.int64).reshape(-1, 4)
        out.append(found)
    if all_components:
        return out
    return np.stack([f[0] if len(f) else np.zeros(4, np.int64) for f in out])


def localization_error(boxes: Any, gt_boxes: Any, iou: float = 0.5,
                       top_k_correct: Any = None) -> float:
    """The ILSVRC localisation error: the fraction of images not localised.

    An image counts as localised when one of its predicted boxes has IoU ``>= iou`` with one
    of its ground-truth boxes and (with ``top_k_correct``) its class is right.

    Args:
      boxes: predicted ``(N, 4)`` boxes, or a list of N ``(k_i, 4)`` arrays (several guesses).
      gt_boxes: ground truth ``(N, 4)`` or a list of N ``(k_i, 4)`` arrays.
      iou: the IoU needed.
      top_k_correct: optional bool ``(N,)``: whether the class is among the top-k predictions.

    Returns:
      A fraction in [0, 1].
    """
    if not 0.0 < float(iou) <= 1.0:
        raise ValueError(f"iou must be in (0, 1], got {iou!r}")
    n = len(boxes)
    predicted = _ground_truth(boxes, n) if not isinstance(boxes, list) else [
        np.asarray(b, np.float64).reshape(-1, 4) for b in boxes]
    truth = _ground_truth(gt_boxes, n)
    hit = np.array([len(p) > 0 and bool((_iou(p[:, None], t[None]) >= float(iou)).any())
                    for p, t in zip(predicted, truth)], bool)
    if top_k_correct is not None:
        correct = np.asarray(top_k_correct, bool).reshape(-1)
        if len(correct) != n:
            raise ValueError(f"top_k_correct has {len(correct)} entries for {n} images")
        hit &= correct
    return float(1.0 - hit.mean()) if n else 0.0


_iou = iou
