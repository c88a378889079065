"""Deletion and insertion (Petsiuk et al. 2018, the RISE paper's causal metrics).

Pixels are removed (deletion) or inserted (insertion) in decreasing order of the map, and the
target's probability is recorded after each step; the metric is the area under that curve
over the fraction of pixels (trapezoid rule). A faithful map gives a low deletion AUC (the
score falls fast) and a high insertion AUC (it rises fast).

Conventions:

* ``steps`` steps (default 64): step ``i`` (``i = 0..steps``) has removed/inserted the
  ``ceil(i * H * W / steps)`` top-ranked pixels, so curves are ``(N, steps + 1)``. With
  ``pixels_per_step = p`` instead, step ``i`` covers ``min(i * p, H * W)`` pixels and
  ``steps = ceil(H * W / p)``. The x axis of the AUC is the fraction of pixels
  (``extras["fractions"]``), so both AUCs lie in [0, 1] for probabilities.
* Ranking: a stable argsort of ``-map`` over the raster (row-major) order, so ties go to
  the pixel that comes first (a constant map removes pixels in raster order).
* Every channel of a pixel is removed together; removed pixels show the substrate:
  ``"mean"`` (each image's per-channel mean, deletion's default), ``"blur"`` (a Gaussian
  blur, sigma 5 px, insertion's default), a number (a constant) or an array (one value per
  channel, ``(H, W[, C])`` or ``(N, H, W, C)``).
* Insertion starts from the substrate and shows the image's pixels over it.
* Score: the target's probability (`tfvis.metrics._scoring`: the model's own output when it
  ends in softmax/sigmoid, else softmax for K > 1 classes and sigmoid for K = 1); the class
  is fixed on the unperturbed image (``targets=None``: its top-1 class).

Cost: step 0 of deletion and the last step of insertion are the unperturbed image, scored in
one pass over the images; the other ``N * steps`` perturbed images stream through the model
in ``ceil(N * steps / batch_size)`` compiled calls of at most ``batch_size`` images. Memory is
one chunk plus one int rank map per image: it does not grow with ``steps``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from tfvis.metrics._scoring import Scorer, as_maps, auc, ranked_masks, substrate_values
from tfvis.metrics.result import MetricResult


def pixel_counts(pixels: int, steps: int | None = 64,
                 pixels_per_step: int | None = None) -> np.ndarray:
    """How many pixels are removed/inserted at each step, int64 ``(steps + 1,)``."""
    if pixels_per_step is not None:
        if isinstance(pixels_per_step, bool) or not isinstance(
                pixels_per_step, (int, np.integer)) or pixels_per_step < 1:
            raise ValueError(f"pixels_per_step must be a positive int, got {pixels_per_step!r}")
        steps = -(-pixels // int(pixels_per_step))
        return np.minimum(np.arange(steps + 1, dtype=np.int64) * int(pixels_per_step), pixels)
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")
    i = np.arange(int(steps) + 1, dtype=np.int64)
    return -(-i * pixels // int(steps))


def pixel_ranks(maps: np.ndarray) -> np.ndarray:
    """Rank of each pixel in decreasing order of its map (0 = first removed), ties in raster
    order; int32 ``(N, H, W)``."""
    n = len(maps)
    flat = maps.reshape(n, -1)
    order = np.argsort(-flat, axis=1, kind="stable")
    ranks = np.empty_like(order)
    np.put_along_axis(ranks, order, np.arange(flat.shape[1])[None].repeat(n, 0), axis=1)
    return ranks.reshape(maps.shape).astype(np.int32)


class _PixelCurve:
    name = ""
    deletion = True
    #: The ``extras`` with one row per image (concatenated when results are joined).
    per_image_extras: tuple[str, ...] = ()

    def __init__(
        self,
        model,
        steps: int = 64,
        substrate: Any = "mean",
        batch_size: int | None = None,
        *,
        pixels_per_step: int | None = None,
        sigma: float = 5.0,
        score: str = "probability",
        output: int | str | None = None,
        input: int | str | None = None,
    ) -> None:
        pixel_counts(64, steps, pixels_per_step)  # validates
        self.steps = steps
        self.pixels_per_step = pixels_per_step
        self.substrate = substrate
        self.sigma = float(sigma)
        self.batch_size = batch_size
        self.scorer = Scorer(model, score=score, render=ranked_masks(self.deletion),
                             output=output, input=input)

    def __call__(self, images: Any, maps: Any, targets: Any = None) -> MetricResult:
        """The metric of ``maps`` on ``images``.

        Args:
          images: ``(N, H, W, C)`` (a list or dict with one array per input for a
            multi-input model; the others are held fixed).
          maps: ``(N, H, W)`` arrays or an `Explanation` (its ``maps``).
          targets: None (each image's top-1 class), an int, one int per image, ``(N, K)``
            one-hot or soft weights, or a callable ``outputs -> (N,)``.

        Returns:
          A `MetricResult`: ``values`` the per-image AUCs, ``curves`` ``(N, steps + 1)``,
          ``extras``: ``fractions`` (the x axis), ``counts`` (pixels per step),
          ``model_calls`` (compiled model calls, unperturbed pass included).
        """
        scorer = self.scorer
        base, resolved, size = scorer.unperturbed(images, targets, self.batch_size)
        x = base.x
        n, height, width = x.shape[:3]
        maps = as_maps(maps, (n, height, width))
        counts = pixel_counts(height * width, self.steps, self.pixels_per_step)
        fill = substrate_values(self.substrate, x, self.sigma)
        ranks = pixel_ranks(maps)
        streamed = counts[1:] if self.deletion else counts[:-1]
        scores = scorer.rank_scores(resolved.kind, base, fill, ranks, streamed, size)
        whole = np.asarray(base.scores, np.float32)[:, None]
        curves = np.concatenate([whole, scores] if self.deletion else [scores, whole], axis=1)
        fractions = counts / float(height * width)
        calls = scorer.calls + -(-n // min(size, n))
        return MetricResult(self.name, auc(curves, fractions), curves, MappingProxyType({
            "fractions": fractions, "counts": counts, "model_calls": calls}))

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(steps={self.steps}, pixels_per_step="
                f"{self.pixels_per_step}, substrate={self.substrate!r})")


class Deletion(_PixelCurve):
    """Deletion AUC: the target's probability as the top-ranked pixels are removed (lower is
    better). See the module docstring for the conventions.

    Args:
      model: a Keras model.
      steps: number of steps (curves have ``steps + 1`` points).
      substrate: ``"mean"`` (default: each image's per-channel mean), ``"blur"``, a number or
        an array.
      batch_size: perturbed images per model call (default 64); results do not depend on it.
      pixels_per_step: pixels per step instead of ``steps``.
      sigma: the blur's standard deviation in pixels (``substrate="blur"``).
      score: ``"probability"`` (default), ``"logit"`` or ``"output"``.
      output, input: which output / input of a multi-output / multi-input model.
    """

    name = "deletion"
    deletion = True


class Insertion(_PixelCurve):
    """Insertion AUC: the target's probability as the top-ranked pixels are inserted into
    the substrate (higher is better). Arguments as `Deletion`; ``substrate`` defaults to
    ``"blur"`` (Gaussian, sigma 5 px)."""

    name = "insertion"
    deletion = False

    def __init__(self, model, steps: int = 64, substrate: Any = "blur",
                 batch_size: int | None = None, **kwargs) -> None:
        super().__init__(model, steps, substrate, batch_size, **kwargs)
