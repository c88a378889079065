"""Perturbation explainers: score the model on perturbed copies, combine the scores with masks.

A method subclasses `PerturbationExplainer` and writes a mask generator (`mask_set`, small
per-mask parameters, or `masks` for per-image parameters; `render`, their masks in TF),
optionally `fill_values` (what shows where the perturbed tensor is hidden) and `combine`
(the stream's sums or pair scores -> raw map). What is perturbed is the explained input, or,
with ``perturbs_layer``, the activations of the explainer's layer (computed once per image
and fed to the rest of the network, so only the layers after it run per perturbation). The
streaming itself is `tfvis.engine.perturbation`; the pass over the unperturbed inputs is the
one chunk loop, `tfvis.engine.runner`.

Input perturbation needs only the model's outputs, so those methods work on subclassed models
and on SavedModels wrapped in ``keras.layers.TFSMLayer``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine import runner
from tfvis.engine.compiled import compile_step
from tfvis.engine.imageops import resize
from tfvis.engine.perturbation import (
    MaskSet,
    StreamResult,
    chunk_size,
    pair_chunks,
    pair_step,
    stream,
)
from tfvis.explainers.base import Explainer, _check_batch_size
from tfvis.explainers.cam import _CAMFamily
from tfvis.explanation import Explanation
from tfvis.inputs import as_source
from tfvis.surgery import capture, layer_table, run_graph
from tfvis.targets import Targets, TargetsLike

_MAX_CACHED_PIPELINES = 8


@dataclass(frozen=True)
class Unperturbed:
    """The pass over the unperturbed inputs (numpy arrays, one row per sample).

    Attributes:
      inputs: every model input, float32, in model order.
      index: which of them is explained.
      scores: ``(N,)`` the target score of each sample.
      used: ``(N, K)`` class weights with top-1 targets resolved (zeros ``(N, 1)`` for
        callable and task targets).
      params: the task targets' arrays (``(N, ...)`` each).
      acts: ``(N, h, w, C)`` float32 activations of the explainer's layer (layer methods),
        else None.
    """

    inputs: list
    index: int
    scores: np.ndarray
    used: np.ndarray
    params: tuple
    acts: np.ndarray | None

    @property
    def x(self) -> np.ndarray:
        """The explained input ``(N, H, W, C)``."""
        return self.inputs[self.index]

    @property
    def others(self) -> list:
        """The other inputs of a multi-input model (model order)."""
        return self.inputs[: self.index] + self.inputs[self.index + 1:]


def broadcast_fill(fill: np.ndarray, x: np.ndarray, what: str = "fill") -> np.ndarray:
    """``fill`` (a number, one value per channel, ``(H, W[, C])`` or ``(N, H, W, C)``)
    broadcast to the images ``x``, float32; grey ``(H, W)`` fits 1-channel images."""
    fill = np.asarray(fill, np.float32)
    if fill.ndim == 2 and x.shape[-1] == 1:
        fill = fill[..., None]
    try:
        return np.broadcast_to(fill, x.shape).astype(np.float32)
    except ValueError:
        raise ValueError(
            f"{what} of shape {fill.shape} does not broadcast to the images {x.shape}; give a "
            "number, one value per channel, an (H, W, C) or an (N, H, W, C) array"
        ) from None


def finite_fill(fill: Any, what: str = "fill") -> np.ndarray:
    """``fill`` as a float32 array, refusing NaN and Inf."""
    fill = np.asarray(fill, np.float32)
    if not np.all(np.isfinite(fill)):
        raise ValueError(f"{what} contains NaN or Inf")
    return fill


class PerturbationExplainer(Explainer):
    """Base class of perturbation methods.

    The class target of a sample is fixed on the unperturbed image (``targets=None`` explains
    the top-1 class of the original, not of each perturbed copy); then every (image, mask)
    pair is scored in chunks of ``batch_size`` perturbed images (or activations).

    Args:
      model: any Keras model (functional, Sequential, subclassed, a ``TFSMLayer`` wrapped in
        a functional or Sequential model) for input perturbations; a layer graph for layer
        methods. Callable targets get the model's raw outputs of a batch of perturbed images
        and must return one score per row.
      **kwargs: `Explainer` options: ``output``, ``logits``, ``batch_size`` (perturbed images
        per model call; bounds the memory), ``verbose``, ``input`` (multi-input models: the
        perturbed input; the other inputs of each image are held fixed).
    """

    #: Whether `stream` keeps every pair's score and top-1 class (N * M numbers).
    keep_scores: bool = False
    #: True: the activations of ``self.layer`` are perturbed and fed to the rest of the
    #: network; False: the explained input is perturbed.
    perturbs_layer: bool = False

    def __init__(self, model, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self._pipelines: dict[tuple, tf.data.Dataset] = {}

    # -- what subclasses write -------------------------------------------------------------

    def mask_set(self, height: int, width: int) -> MaskSet:
        """The masks for ``height x width`` images, as small per-mask parameters."""
        raise NotImplementedError

    def masks(self, base: Unperturbed, height: int, width: int) -> MaskSet:
        """The masks of this call; per-image masks are built from ``base`` (e.g. each
        image's activations). Default: `mask_set` of the perturbed tensor's size."""
        return self.mask_set(height, width)

    def render(self, params: tuple, height: tf.Tensor, width: tf.Tensor) -> tuple:
        """``(keep, weight)`` from a chunk of params (see `tfvis.engine.perturbation.RenderFn`)."""
        raise NotImplementedError

    def fill_values(self, x: np.ndarray) -> np.ndarray:
        """What shows where the perturbed tensor is hidden, shaped like it; zeros by default."""
        return np.zeros_like(x)

    def perturbed_scores(self, kind: Any, outputs, weights, params: tuple) -> tf.Tensor:
        """``(B,)`` scores of perturbed copies (compiled side); default: the target scores."""
        auto = tf.zeros(tf.shape(weights)[:1], tf.bool)
        return self.target_scores(kind, outputs, weights, auto, params)[0]

    def combine(self, result: StreamResult, base: Unperturbed, masks: MaskSet) -> np.ndarray:
        """The raw ``(N, H, W)`` map from the stream's result and the unperturbed pass."""
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------

    def num_perturbations(self, height: int, width: int) -> int:
        """How many perturbed copies of each image a call scores (model calls per image)."""
        return self.mask_set(height, width).count

    def _top_class(self, outputs):
        if self.output_index is None:
            return tf.zeros(tf.shape(keras.tree.flatten(outputs)[0])[:1], tf.int32)
        return tf.argmax(self._select(outputs), axis=-1, output_type=tf.int32)

    def _joined(self, x, others):
        """The model's inputs from the explained one and the others (model order)."""
        if not others:
            return x
        others = list(others)
        return others[: self.input_index] + [x] + others[self.input_index:]

    def _base_step(self, kind: Any):
        def base(*args):
            x, others, (weights, auto, *params) = self.split(args)
            if self.layer is None:
                outputs, acts = self.forward(x, others=others), ()
            else:
                captured, outputs = capture(self.model, self._joined(x, others), [self.layer],
                                            replace=self.replace, outputs=True)
                acts = (tf.cast(captured[self.layer], tf.float32),)
            scores, used = self.target_scores(kind, outputs, weights, auto, tuple(params))
            return (scores, weights if used is None else used, *acts)

        return self._cached_step("base", kind, lambda: compile_step(base))

    def _fed_dtype(self) -> str:
        # what the layer's output holds (float16 under mixed precision): the fed value too
        info = next(i for i in layer_table(self.model) if i.path == self.layer)
        dtype = keras.backend.standardize_dtype(getattr(info.layer, "compute_dtype", None))
        return dtype if dtype.startswith(("float", "bfloat")) else "float32"

    def _pair_step(self, kind: Any, per_image: bool, by_image: int = 0):
        inputs = max(len(self.inputs), 1)
        fed = inputs if self.perturbs_layer else inputs - 1  # context arrays of model inputs

        def make():
            dtype = self._fed_dtype() if self.perturbs_layer else None

            def score(perturbed, rows):
                weights, params = rows[0], rows[1:len(rows) - fed]
                feeds = rows[len(rows) - fed:]
                if self.perturbs_layer:
                    model_inputs = feeds[0] if inputs == 1 else list(feeds)
                    outputs = run_graph(self.model, model_inputs, replace=self.replace,
                                        feed={self.layer: tf.cast(perturbed, dtype)})
                else:
                    outputs = self.forward(perturbed, others=tuple(feeds))
                return (self.perturbed_scores(kind, outputs, weights, tuple(params)),
                        self._top_class(outputs))

            return pair_step(score, self.render, per_image=per_image, by_image=by_image)

        return self._cached_step(("pairs", per_image, by_image), kind, make)

    def _unperturbed(self, source, resolved: Targets, batch_size: int) -> Unperturbed:
        """Scores (and the layer's activations) of the unperturbed inputs, in chunks."""
        chunks = runner.run(self._base_step(resolved.kind), source, resolved.rows,
                            batch_size=batch_size)
        scores, used, *acts = runner.collect(chunks)
        n = source.n
        return Unperturbed(source.arrays(), self.input_index, scores, used,
                           tuple(resolved.rows(0, n)[2:]), acts[0] if acts else None)

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
            integer dtype (cast to float32, never rescaled), grey or RGB, any size. For a
            multi-input model, a list (model order) or dict (by input name) with one array
            per input: the explained input is perturbed, the others are held fixed.
          targets: None (top-1 class of each unperturbed image), an int, one int per image,
            an ``(N, K)`` one-hot or soft weight array, a callable ``outputs -> (N,)``, or
            a task target.
          batch_size: perturbed images per model call (default: the explainer's
            ``batch_size``); the result does not depend on it.

        Returns:
          An `Explanation` whose ``raw`` is ``(N, H, W)``.
        """
        source = as_source(inputs, self.inputs, self.input_index)
        x = source.arrays()[self.input_index]
        if x.ndim != 4:
            raise ValueError(
                f"{self.title} perturbs images: inputs must be (N, H, W, C) or one (H, W, C) "
                f"image, got shape {x.shape}"
            )
        size = _check_batch_size(self.batch_size if batch_size is None else batch_size)
        resolved = self.resolve(source, targets)
        resolved.check_count(source.n)
        base = self._unperturbed(source, resolved, size)
        n, height, width = x.shape[:3]
        tensors = base.acts if self.perturbs_layer else x
        masks = self.masks(base, *tensors.shape[1:3])
        fill = np.asarray(self.fill_values(tensors), np.float32)
        context = (base.used, *base.params,
                   *(base.inputs if self.perturbs_layer else base.others))
        result = stream(
            self._pair_step(resolved.kind, masks.per_image, masks.by_image), tensors, fill,
            context, masks,
            size, keep_scores=self.keep_scores, verbose=self.verbose,
            chunks=self._pipeline(n, masks.count, size),
        )
        raw = self.combine(result, base, masks)
        return self._finish(self._assemble(raw, base.scores, base.used, resolved), result,
                            masks)

    __call__ = explain

    def _finish(self, explanation: Explanation, result: StreamResult, masks: MaskSet):
        """Hook to add method-specific `Explanation.extras`."""
        return explanation


class ChannelCAM(PerturbationExplainer):
    """A class activation map whose channel weights come from perturbations (Score-CAM,
    Ablation-CAM): ``ReLU(sum_k w_k A_k)`` at the layer's resolution, upsampled bilinearly
    to the input like the gradient CAM family.

    Args:
      model: a functional or Sequential model (nested models allowed).
      layer: name, ``"outer/inner"`` path, index, layer object, or None for the last layer
        with a spatial (rank-4, H and W > 1) output.
      relu: keep only positive evidence (as in the papers). False gives the signed map.
      **kwargs: `PerturbationExplainer` options.
    """

    needs_internals = True
    keep_scores = True

    def __init__(self, model, layer: Any = None, *, relu: bool = True, **kwargs) -> None:
        super().__init__(model, **kwargs)
        self.relu = bool(relu)
        # The CAM family's layer resolution and check (its error lists the layers that
        # qualify), shared rather than copied.
        self.layer = _CAMFamily._resolve(self, layer)
        info = next(i for i in layer_table(model) if i.path == self.layer)
        self.channels = info.shape[-1]

    def channel_weights(self, result: StreamResult, base: Unperturbed) -> np.ndarray:
        """``(N, C)`` channel weights from the pair scores and the unperturbed pass."""
        raise NotImplementedError

    def combine(self, result, base, masks):
        weights = tf.constant(self.channel_weights(result, base), tf.float32)
        cam = tf.einsum("nhwc,nc->nhw", tf.constant(base.acts), weights)
        if self.relu:
            cam = tf.nn.relu(cam)
        return resize(cam, *base.x.shape[1:3]).numpy()


def as_pair(value: Any, what: str) -> tuple[int, int]:
    """``value`` as a ``(height, width)`` pair of positive ints (an int means both)."""
    pair = (value, value) if isinstance(value, (int, np.integer)) else tuple(np.ravel(value))
    if len(pair) != 2 or not all(
        isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1 for v in pair
    ):
        raise ValueError(f"{what} must be a positive int or a (height, width) pair, got {value!r}")
    return int(pair[0]), int(pair[1])
