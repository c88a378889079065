"""What the model-based metrics share: the scored model, map and substrate arguments.

`Scorer` is a small `PerturbationExplainer` (never registered, never returned to users): it
resolves targets like the explainers (``targets=None`` fixes each image's top-1 class on the
unperturbed image), runs the unperturbed pass through `tfvis.engine.runner`, and streams
perturbed copies in chunks of ``batch_size`` through the perturbation engine. What it scores
(``score=``):

* ``"probability"`` (default): the target's probability. A model whose explained output
  ends in softmax or sigmoid (a fused activation or a separate layer) gives it as it is; a
  model whose output is not squashed gets a softmax over its classes (K > 1) or a sigmoid
  (K = 1). A model hiding its graph (subclassed, SavedModel) is taken as it is, since it
  cannot be inspected.
* ``"logit"``: the pre-activation score (a final softmax/sigmoid is bypassed, as the
  explainers do by default).
* ``"output"``: the model's output as it is.

Callable and task targets always get the model's raw outputs.
"""

from __future__ import annotations

from functools import partial
from typing import Any, Callable

import numpy as np
import tensorflow as tf

from tfvis.engine.imageops import gaussian_blur
from tfvis.engine.perturbation import MaskSet, chunk_size, stream
from tfvis.explainers.base import _check_batch_size
from tfvis.explainers.perturbation import PerturbationExplainer, broadcast_fill, finite_fill
from tfvis.inputs import as_source
from tfvis.surgery import _keras
from tfvis.surgery.graph import graph_of
from tfvis.surgery.heads import _SQUASHING, _activation_name, _trace
from tfvis.targets import class_scores

SCORES = ("probability", "logit", "output")
#: Perturbed images per model call when a metric's ``batch_size`` is None.
DEFAULT_BATCH_SIZE = 64


def output_squashed(model, index: int) -> bool:
    """Whether output ``index`` of ``model`` ends in a softmax or sigmoid."""
    graph = graph_of(model)
    _, op, _, _ = _trace(graph.outputs[index], graph)[-1]
    return (_keras.keras_op_name(op) in ("Softmax", "Sigmoid") and _activation_name(op) is None
            ) or _activation_name(op) in _SQUASHING


def as_maps(maps: Any, shape: tuple) -> np.ndarray:
    """``maps`` (an `Explanation`, ``(N, H, W)`` or ``(N, H, W, 1)``) as float32 ``(N, H, W)``
    matching the images' ``(N, H, W)`` ``shape``; refuses NaN and Inf."""
    maps = getattr(maps, "maps", maps)
    if isinstance(maps, tf.Tensor):
        maps = maps.numpy()
    maps = np.asarray(maps, np.float32)
    if maps.ndim == 4 and maps.shape[-1] == 1:
        maps = maps[..., 0]
    if maps.shape != tuple(shape):
        raise ValueError(f"maps have shape {maps.shape}; expected (N, H, W) = {tuple(shape)}, "
                         "one map per image at the images' resolution")
    if not np.all(np.isfinite(maps)):
        raise ValueError("maps contain NaN or Inf")
    return maps


def substrate_values(substrate: Any, x: np.ndarray, sigma: float = 5.0) -> np.ndarray:
    """What shows where pixels are removed, ``(N, H, W, C)`` float32.

    ``"mean"``: each image's per-channel mean; ``"blur"``: a Gaussian blur of the image
    (``sigma`` px, `tfvis.engine.imageops.gaussian_blur`); a number: a constant; an array:
    one value per channel, ``(H, W[, C])`` or ``(N, H, W, C)``.
    """
    if isinstance(substrate, str):
        if substrate == "mean":
            return np.broadcast_to(x.mean(axis=(1, 2), keepdims=True, dtype=np.float64),
                                   x.shape).astype(np.float32)
        if substrate == "blur":
            return gaussian_blur(x, float(sigma)).numpy().astype(np.float32)
        raise ValueError(f"substrate must be 'mean', 'blur', a number or an array, got "
                         f"{substrate!r}")
    return broadcast_fill(finite_fill(substrate, "substrate"), x, "substrate")


def auc(curves: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Per-row trapezoid-rule area under ``curves`` over ``fractions`` (float64 sums)."""
    curves = np.asarray(curves, np.float64)
    widths = np.diff(np.asarray(fractions, np.float64))
    return ((curves[:, 1:] + curves[:, :-1]) * 0.5 * widths).sum(axis=1)


def _ranked(rows: tuple, height, width, deletion: bool) -> tuple:
    counts, ranks = rows
    shown = ranks < counts[:, None, None]
    return tf.cast(tf.logical_not(shown) if deletion else shown, tf.float32), None


def ranked_masks(deletion: bool) -> Callable:
    """The render of deletion/insertion masks (`Scorer.rank_scores`): pixels of rank below
    the step's count are removed (deletion: ``keep`` 0) or shown (insertion: ``keep`` 1)."""
    return partial(_ranked, deletion=deletion)


class Scorer(PerturbationExplainer):
    """The model side of a metric (see the module docstring).

    Args:
      model: a Keras model (any kind that `PerturbationExplainer` takes).
      score: ``"probability"``, ``"logit"`` or ``"output"``.
      render: the `tfvis.engine.perturbation.RenderFn` of the metric's masks (None when it
        only uses `rank_scores`).
      **kwargs: ``output``, ``input``, ``batch_size``.
    """

    name = "metric"
    title = "metric"

    def __init__(self, model, score: str = "probability",
                 render: Callable | None = None, **kwargs) -> None:
        if score not in SCORES:
            raise ValueError(f"score must be one of {SCORES}, got {score!r}")
        kwargs.setdefault("verbose", 0)
        super().__init__(model, logits=score == "logit", **kwargs)
        self.score = score
        self._render = render
        self.squash = None
        graph = graph_of(model)
        if score == "probability" and self.output_index is not None and graph is not None:
            shape = self._output_shape()
            if not output_squashed(model, self.output_index) and len(shape) == 2:
                self.squash = "softmax" if shape[-1] > 1 else "sigmoid"

    def render(self, params, height, width):
        return self._render(params, height, width)

    def target_scores(self, fn, outputs, weights, auto, params=()):
        if fn is None and self.squash is not None:
            out = tf.cast(self._select(outputs), tf.float32)
            out = tf.nn.softmax(out, axis=-1) if self.squash == "softmax" else tf.sigmoid(out)
            return class_scores(out, weights, auto)
        return super().target_scores(fn, outputs, weights, auto, params)

    # -- calls -------------------------------------------------------------------------------

    def unperturbed(self, images: Any, targets: Any, batch_size: int | None):
        """``(base, resolved, batch size)``: the unperturbed pass (`Unperturbed`)."""
        source = as_source(images, self.inputs, self.input_index)
        x = source.arrays()[self.input_index]
        if x.ndim != 4:
            raise ValueError(f"images must be (N, H, W, C), got shape {x.shape}")
        size = _check_batch_size(DEFAULT_BATCH_SIZE if batch_size is None else batch_size)
        resolved = self.resolve(source, targets)
        resolved.check_count(source.n)
        return self._unperturbed(source, resolved, size), resolved, size

    def pair_scores(self, kind: Any, base, fill: np.ndarray, masks: MaskSet,
                    batch_size: int) -> np.ndarray:
        """``(N, M)`` target scores of every image under every mask of ``masks`` (rendered by
        this scorer's ``render``), ``fill`` showing where a mask's keep is 0, streamed through
        the perturbation engine in chunks of at most ``batch_size`` perturbed images. Sets
        ``calls`` to the number of compiled model calls."""
        n, m = len(base.x), masks.count
        result = stream(self._pair_step(kind, masks.per_image, masks.by_image), base.x, fill,
                        (base.used, *base.params, *base.others), masks, batch_size,
                        keep_scores=True, chunks=self._pipeline(n, m, batch_size))
        self.calls = -(-n * m // chunk_size(n * m, batch_size))
        return result.scores

    def rank_scores(self, kind: Any, base, fill: np.ndarray, ranks: np.ndarray,
                    counts: np.ndarray, batch_size: int) -> np.ndarray:
        """``(N, M)`` scores of each image with the pixels of rank below ``counts[j]``
        replaced by ``fill`` (a scorer built with ``render=ranked_masks(deletion=True)``) or
        with only those pixels shown over ``fill`` (``deletion=False``).

        The masks are one count per step, shared by the images, and one int rank map per
        image (`MaskSet.by_image`), so memory does not grow with the steps.
        """
        masks = MaskSet((counts.astype(np.int32), ranks.astype(np.int32)), by_image=1)
        return self.pair_scores(kind, base, fill, masks, batch_size)
