"""`Visualization`: what a feature-visualisation run returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class Visualization:
    """Optimised images and how the optimisation went.

    Attributes:
      images: float32 ``(N, H, W, C)`` in [0, 1] (display space, before preprocessing).
      values: float32 ``(steps, N)``: the objective per image at each step (on the
        transformed image the step saw), for a convergence plot.
      losses: float32 ``(steps, N)``: what was minimised, ``-(objective - penalties)``.
      objective: the objective's description, e.g. ``"channel('conv2', 0..15)"``.
      seeds: the seed of each image (image i of a run with ``seed=s`` uses ``s + i``).
      labels: a title per image (``"channel 3"``, ``"class 1"``, ...).
      extras: method-specific fields, also readable as attributes (multifaceted's
        ``starts`` and ``clusters``, DeepDream's ``octave_values``, ...).
    """

    images: np.ndarray
    values: np.ndarray
    losses: np.ndarray
    objective: str
    seeds: tuple[int, ...]
    labels: tuple[str, ...] = ()
    extras: dict[str, Any] = field(default_factory=dict)

    def __getattr__(self, name: str) -> Any:
        extras = self.__dict__.get("extras", {})
        if name in extras:
            return extras[name]
        raise AttributeError(f"'Visualization' object has no attribute {name!r}")

    def __len__(self) -> int:
        return len(self.images)

    def grid(self, columns: int | None = None, titles: bool = True, size: float = 1.6):
        """A matplotlib Figure with every image (`tfvis.plotting.featurevis.grid`)."""
        from tfvis.plotting.featurevis import grid

        return grid(self.images, self.labels if titles else None, columns=columns, size=size)

    def convergence(self):
        """A matplotlib Figure of the objective per step (`tfvis.plotting.featurevis`)."""
        from tfvis.plotting.featurevis import convergence

        return convergence(self.values, self.objective)
