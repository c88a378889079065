"""Integrated Gradients (Sundararajan et al., 2017)."""

from __future__ import annotations

import warnings
from types import MappingProxyType
from typing import Any, Callable, Union

import numpy as np
import tensorflow as tf

from tfvis.checks import positive_int
from tfvis.engine.imageops import gaussian_blur
from tfvis.explainers.gradients import InputGradients
from tfvis.explainers.sampling import stacked, stream, unstacked
from tfvis.explanation import Explanation

BaselineLike = Union[str, float, np.ndarray, Callable[[tf.Tensor], tf.Tensor]]
METHODS = ("riemann", "trapezoid")


#: Deprecated alias: the completeness gap is in ``extras`` (``e.delta``).
IntegratedGradientsExplanation = Explanation


def path_weights(steps: int, method: str) -> tuple[np.ndarray, np.ndarray]:
    """Points ``alpha`` in [0, 1] and quadrature weights (summing to 1) of the path integral.

    ``"riemann"`` is the midpoint rule, ``alpha_k = (k + 1/2) / steps``; ``"trapezoid"`` puts
    ``steps`` points on both ends and between, halving the end weights.
    """
    if method == "riemann":
        return (np.arange(steps) + 0.5) / steps, np.full(steps, 1.0 / steps)
    if steps < 2:
        raise ValueError("the trapezoid rule needs steps >= 2")
    weights = np.full(steps, 1.0 / (steps - 1))
    weights[[0, -1]] /= 2
    return np.linspace(0.0, 1.0, steps), weights


class IntegratedGradients(InputGradients):
    """Integrated Gradients: ``(x - x') * integral_0^1 grad f(x' + a (x - x')) da``.

    Path points are streamed in chunks of at most ``batch_size`` rows, so memory does not
    grow with ``steps``. Targets are fixed at the input (top-1 there). The explanation
    carries ``delta``, the per-sample completeness gap, and a warning is given when it
    exceeds 5% of ``f(x) - f(x')``.

    Args:
      model: a Keras model.
      baseline: ``x'``: ``"black"`` (zeros), a float (constant), ``"blur"`` (the input
        blurred with a Gaussian of sigma = a tenth of the smaller image side), an array of
        one sample's shape (or broadcastable to it, e.g. per-channel values), or a function
        ``x -> x'`` in TF.
      steps: gradient evaluations along the path.
      method: ``"riemann"`` (midpoint) or ``"trapezoid"``.
      **kwargs: ``channels`` and `Explainer` options.
    """

    name = "integrated_gradients"
    title = "Integrated Gradients"
    gallery_order = 35
    quick_options = MappingProxyType({"steps": 16})
    #: Relative completeness gap above which a warning is given.
    tolerance = 0.05

    def __init__(
        self,
        model,
        baseline: BaselineLike = "black",
        steps: int = 50,
        method: str = "riemann",
        **kwargs: Any,
    ) -> None:
        super().__init__(model, **kwargs)
        steps = positive_int("steps", steps)
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {METHODS}")
        self.steps = int(steps)
        self.method = method
        self._alphas, self._quadrature = (
            tf.constant(v, tf.float32) for v in path_weights(self.steps, method)
        )
        self.baseline = self._check_baseline(baseline)

    def _check_baseline(self, baseline: BaselineLike):
        if isinstance(baseline, str):
            if baseline not in ("black", "blur"):
                raise ValueError(
                    f"unknown baseline {baseline!r}: give 'black', 'blur', a float, an array "
                    "or a function x -> baseline"
                )
            if baseline == "blur" and len(self.input_shape) != 4:
                raise ValueError("baseline='blur' needs image inputs (N, H, W, C)")
            return 0.0 if baseline == "black" else baseline
        if callable(baseline):
            return baseline
        if isinstance(baseline, (int, float, np.number)) and not isinstance(baseline, bool):
            if not np.isfinite(baseline):
                raise ValueError(f"baseline must be finite, got {baseline!r}")
            return float(baseline)
        array = np.asarray(baseline, dtype=np.float32)
        sample = self.input_shape[1:]
        fits = array.ndim <= len(sample) and all(
            b in (1, m) or m is None for b, m in zip(array.shape[::-1], sample[::-1])
        )
        if not fits:
            raise ValueError(
                f"baseline of shape {array.shape} does not broadcast to one input sample of "
                f"shape {sample}"
            )
        if not np.all(np.isfinite(array)):
            raise ValueError("baseline contains NaN or Inf")
        return tf.constant(array)

    def baseline_of(self, x: tf.Tensor) -> tf.Tensor:
        """The baseline batch for the input batch ``x``."""
        if isinstance(self.baseline, float):
            return tf.fill(tf.shape(x), self.baseline)
        if isinstance(self.baseline, str):  # "blur"
            sigma = tf.cast(tf.reduce_min(tf.shape(x)[1:3]), tf.float32) / 10.0
            return gaussian_blur(x, tf.maximum(sigma, 0.5))
        if callable(self.baseline):
            return tf.broadcast_to(tf.cast(self.baseline(x), tf.float32), tf.shape(x))
        if x.shape.is_fully_defined():
            try:
                np.broadcast_shapes(tuple(self.baseline.shape), tuple(x.shape[1:]))
            except ValueError:
                raise ValueError(
                    f"baseline of shape {tuple(self.baseline.shape)} does not broadcast to "
                    f"the input samples of shape {tuple(x.shape[1:])}"
                ) from None
        return tf.broadcast_to(self.baseline, tf.shape(x))

    def explain_batch(self, x, score):
        scores, class_weights, pinned = self.pin(x, score)
        baseline = self.baseline_of(x)
        span = x - baseline
        ones = tf.ones_like(tf.shape(x))

        def step(index, valid):
            last = self.steps - 1
            alpha = tf.gather(self._alphas, tf.minimum(index, last))
            weight = tf.where(valid, tf.gather(self._quadrature, tf.minimum(index, last)), 0.0)
            alpha = tf.reshape(alpha, tf.concat([tf.shape(index), ones], 0))
            points = stacked(baseline[None] + alpha * span[None])
            grads, _, _ = self.gradients(points, lambda outputs: (pinned(outputs), None))
            grads = unstacked(grads, tf.size(index))
            return (tf.tensordot(weight, grads, 1),)

        (average,) = stream(self.steps, tf.shape(x)[0], self.batch_size, step,
                            (tf.zeros_like(x, tf.float32),))
        attributions = span * average
        baseline_scores = pinned(self.forward(baseline))
        axes = tf.range(1, tf.rank(x))
        delta = tf.reduce_sum(attributions, axes) - (scores - baseline_scores)
        return attributions, scores, class_weights, delta

    def _assemble(self, raw, scores, used, resolved, delta) -> Explanation:
        explanation = super()._assemble(raw, scores, used, resolved)
        total = raw.reshape(len(raw), -1).sum(axis=1, dtype=np.float64)
        change = total - delta
        relative = np.abs(delta) / np.maximum(np.abs(change), 1e-3 * np.abs(scores) + 1e-6)
        if np.any(relative > self.tolerance):
            worst = int(np.argmax(relative))
            warnings.warn(
                f"Integrated Gradients completeness gap is {relative[worst]:.1%} of "
                f"f(x) - f(baseline) for sample {worst} (steps={self.steps}): increase steps "
                "for a more accurate integral",
                stacklevel=3,
            )
        return explanation.with_extras(delta=delta.astype(np.float32))
