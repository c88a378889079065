"""SmoothGrad (Smilkov et al., 2017) and its VarGrad / SquareGrad statistics, over any
gradient explainer."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvis.checks import positive_int
from tfvis.explainers.base import Explainer
from tfvis.explainers.gradients import InputGradients, Saliency
from tfvis.explainers.sampling import stacked, stream, unstacked

STATISTICS = ("mean", "vargrad", "squaregrad")


class SmoothGrad(Explainer):
    """Averages a gradient explainer's attribution over noisy copies of each input.

    Copy ``s`` of input ``x`` is ``x + sigma * eps_s`` with ``sigma = noise * (max(x) -
    min(x))`` and ``eps_s`` standard normal noise drawn statelessly from ``(seed, s)``: the
    same ``seed`` gives bitwise the same noise, whatever the batch, the chunking or how often
    the explainer was called, and the global random state is never used. (All inputs of a
    batch see the same ``eps_s``, scaled by their own range: that is what makes the result of
    a sample independent of the batch it is in.) Copies are streamed in chunks of at most
    ``batch_size`` rows, so memory does not grow with ``num_samples``. Targets are fixed on
    the clean input (top-1 there), and ``scores`` are the clean scores.

    Args:
      explainer_or_model: an `InputGradients` explainer (Saliency, GuidedBackprop,
        Deconvnet, GradientInput, ...), or a model, which means plain `Saliency`.
      num_samples: noisy copies per input.
      noise: noise standard deviation as a fraction of each input's value range.
      seed: seed of the noise.
      statistic: ``"mean"`` (SmoothGrad), ``"vargrad"`` (variance over the copies, Adebayo
        et al., 2018) or ``"squaregrad"`` (mean of squares, Hooker et al., 2019).
      **kwargs: with a model, options of `Saliency` (``channels``, ``output``, ``logits``,
        ``batch_size``, ``verbose``); with an explainer, only ``batch_size`` and ``verbose``
        (the rest is the wrapped explainer's).
    """

    name = "smoothgrad"
    title = "SmoothGrad"
    gallery_order = 34
    quick_options = MappingProxyType({"num_samples": 8})

    def __init__(
        self,
        explainer_or_model: InputGradients | keras.Model,
        num_samples: int = 50,
        noise: float = 0.15,
        seed: int = 0,
        statistic: str = "mean",
        **kwargs: Any,
    ) -> None:
        if isinstance(explainer_or_model, keras.Model):
            explainer_or_model = Saliency(explainer_or_model, **kwargs)
        elif not isinstance(explainer_or_model, InputGradients):
            raise TypeError(
                "SmoothGrad wraps a model or a gradient explainer (Saliency, GuidedBackprop, "
                f"Deconvnet, GradientInput), got {type(explainer_or_model).__name__}"
            )
        elif set(kwargs) - {"batch_size", "verbose"}:
            raise TypeError(
                f"options {sorted(set(kwargs) - {'batch_size', 'verbose'})} belong to the "
                "wrapped explainer: pass them when building it"
            )
        inner = explainer_or_model
        super().__init__(
            inner.model,
            output=inner.output_index,
            logits=inner.logits,
            batch_size=kwargs.get("batch_size", inner.batch_size),
            verbose=kwargs.get("verbose", inner.verbose),
            input=inner.input_index,
        )
        num_samples = positive_int("num_samples", num_samples)
        if not np.isfinite(noise) or noise < 0:
            raise ValueError(f"noise must be a non-negative fraction of the range, got {noise!r}")
        if statistic not in STATISTICS:
            raise ValueError(f"unknown statistic {statistic!r}; choose one of {STATISTICS}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        self.explainer = inner
        self.num_samples = int(num_samples)
        self.noise = float(noise)
        self.seed = int(seed)
        self.statistic = statistic

    def explain_batch(self, x, score):
        inner = self.explainer
        scores, weights, pinned = inner.pin(x, score)
        axes = tf.range(1, tf.rank(x))
        spread = tf.reduce_max(x, axes, keepdims=True) - tf.reduce_min(x, axes, keepdims=True)
        sigma = self.noise * spread

        def step(index, valid):
            eps = tf.map_fn(
                lambda s: tf.random.stateless_normal(
                    tf.shape(x)[1:], seed=tf.stack([tf.constant(self.seed, tf.int64), s])
                ),
                tf.cast(index, tf.int64),
                fn_output_signature=tf.float32,
            )
            noisy = stacked(x[None] + sigma[None] * eps[:, None])
            grads, _, _ = inner.gradients(noisy, lambda outputs: (pinned(outputs), None))
            attr = unstacked(inner.attribute(noisy, grads), tf.size(index))
            mask = tf.reshape(valid, tf.concat([tf.shape(valid), tf.ones_like(tf.shape(x))], 0))
            attr = tf.where(mask, attr, 0.0)
            return tf.reduce_sum(attr, 0), tf.reduce_sum(tf.square(attr), 0)

        zeros = tf.zeros_like(x, tf.float32)
        total, squares = stream(self.num_samples, tf.shape(x)[0], self.batch_size, step,
                                (zeros, zeros))
        mean = total / self.num_samples
        if self.statistic == "mean":
            raw = mean
        elif self.statistic == "squaregrad":
            raw = squares / self.num_samples
        else:
            raw = tf.maximum(squares / self.num_samples - tf.square(mean), 0.0)
        return raw, scores, weights

    def parts(self) -> list[Explainer]:
        return [self.explainer]

    def to_maps(self, raw: np.ndarray) -> np.ndarray:
        return self.explainer.to_maps(raw)

    def __repr__(self) -> str:
        return f"SmoothGrad({self.explainer!r}, num_samples={self.num_samples})"
