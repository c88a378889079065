"""Occlusion sensitivity (Zeiler & Fergus, 2014): slide a patch over the image, watch the score."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import tensorflow as tf

from tfvis.engine.imageops import gaussian_blur
from tfvis.engine.perturbation import MaskSet, StreamResult
from tfvis.explainers.perturbation import (
    PerturbationExplainer,
    as_pair,
    broadcast_fill,
    finite_fill,
)
from tfvis.explanation import Explanation

_FILLS = ("mean", "blur")


#: Occlusion's results are plain `Explanation` objects; its per-position results are
#: ``extras``: ``position_scores``, float32 ``(N, rows, cols)``, the target score with the patch
#: at each position (``scores[:, None, None] - position_scores`` is the drop per position),
#: and ``top_class``, int32 ``(N, rows, cols)``, the top-1 class with the patch at each
#: position (only with ``return_top_class=True``; None otherwise). The name is kept for
#: imports and ``isinstance`` checks.
OcclusionExplanation = Explanation


def patch_positions(size: int, patch: int, stride: int) -> np.ndarray:
    """Start offsets of a patch along one axis: ``0, stride, 2 * stride, ...``.

    When the strided positions stop short of the border, one more position flush with it is
    added, so every pixel is covered: ``ceil((size - patch) / stride) + 1`` positions.
    """
    starts = np.arange(0, size - patch + 1, stride)
    if starts[-1] != size - patch:
        starts = np.r_[starts, size - patch]
    return starts.astype(np.int32)


def _coverage(size: int, patch: int, starts: np.ndarray) -> np.ndarray:
    covered = np.zeros(size + 1, np.float32)
    np.add.at(covered, starts, 1.0)
    np.add.at(covered, starts + patch, -1.0)
    return np.cumsum(covered)[:size]


class Occlusion(PerturbationExplainer):
    """Occlusion sensitivity (Zeiler & Fergus, 2014).

    A patch replaced by ``fill`` slides over the image; the map at a pixel is the drop of the
    target score, ``score(image) - score(occluded image)``, averaged over every patch position
    covering that pixel, at input resolution. Positive values mark regions that support the
    target. Positions start every ``stride`` pixels, plus one flush with the bottom/right
    border when needed, so every pixel is covered (see `patch_positions`).

    Args:
      model: any Keras model (see `PerturbationExplainer`).
      patch_size: patch size in pixels, an int or ``(height, width)``.
      stride: step between positions, an int or ``(height, width)``; None means half the
        patch (at least 1).
      fill: what covers the patch: a number (all channels), a per-channel sequence,
        ``"mean"`` (each image's per-channel mean), ``"blur"`` (the image blurred with a
        Gaussian of sigma = half the patch size per axis), or an array broadcastable to
        ``(H, W, C)`` or ``(N, H, W, C)`` (grey ``(H, W)`` is accepted for 1-channel
        images). Values are in the model's input units: nothing assumes a 0..255 range.
      return_top_class: also record the top-1 class for each patch position
        (``top_class`` in the result's extras); needs a class output.
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size`` = occluded
        images per model call, ``verbose``, ``input`` = the occluded input of a multi-input
        model, whose other inputs are held fixed).
    """

    name = "occlusion"
    title = "Occlusion"
    gallery_order = 50
    quick_options = MappingProxyType({"patch_size": 8, "stride": 4, "batch_size": 128})
    keep_scores = True

    def __init__(
        self,
        model,
        patch_size: int | tuple[int, int] = 16,
        stride: int | tuple[int, int] | None = None,
        fill: Any = "mean",
        *,
        return_top_class: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        self.patch_size = as_pair(patch_size, "patch_size")
        if stride is None:
            stride = tuple(max(1, p // 2) for p in self.patch_size)
        self.stride = as_pair(stride, "stride")
        if isinstance(fill, str) and fill not in _FILLS:
            raise ValueError(
                f"fill must be a number, an array, 'mean' or 'blur'; got {fill!r}"
            )
        if not isinstance(fill, str):
            fill = finite_fill(fill)
        self.fill = fill
        self.return_top_class = bool(return_top_class)
        if self.return_top_class and self.output_index is None:
            raise ValueError(
                "return_top_class needs a class output: pass output=<name or index> for a "
                "multi-output model"
            )

    def positions(self, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
        """Row and column start offsets of the patch for ``height x width`` images."""
        (ph, pw), (sh, sw) = self.patch_size, self.stride
        if ph > height or pw > width:
            raise ValueError(
                f"patch_size {self.patch_size} is larger than the image ({height}, {width}); "
                "use a smaller patch"
            )
        return patch_positions(height, ph, sh), patch_positions(width, pw, sw)

    def mask_set(self, height: int, width: int) -> MaskSet:
        rows, cols = self.positions(height, width)
        corners = np.stack(np.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)
        return MaskSet((corners.astype(np.int32),))

    def render(self, params, height, width):
        (corners,) = params
        (ph, pw) = self.patch_size

        def inside(start, size, length):
            at = tf.range(length)[None, :]
            return (at >= start[:, None]) & (at < start[:, None] + size)

        rows = inside(corners[:, 0], ph, height)
        cols = inside(corners[:, 1], pw, width)
        patch = tf.cast(rows[:, :, None] & cols[:, None, :], tf.float32)
        return 1.0 - patch, patch

    def fill_values(self, x: np.ndarray) -> np.ndarray:
        if isinstance(self.fill, str):
            if self.fill == "mean":
                return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True), x.shape).copy()
            return gaussian_blur(x, tuple(p / 2 for p in self.patch_size)).numpy()
        return broadcast_fill(self.fill, x)

    def combine(self, result: StreamResult, base, masks):
        height, width = base.x.shape[1:3]
        rows, cols = self.positions(height, width)
        coverage = np.outer(
            _coverage(height, self.patch_size[0], rows), _coverage(width, self.patch_size[1], cols)
        )
        return base.scores[:, None, None] - result.accumulated / coverage

    def _finish(self, explanation: Explanation, result: StreamResult, masks: MaskSet):
        grid = (len(explanation), *(len(p) for p in self.positions(*explanation.maps.shape[1:])))
        top = result.top.reshape(grid) if self.return_top_class else None
        return explanation.with_extras(position_scores=result.scores.reshape(grid),
                                       top_class=top)
