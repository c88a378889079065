"""Built-in synthetic data with known object locations (no downloads).

`shapes` draws one object (square, circle, triangle or cross) at a random position and size on
a noisy, textured background. The class is the shape; the bounding box says where the evidence
is, so explanations can be checked against it (e.g. the pointing game).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

CLASSES = ("square", "circle", "triangle", "cross")


@dataclass(frozen=True)
class ShapesData:
    """Images ``(N, H, W, 3)`` float32 in [0, 1], int ``labels``, ``boxes`` (y0, x0, y1, x1)
    with exclusive ends, and the class ``names``."""

    images: np.ndarray
    labels: np.ndarray
    boxes: np.ndarray
    names: tuple[str, ...] = CLASSES


def _draw(canvas: np.ndarray, kind: str, cy: int, cx: int, r: int, colour) -> None:
    if kind == "square":
        cv2.rectangle(canvas, (cx - r, cy - r), (cx + r, cy + r), colour, -1)
    elif kind == "circle":
        cv2.circle(canvas, (cx, cy), r, colour, -1, lineType=cv2.LINE_AA)
    elif kind == "triangle":
        pts = np.array([[cx, cy - r], [cx - r, cy + r], [cx + r, cy + r]], np.int32)
        cv2.fillPoly(canvas, [pts], colour, lineType=cv2.LINE_AA)
    else:  # cross
        t = max(2, r // 3)
        cv2.rectangle(canvas, (cx - r, cy - t), (cx + r, cy + t), colour, -1)
        cv2.rectangle(canvas, (cx - t, cy - r), (cx + t, cy + r), colour, -1)


def shapes(n: int, size: int | tuple[int, int] = 64, seed: int = 0) -> ShapesData:
    """Generates ``n`` labelled images, balanced over `CLASSES`.

    Args:
      n: number of images.
      size: side, or ``(height, width)`` for non-square images.
      seed: the only source of randomness (a private numpy Generator).
    """
    if n < 1:
        raise ValueError("n must be positive")
    h, w = (size, size) if isinstance(size, int) else size
    if min(h, w) < 24:
        raise ValueError("images must be at least 24 pixels on each side")
    rng = np.random.default_rng(seed)
    images = np.empty((n, h, w, 3), np.float32)
    labels = np.arange(n) % len(CLASSES)
    rng.shuffle(labels)
    boxes = np.empty((n, 4), np.int64)
    for i, label in enumerate(labels):
        base = rng.uniform(0.1, 0.5, 3)
        coarse = rng.uniform(-0.15, 0.15, (h // 8 + 1, w // 8 + 1, 3)).astype(np.float32)
        background = base + cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
        canvas = np.clip(background + rng.normal(0, 0.05, (h, w, 3)), 0, 1).astype(np.float32)
        r = int(rng.integers(min(h, w) // 10, min(h, w) // 6 + 1))
        cy = int(rng.integers(r + 1, h - r - 1))
        cx = int(rng.integers(r + 1, w - r - 1))
        colour = tuple(float(c) for c in rng.uniform(0.65, 1.0, 3))
        _draw(canvas, CLASSES[label], cy, cx, r, colour)
        images[i] = canvas
        boxes[i] = (cy - r, cx - r, cy + r + 1, cx + r + 1)
    return ShapesData(images, labels.astype(np.int64), boxes)


def pointing_game(maps: np.ndarray, boxes: np.ndarray, tolerance: int = 2) -> np.ndarray:
    """Whether each map's maximum lies inside its box (grown by ``tolerance`` pixels).

    The demo's pointing game, computed by `tfvis.metrics.PointingGame` (the reference: first
    maximum in raster order). Two conventions differ from the metric's defaults and are kept for
    the demo's numbers: ``boxes`` are `ShapesData`'s ``(y0, x0, y1, x1)`` (ends exclusive), and
    the tolerance grows the box by ``tolerance`` pixels on each side (a square neighbourhood),
    where the metric's tolerance is a Euclidean distance.

    Returns a bool array ``(N,)``; its mean is the pointing-game accuracy (Zhang et al. 2016).
    """
    from tfvis.metrics.pointing import PointingGame

    b = np.asarray(boxes)
    if b.ndim != 2 or b.shape[1] != 4:
        raise ValueError(f"boxes must be (N, 4) (y0, x0, y1, x1), got shape {b.shape}")
    y0, x0, y1, x1 = (b[:, k] for k in range(4))
    grown = np.stack([x0 - tolerance, y0 - tolerance, x1 + tolerance, y1 + tolerance], axis=1)
    return PointingGame(tolerance=0)(maps, grown).values.astype(bool)
