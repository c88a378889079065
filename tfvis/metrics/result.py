"""What every metric returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np


@dataclass(frozen=True)
class MetricResult:
    """The result of a metric.

    Attributes:
      name: the metric's name (``"deletion"``, ``"pointing_game"``, ...).
      values: float ``(N,)``, one value per image (per randomisation step for `SanityCheck`).
      curves: the per-image curves where the metric has them (``(N, steps + 1)`` for deletion
        and insertion), else None.
      extras: metric-specific arrays (e.g. the fractions of pixels of the curves).
    """

    name: str
    values: np.ndarray
    curves: np.ndarray | None = None
    extras: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def mean(self) -> float:
        """The mean of `values`."""
        return float(np.mean(self.values))

    def interval(self, level: float = 0.95) -> tuple[float, float]:
        """A normal-approximation confidence interval of the mean over images."""
        from statistics import NormalDist

        values = np.asarray(self.values, np.float64)
        if len(values) < 2:
            return float(values.mean()), float(values.mean())
        half = NormalDist().inv_cdf(0.5 + level / 2) * values.std(ddof=1) / np.sqrt(len(values))
        return float(values.mean() - half), float(values.mean() + half)

    def __len__(self) -> int:
        return len(self.values)
