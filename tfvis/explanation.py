"""The result of an explanation: maps plus what was explained, as numpy arrays."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tfvis.plotting.images import overlay as _overlay


@dataclass(frozen=True)
class Explanation:
    """What `Explainer.explain` returns.

    Attributes:
      maps: float32 ``(N, H, W)`` at input resolution, each normalised to [0, 1] (min-max;
        a constant map is all zeros).
      raw: the unnormalised values: ``(N, H, W)`` for layer and perturbation methods,
        ``(N, H, W, C)`` for pixel-space gradient methods.
      targets: the explained classes as int ``(N,)``; the ``(N, K)`` weights for soft
        targets; the callable for callable targets.
      scores: float32 ``(N,)``, the explained score of each sample (a logit by default).
      method: the registry name of the method.
      layer: the resolved layer path for layer methods, else None.
    """

    maps: np.ndarray
    raw: np.ndarray
    targets: Any
    scores: np.ndarray
    method: str
    layer: str | None = None

    def __len__(self) -> int:
        return len(self.maps)

    def overlay(self, images: Any, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
        """Overlays each map on the matching image; returns uint8 RGB ``(N, H, W, 3)``."""
        images = np.asarray(images)
        if images.ndim == self.maps.ndim - 1 or (images.ndim == 3 and images.shape[-1] in (1, 3)
                                                 and len(self) == 1):
            images = images[None]
        if len(images) != len(self):
            raise ValueError(f"got {len(images)} images for {len(self)} maps")
        return np.stack([_overlay(i, m, alpha, cmap) for i, m in zip(images, self.maps)])
