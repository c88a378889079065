"""RISE (Petsiuk et al., 2018): randomised input sampling for explanation of black-box models."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
import tensorflow as tf

from tfvis.checks import positive_int
from tfvis.engine.perturbation import MaskSet
from tfvis.explainers.perturbation import PerturbationExplainer, as_pair


class RISE(PerturbationExplainer):
    """RISE (Petsiuk, Das & Saenko, 2018).

    Each of ``num_masks`` masks is a random binary ``grid_size`` grid (cells kept with
    probability ``keep_prob``) upsampled bilinearly to ``(grid + 1) * cell`` pixels, where
    ``cell = ceil(size / grid)``, then cropped to the image size at a random offset in
    ``[0, cell)`` per axis (the paper's random shift). The model scores ``image * mask``;
    the saliency is ``sum_j score_j * mask_j / (num_masks * keep_prob)``.

    Masks are drawn once, at construction, as the coarse grids and shifts (a few numbers per
    mask), from ``numpy.random.default_rng(seed)``; full-resolution masks exist only for the
    chunk being scored. The same seed gives the same masks and maps for any ``batch_size``
    and any call; the global random state is never used or changed.

    Args:
      model: any Keras model (see `PerturbationExplainer`).
      num_masks: number of random masks N (the paper uses 4000 for ResNet50 on ImageNet).
      grid_size: cells of the coarse grid, an int or ``(rows, cols)``.
      keep_prob: probability p that a grid cell is kept.
      seed: seed of the masks (default 0, as for every random method in tfvis: two explainers
        built the same way give the same map). None draws fresh entropy from the operating
        system once; the value drawn is stored in ``self.seed`` so a result can be
        reproduced.
      logits: False by default, unlike gradient methods: as in the paper, the saliency is
        the expected class *probability* given that a pixel is kept; unbounded logits let a
        few masks dominate the average (on the demo's shapes, the pointing game drops from
        0.75 to 0.55). True explains the pre-activation score.
      **kwargs: `Explainer` options (``output``, ``batch_size`` = masked images per model
        call, ``verbose``, ``input`` = the masked input of a multi-input model, whose other
        inputs are held fixed).
    """

    name = "rise"
    title = "RISE"
    gallery_order = 51
    quick_options = MappingProxyType({"num_masks": 300, "seed": 0, "batch_size": 128})

    def __init__(
        self,
        model,
        num_masks: int = 4000,
        grid_size: int | tuple[int, int] = 7,
        keep_prob: float = 0.5,
        seed: int | None = 0,
        *,
        logits: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(model, logits=logits, **kwargs)
        num_masks = positive_int("num_masks", num_masks)
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"keep_prob must be in (0, 1], got {keep_prob!r}")
        self.num_masks = int(num_masks)
        self.grid_size = as_pair(grid_size, "grid_size")
        self.keep_prob = float(keep_prob)
        self.seed = int(np.random.SeedSequence().entropy) if seed is None else int(seed)
        rng = np.random.default_rng(self.seed)
        self._grids = (rng.random((self.num_masks, *self.grid_size)) < self.keep_prob).astype(
            np.float32
        )
        self._shifts = rng.random((self.num_masks, 2))

    def _cells(self, height: int, width: int) -> np.ndarray:
        return -(-np.array([height, width]) // np.array(self.grid_size))

    def mask_set(self, height: int, width: int) -> MaskSet:
        shifts = np.floor(self._shifts * self._cells(height, width)).astype(np.int32)
        return MaskSet((self._grids, shifts))

    def render(self, params, height, width):
        # Upsampling the grid bilinearly (half-pixel centres, edges clamped) to (grid + 1) *
        # cell pixels and cropping at the shift is one crop_and_resize of the edge-padded grid:
        # output pixel i samples grid coordinate (shift + i + 0.5) * grid / upsampled - 0.5.
        grids, shifts = params
        boxes = []
        for axis, (grid, size) in enumerate(zip(self.grid_size, (height, width))):
            step = grid / tf.cast((grid + 1) * ((size + grid - 1) // grid), tf.float32)
            first = (tf.cast(shifts[:, axis], tf.float32) + 0.5) * step + 0.5  # +1: padding
            last = first + tf.cast(size - 1, tf.float32) * step
            boxes.append((first / (grid + 1), last / (grid + 1)))
        (y1, y2), (x1, x2) = boxes
        padded = tf.pad(grids[..., None], [[0, 0], [1, 1], [1, 1], [0, 0]], mode="SYMMETRIC")
        masks = tf.image.crop_and_resize(padded, tf.stack([y1, x1, y2, x2], axis=1),
                                         tf.range(tf.shape(grids)[0]), [height, width])[..., 0]
        return masks, masks

    def combine(self, result, base, masks):
        return result.accumulated / (masks.count * self.keep_prob)

    def generate_masks(self, height: int, width: int, start: int = 0, stop: int | None = None):
        """The full-resolution masks ``start:stop`` for ``height x width`` images.

        For inspection; `explain` renders them chunk by chunk and never holds them all.

        Returns:
          float32 ``(stop - start, H, W)`` in [0, 1].
        """
        grids, shifts = self.mask_set(height, width).params
        chunk = slice(start, stop)
        keep, _ = self.render((tf.constant(grids[chunk]), tf.constant(shifts[chunk])),
                              tf.constant(height), tf.constant(width))
        return keep.numpy()
