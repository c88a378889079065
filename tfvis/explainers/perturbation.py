"""Black-box explainers: score the model on perturbed copies of the input, combine with masks.

A method subclasses `PerturbationExplainer` and writes a mask generator (`mask_set`, small
per-mask parameters; `render`, their full-resolution masks in TF), optionally `fill_values`
(what shows where the image is hidden) and `combine` (accumulated scores -> raw map). The
streaming itself is `tfvis.engine.perturbation`. Only the model's outputs are used, so these
methods work on subclassed models and on SavedModels wrapped in ``keras.layers.TFSMLayer``.
"""

from __future__ import annotations

from typing import Any, Callable

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine.compiled import compile_step
from tfvis.engine.perturbation import (
    MaskSet,
    StreamResult,
    chunk_size,
    pair_chunks,
    pair_step,
    stream,
)
from tfvis.explainers.base import Explainer, _check_batch_size
from tfvis.explanation import Explanation
from tfvis.inputs import as_batch
from tfvis.targets import Targets, TargetsLike, resolve_targets

_MAX_CACHED_PIPELINES = 8


class PerturbationExplainer(Explainer):
    """Base class of perturbation methods.

    The class target of a sample is fixed on the unperturbed image (``targets=None`` explains
    the top-1 class of the original, not of each masked copy); then every (image, mask) pair
    is scored in chunks of ``batch_size`` perturbed images.

    Args:
      model: any Keras model (functional, Sequential, subclassed, a ``TFSMLayer`` wrapped in
        a functional or Sequential model). Callable targets get the model's raw outputs of a
        batch of perturbed images and must return one score per row.
      **kwargs: `Explainer` options: ``output``, ``logits``, ``batch_size`` (perturbed images
        per model call; bounds the memory), ``verbose``.
    """

    #: Whether `stream` keeps every pair's score and top-1 class (N * M numbers).
    keep_scores: bool = False

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self._pipelines: dict[tuple, tf.data.Dataset] = {}

    # -- what subclasses write -------------------------------------------------------------

    def mask_set(self, height: int, width: int) -> MaskSet:
        """The masks for ``height x width`` images, as small per-mask parameters."""
        raise NotImplementedError

    def render(self, params: tuple, height: tf.Tensor, width: tf.Tensor) -> tuple:
        """Full-resolution ``(keep, weight)``, each ``(B, H, W)``, from a chunk of params."""
        raise NotImplementedError

    def fill_values(self, x: np.ndarray) -> np.ndarray:
        """What shows where an image is hidden, ``(N, H, W, C)``; zeros by default."""
        return np.zeros_like(x)

    def combine(
        self, result: StreamResult, scores: np.ndarray, masks: MaskSet, height: int, width: int
    ) -> np.ndarray:
        """The raw ``(N, H, W)`` map from the accumulated sums and the unperturbed scores."""
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------

    def num_perturbations(self, height: int, width: int) -> int:
        """How many perturbed copies of each image a call scores (model calls per image)."""
        return self.mask_set(height, width).count

    def _top_class(self, outputs):
        if self.output_index is None:
            return tf.zeros(tf.shape(keras.tree.flatten(outputs)[0])[:1], tf.int32)
        return tf.argmax(self._select(outputs), axis=-1, output_type=tf.int32)

    def _compiled(self, kind: str, fn: Callable | None):
        if kind == "base":

            def base(x, weights, auto):
                scores, used = self.target_scores(fn, self.forward(x), weights, auto)
                return scores, weights if used is None else used

            return self._cached_step(kind, fn, lambda: compile_step(base))

        def score(x, weights):
            outputs = self.forward(x)
            auto = tf.zeros(tf.shape(weights)[:1], tf.bool)
            return self.target_scores(fn, outputs, weights, auto)[0], self._top_class(outputs)

        return self._cached_step(kind, fn, lambda: pair_step(score, self.render))

    def _base_scores(self, x: np.ndarray, resolved: Targets, batch_size: int):
        """Scores of the unperturbed images, and the class weights with top-1 resolved."""
        n = len(x)
        weights = resolved.weights
        if weights is None:
            weights = np.zeros((n, 1), np.float32)
        step = self._compiled("base", resolved.fn)
        chunk = min(batch_size, n)
        scores = np.zeros(n, np.float32)
        used = np.zeros_like(weights)
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            pad = np.r_[np.arange(start, stop), np.full(chunk - (stop - start), stop - 1)]
            s, w = step(tf.constant(x[pad]), tf.constant(weights[pad]),
                        tf.constant(resolved.auto[pad]))
            scores[start:stop] = s.numpy()[: stop - start]
            used[start:stop] = w.numpy()[: stop - start]
        return scores, used

    def _pipeline(self, n: int, m: int, batch_size: int) -> tf.data.Dataset:
        key = (n, m, batch_size)
        if key not in self._pipelines:
            if len(self._pipelines) >= _MAX_CACHED_PIPELINES:
                self._pipelines.pop(next(iter(self._pipelines)))
            self._pipelines[key] = pair_chunks(n, m, chunk_size(n * m, batch_size))
        return self._pipelines[key]

    def explain(
        self, inputs: Any, targets: TargetsLike = None, batch_size: int | None = None
    ) -> Explanation:
        """Explains ``inputs`` for ``targets``.

        Args:
          inputs: one image or a batch (numpy, tensor or `tf.data.Dataset`), any float or
            integer dtype (cast to float32, never rescaled), grey or RGB, any size.
          targets: None (top-1 class of each unperturbed image), an int, one int per image,
            an ``(N, K)`` one-hot or soft weight array, or a callable ``outputs -> (N,)``.
          batch_size: perturbed images per model call (default: the explainer's
            ``batch_size``); the result does not depend on it.

        Returns:
          An `Explanation` whose ``raw`` is ``(N, H, W)``.
        """
        x = as_batch(inputs, self.input_shape)
        if x.ndim != 4:
            raise ValueError(
                f"{self.title} perturbs images: inputs must be (N, H, W, C) or one (H, W, C) "
                f"image, got shape {x.shape}"
            )
        n, height, width = x.shape[:3]
        resolved = resolve_targets(targets, n, self._num_classes(x))
        size = _check_batch_size(self.batch_size if batch_size is None else batch_size)
        scores, used = self._base_scores(x, resolved, size)
        masks = self.mask_set(height, width)
        fill = np.asarray(self.fill_values(x), np.float32)
        result = stream(
            self._compiled("pairs", resolved.fn), x, fill, used, masks, size,
            keep_scores=self.keep_scores, verbose=self.verbose,
            chunks=self._pipeline(n, masks.count, size),
        )
        raw = self.combine(result, scores, masks, height, width)
        return self._finish(self._assemble(raw, scores, used, resolved), result, masks)

    __call__ = explain

    def _finish(self, explanation: Explanation, result: StreamResult, masks: MaskSet):
        """Hook to add method-specific fields to the `Explanation`."""
        return explanation


def as_pair(value: Any, what: str) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` pair of positive ints (an int means both)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(np.ravel(value))
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair, got {value!r}")
    return int(pair[0]), int(pair[1])
