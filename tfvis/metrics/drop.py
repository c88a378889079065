"""Average drop and increase in confidence (Chattopadhay et al. 2018, the Grad-CAM++ paper).

The explanation map ``E`` (min-max normalised to [0, 1] per image; a constant map becomes
zeros, as `tfvis.engine.imageops.normalize` does) masks the image: the model sees only
``image * E``. With ``Y`` the target's probability on the image and ``O`` on ``image * E``
(the same class, fixed on the unperturbed image):

* average drop: ``mean_i max(0, Y_i - O_i) / Y_i`` (lower is better; the paper reports it in
  percent, here a fraction in [0, 1]; an image with ``Y = 0`` counts 0),
* increase in confidence: the fraction of images with ``O_i > Y_i`` (higher is better).

``values`` holds the per-image terms (drops, or 0/1 increases), so ``mean`` is the metric;
``extras`` holds ``Y`` (``full``) and ``O`` (``masked``). Probabilities as in
`tfvis.metrics.Deletion` (``score=`` chooses logits or raw outputs instead). The masked images
stream through the perturbation engine (one per-image mask each) in chunks of ``batch_size``.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np

from tfvis.engine.imageops import normalize
from tfvis.engine.perturbation import MaskSet
from tfvis.metrics._scoring import Scorer, as_maps
from tfvis.metrics.result import MetricResult


def _render(params, height, width):
    return params[0], None


class _MaskedConfidence:
    name = ""
    #: The ``extras`` with one row per image (concatenated when results are joined).
    per_image_extras: tuple[str, ...] = ("full", "masked")

    def __init__(self, model, batch_size: int | None = None, *, score: str = "probability",
                 output: int | str | None = None, input: int | str | None = None) -> None:
        self.batch_size = batch_size
        self.scorer = Scorer(model, score=score, render=_render, output=output, input=input)

    def confidences(self, images: Any, maps: Any, targets: Any = None):
        """``(Y, O)``: float64 ``(N,)`` scores of the images and of ``image * E``."""
        scorer = self.scorer
        base, resolved, size = scorer.unperturbed(images, targets, self.batch_size)
        x = base.x
        maps = normalize(as_maps(maps, x.shape[:3]))
        masks = MaskSet((maps[:, None],), per_image=True)
        masked = scorer.pair_scores(resolved.kind, base, np.zeros_like(x), masks, size)
        return np.asarray(base.scores, np.float64), masked[:, 0].astype(np.float64)

    def values(self, full: np.ndarray, masked: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, images: Any, maps: Any, targets: Any = None) -> MetricResult:
        """The metric of ``maps`` on ``images``.

        Args:
          images: ``(N, H, W, C)`` (a list or dict for a multi-input model).
          maps: ``(N, H, W)`` arrays or an `Explanation`.
          targets: None (each image's top-1 class), an int, one int per image, ``(N, K)``
            weights, or a callable ``outputs -> (N,)``.
        """
        full, masked = self.confidences(images, maps, targets)
        return MetricResult(self.name, self.values(full, masked), None, MappingProxyType({
            "full": full, "masked": masked}))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(score={self.scorer.score!r})"


class AverageDrop(_MaskedConfidence):
    """Average drop: ``mean max(0, Y - O) / Y`` (a fraction; lower is better).

    Args:
      model: a Keras model.
      batch_size: masked images per model call (default 64).
      score: ``"probability"`` (default), ``"logit"`` or ``"output"``.
      output, input: which output / input of a multi-output / multi-input model.
    """

    name = "average_drop"

    def values(self, full, masked):
        drop = np.maximum(0.0, full - masked)
        return np.divide(drop, full, out=np.zeros_like(drop), where=full > 0)


class IncreaseInConfidence(_MaskedConfidence):
    """Increase in confidence: the fraction of images with ``O > Y`` (higher is better).
    Arguments as `AverageDrop`."""

    name = "increase_in_confidence"

    def values(self, full, masked):
        return (masked > full).astype(np.float64)
