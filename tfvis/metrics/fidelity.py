"""MuFidelity (Bhatt et al. 2020): do the attributions predict what removing pixels does?

For each image, ``num_subsets`` random pixel subsets ``S`` are replaced by the substrate; the
metric is the Pearson correlation, over the subsets, between the sum of the map over ``S``
and the drop of the target's score ``f(x) - f(x with S replaced)``. Values lie in [-1, 1]
(higher is better); a map or a drop with no variance over the subsets gives 0, not NaN.

Subsets are drawn on a ``grid_size x grid_size`` grid of cells upsampled (nearest) to the
image, as xplique does (single pixels rarely move a CNN's score); each subset is exactly
``subset_size`` of the cells (a fraction in (0, 1), or an int number of cells), drawn without
replacement with ``numpy.random.default_rng(seed)``: the same seed gives the same subsets,
shared by every image of a call. ``grid_size=None`` draws single pixels. The substrate
defaults to 0 (xplique's baseline) and takes what `tfvis.metrics.Deletion` takes. Scores as in
`Deletion` (the target's probability by default; ``score="logit"`` or ``"output"``). The
``N * num_subsets`` perturbed images stream through the perturbation engine in chunks of
``batch_size``; the subsets are small per-mask parameters, shared by all images.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import tensorflow as tf

from tfvis.engine.perturbation import MaskSet
from tfvis.metrics._scoring import Scorer, as_maps, substrate_values
from tfvis.metrics.result import MetricResult


def _removed(cells, height, width):
    cells = tf.cast(cells, tf.float32)[..., None]
    return tf.image.resize(cells, tf.stack([height, width]), method="nearest")[..., 0]


def _render(params, height, width):
    return 1.0 - _removed(params[0], height, width), None


def pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise Pearson correlation of ``(N, M)`` arrays (0 where a row has no variance)."""
    a = np.asarray(a, np.float64) - np.mean(a, axis=1, keepdims=True, dtype=np.float64)
    b = np.asarray(b, np.float64) - np.mean(b, axis=1, keepdims=True, dtype=np.float64)
    norm = np.sqrt((a * a).sum(1) * (b * b).sum(1))
    scale = np.maximum(np.abs(a).max(1), 1e-300) * np.maximum(np.abs(b).max(1), 1e-300)
    ok = norm > 1e-12 * scale * a.shape[1]
    return np.where(ok, (a * b).sum(1) / np.where(ok, norm, 1.0), 0.0)


class MuFidelity:
    """MuFidelity: correlation of map sums over random subsets with the score drops.

    Args:
      model: a Keras model.
      subset_size: the fraction of grid cells in each subset (in (0, 1)), or their number.
      num_subsets: subsets per image.
      substrate: what replaces the subset: a number (default 0), ``"mean"``, ``"blur"`` or an
        array.
      seed: seeds the subsets (None: fresh ones each call).
      grid_size: cells per side of the grid the subsets are drawn on (an int or a
        ``(rows, cols)`` pair; None: single pixels).
      batch_size: perturbed images per model call (default 64).
      sigma: the blur's sigma in px (``substrate="blur"``).
      score: ``"probability"`` (default), ``"logit"`` or ``"output"``.
      output, input: which output / input of a multi-output / multi-input model.
    """

    name = "mu_fidelity"
    #: The ``extras`` with one row per image (concatenated when results are joined).
    per_image_extras: tuple[str, ...] = ("attributions", "drops")

    def __init__(self, model, subset_size: float | int = 0.2, num_subsets: int = 128,
                 substrate: Any = 0.0, seed: int | None = 0, *, grid_size: Any = 9,
                 batch_size: int | None = None, sigma: float = 5.0,
                 score: str = "probability", output: int | str | None = None,
                 input: int | str | None = None) -> None:
        if isinstance(num_subsets, bool) or not isinstance(num_subsets, (int, np.integer)) \
                or num_subsets < 2:
            raise ValueError(f"num_subsets must be an int >= 2, got {num_subsets!r}")
        if isinstance(subset_size, bool) or not (
            (isinstance(subset_size, (int, np.integer)) and subset_size >= 1)
            or (isinstance(subset_size, float) and 0 < subset_size < 1)
        ):
            raise ValueError("subset_size must be a fraction in (0, 1) or a positive int, got "
                             f"{subset_size!r}")
        self.subset_size = subset_size
        self.num_subsets = int(num_subsets)
        self.substrate = substrate
        self.seed = seed
        self.grid_size = grid_size
        self.batch_size = batch_size
        self.sigma = float(sigma)
        self.scorer = Scorer(model, score=score, render=_render, output=output, input=input)

    def subsets(self, height: int, width: int) -> np.ndarray:
        """The subsets of a call on ``height x width`` images: float32 ``(M, rows, cols)``,
        1 on the cells replaced by the substrate."""
        if self.grid_size is None:
            rows, cols = height, width
        else:
            from tfvis.explainers.perturbation import as_pair

            rows, cols = as_pair(self.grid_size, "grid_size")
        cells = rows * cols
        k = (int(self.subset_size) if isinstance(self.subset_size, (int, np.integer))
             else max(1, int(round(self.subset_size * cells))))
        if k >= cells:
            raise ValueError(f"subset_size {self.subset_size!r} leaves no cell of the "
                             f"{rows}x{cols} grid in place")
        rng = np.random.default_rng(self.seed)
        order = rng.random((self.num_subsets, cells)).argsort(axis=1, kind="stable")
        chosen = np.zeros((self.num_subsets, cells), np.float32)
        np.put_along_axis(chosen, order[:, :k], 1.0, axis=1)
        return chosen.reshape(self.num_subsets, rows, cols)

    def __call__(self, images: Any, maps: Any, targets: Any = None) -> MetricResult:
        """The per-image correlations of ``maps`` on ``images``.

        Args:
          images: ``(N, H, W, C)`` (a list or dict for a multi-input model).
          maps: ``(N, H, W)`` arrays or an `Explanation`.
          targets: None (each image's top-1 class), an int, one int per image, ``(N, K)``
            weights, or a callable ``outputs -> (N,)``.

        Returns:
          A `MetricResult` with ``values`` ``(N,)`` and ``extras``: ``attributions`` (the
          ``(N, M)`` map sums over each subset) and ``drops`` (``(N, M)`` score drops).
        """
        scorer = self.scorer
        base, resolved, size = scorer.unperturbed(images, targets, self.batch_size)
        x = base.x
        n, height, width = x.shape[:3]
        maps = as_maps(maps, (n, height, width))
        cells = self.subsets(height, width)
        removed = _removed(cells, height, width).numpy().reshape(len(cells), -1)
        sums = maps.reshape(n, -1).astype(np.float64) @ removed.T.astype(np.float64)
        fill = substrate_values(self.substrate, x, self.sigma)
        drops = np.asarray(base.scores, np.float64)[:, None] - scorer.pair_scores(
            resolved.kind, base, fill, MaskSet((cells,)), size)
        return MetricResult(self.name, pearson(sums, drops), None, MappingProxyType({
            "attributions": sums, "drops": drops}))

    def __repr__(self) -> str:
        return (f"MuFidelity(subset_size={self.subset_size!r}, num_subsets="
                f"{self.num_subsets}, substrate={self.substrate!r}, seed={self.seed!r})")
