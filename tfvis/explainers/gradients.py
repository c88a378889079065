"""Pixel-space gradient methods: vanilla saliency, guided backprop, deconvnet, gradient x input,
and guided Grad-CAM.

They share one computation, ``d score / d input`` through the model's own layer graph; the only
difference between saliency, guided backprop and deconvnet is the ReLU backward ``rule``
(`tfvis.surgery.gates`), and gradient x input multiplies by the input. ``raw`` is the signed
``(N, H, W, C)`` attribution; ``maps`` reduce it over channels (``channels=``, default the
max of absolute values, as in Simonyan et al.).
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, ClassVar

import keras
import numpy as np
import tensorflow as tf

from tfvis.explainers.base import Explainer, fold_channels
from tfvis.explainers.cam import GradCAM
from tfvis.surgery.gates import refuse_saved_models, relu_gates

#: Channel reductions from a signed ``(..., C)`` attribution to a grey value.
CHANNEL_REDUCTIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "max_abs": lambda r: fold_channels(r, np.maximum, np.abs),
    "sum_abs": lambda r: fold_channels(r, np.add, np.abs),
    "l2": lambda r: np.sqrt(fold_channels(r, np.add, np.square)),
    "sum": lambda r: fold_channels(r, np.add),
}


class InputGradients(Explainer):
    """Base of the gradient family: attributions from ``d score / d input``.

    Args:
      model: a Keras model (functional, Sequential or nested; subclassed models and
        SavedModels (`keras.layers.TFSMLayer`) only for methods without a ReLU rule: their
        ReLUs are hidden, so a rule cannot be applied and they raise a TypeError).
      channels: how ``maps`` reduce the signed ``(N, H, W, C)`` raw to grey: ``"max_abs"``
        (default, Simonyan et al.), ``"sum_abs"``, ``"l2"`` or ``"sum"`` (signed). Rank-2
        (non-image) inputs give ``|raw|`` (``raw`` itself for ``"sum"``).
      **kwargs: `Explainer` options (``output``, ``logits``, ``batch_size``, ``verbose``).

    Attributes:
      gates: the number of ReLU call sites whose backward rule was replaced.
    """

    #: ReLU backward rule spliced in (`tfvis.surgery.gates.RULES`); None: the model's own.
    rule: ClassVar[str | None] = None

    def __init__(self, model, *, channels: str = "max_abs", **kwargs: Any) -> None:
        if self.rule is not None and isinstance(model, keras.Model):
            # before the base warns about the SavedModel's softmax: this is refused outright
            refuse_saved_models(model, self.rule)
        super().__init__(model, **kwargs)
        if channels not in CHANNEL_REDUCTIONS:
            raise ValueError(
                f"unknown channels reduction {channels!r}; choose one of "
                f"{list(CHANNEL_REDUCTIONS)}"
            )
        self.channels = channels
        self.gates = 0
        if self.rule is not None:
            gates, self.gates = relu_gates(model, self.rule)
            if not self.gates:
                warnings.warn(
                    f"model {model.name!r} has no ReLU, so {self.title} equals plain gradients "
                    "(Saliency)",
                    stacklevel=2,
                )
            self.replace = {**gates, **self.replace}

    def gradients(self, x: tf.Tensor, score) -> tuple:
        """``(d scores / d x as float32, scores, class_weights)`` for one batch ``x``."""
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            scores, weights = score(self.forward(x))
        grads = tape.gradient(scores, x)
        grads = tf.zeros_like(x) if grads is None else grads
        return tf.cast(grads, tf.float32), scores, weights

    def attribute(self, x: tf.Tensor, grads: tf.Tensor) -> tf.Tensor:
        """The attribution from the input and its gradient (the gradient itself here)."""
        return grads

    def pin(self, x: tf.Tensor, score) -> tuple:
        """Fixes the targets at ``x`` for methods that differentiate at other points.

        Noisy copies and path points must explain the class chosen at the real input, not
        their own top-1 class.

        Returns:
          ``(scores, class_weights, pinned)``: the scores at ``x``, the class weights used (or
          None for callable targets), and ``pinned(outputs) -> (scores,)`` scoring outputs of
          ``k`` stacked copies of the batch (``k * N`` rows, copy-major) for the same targets.
        """
        scores, weights = score(self.forward(x))

        def pinned(outputs):
            if weights is None:
                return score(outputs)[0]
            out = tf.cast(self._select(outputs), tf.float32)
            copies = tf.shape(out)[0] // tf.shape(weights)[0]
            return tf.reduce_sum(out * tf.tile(weights, [copies, 1]), axis=-1)

        return scores, weights, pinned

    def explain_batch(self, x, score):
        grads, scores, weights = self.gradients(x, score)
        return self.attribute(x, grads), scores, weights

    def to_maps(self, raw: np.ndarray) -> np.ndarray:
        reduce = CHANNEL_REDUCTIONS[self.channels]
        return reduce(raw) if raw.ndim == 4 else reduce(raw[..., None])


class Saliency(InputGradients):
    """Vanilla gradient saliency (Simonyan et al., 2014): ``d score / d input``."""

    name = "saliency"
    title = "Saliency"
    gallery_order = 30


class GuidedBackprop(InputGradients):
    """Guided backpropagation (Springenberg et al., 2015): at every ReLU only positive
    gradients flow, and only where the forward input was positive."""

    name = "guided_backprop"
    title = "Guided Backprop"
    gallery_order = 31
    rule = "guided"
    needs_internals = True


class Deconvnet(InputGradients):
    """Deconvnet backprop (Zeiler & Fergus, 2014): every ReLU passes the positive part of the
    backward signal, whatever its forward input was."""

    name = "deconvnet"
    title = "Deconvnet"
    gallery_order = 32
    rule = "deconvnet"
    needs_internals = True


class GradientInput(InputGradients):
    """Gradient x input (Shrikumar et al., 2016): the signed input times its gradient."""

    name = "gradient_input"
    title = "Gradient x Input"
    gallery_order = 33

    def attribute(self, x, grads):
        return tf.cast(x, tf.float32) * grads


class GuidedGradCAM(InputGradients):
    """Guided Grad-CAM (Selvaraju et al., 2017): guided backprop times the upsampled Grad-CAM
    map of ``layer``.

    Args:
      model: a functional or Sequential model (nested models allowed).
      layer: the Grad-CAM layer (see `tfvis.GradCAM`); None picks the last spatial layer.
      **kwargs: ``channels`` and `Explainer` options.
    """

    name = "guided_gradcam"
    title = "Guided Grad-CAM"
    gallery_order = 36
    rule = "guided"
    needs_internals = True

    def __init__(self, model, layer: Any = None, **kwargs: Any) -> None:
        super().__init__(model, **kwargs)
        options = {k: v for k, v in kwargs.items() if k != "channels"}
        self.cam = GradCAM(model, layer, **options)
        self.layer = self.cam.layer

    def parts(self) -> list[Explainer]:
        return [self.cam]

    def explain_batch(self, x, score):
        cam, scores, weights = self.cam.explain_batch(x, score)
        guided, _, _ = self.gradients(x, score)
        return guided * cam[..., None], scores, weights
