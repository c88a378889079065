"""What is explained: one place that turns every target form into something compiled code uses.

Class choices (None, an int, one int per sample, one-hot or soft weights) all become a
``(N, K)`` float weight array plus an ``auto`` flag per sample (pick the top-1 class inside the
compiled step). The score of a sample is ``sum(outputs * weights)``, so one traced function
serves every class: changing targets never retraces. A callable ``outputs -> (N,)`` is the
escape hatch for output neurons, regression, embedding dimensions and multi-output models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import numpy as np
import tensorflow as tf

TargetsLike = Union[None, int, Sequence[int], np.ndarray, Callable[[Any], Any]]


@dataclass(frozen=True)
class Targets:
    """Resolved targets for N samples.

    Attributes:
      weights: ``(N, K)`` float32 class weights (rows of zeros where ``auto``), or None.
      auto: ``(N,)`` bool, True where the sample's top-1 class is explained.
      fn: a callable ``outputs -> (N,)`` scores, or None.
      soft: True when ``weights`` has rows that are not one-hot (soft weights).
    """

    weights: np.ndarray | None
    auto: np.ndarray
    fn: Callable[[Any], Any] | None = None
    soft: bool = False


def resolve_targets(targets: TargetsLike, n: int, num_classes: int | None) -> Targets:
    """Validates ``targets`` for ``n`` samples of a model with ``num_classes`` class scores.

    Args:
      targets: None (top-1 class of each sample), an int (same class for all), a sequence
        or 1-D array of ints (one per sample), a ``(N, K)`` one-hot or soft weight array, or
        a callable from the model's outputs to one score per sample.
      n: number of samples.
      num_classes: K, the size of the explained output's last axis; None when the model has
        no single class output (then only a callable is accepted).

    Raises:
      ValueError / TypeError: naming the problem and the accepted forms.
    """
    if callable(targets) and not isinstance(targets, (np.ndarray, tf.Tensor)):
        return Targets(None, np.zeros(n, bool), fn=targets)
    if num_classes is None:
        raise ValueError(
            "this model has several outputs (or no rank-2 class output), so class targets are "
            "ambiguous: pass output=<name or index> to the explainer, or targets as a callable "
            "outputs -> (N,) scores, e.g. targets=lambda out: out[1][:, 3]."
        )
    if targets is None:
        return Targets(np.zeros((n, num_classes), np.float32), np.ones(n, bool))
    if isinstance(targets, tf.Tensor):
        targets = targets.numpy()
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError(f"targets must be class indices, weights or a callable, not {targets!r}")
    if isinstance(targets, (int, np.integer)):
        targets = np.full(n, int(targets))
    try:
        array = np.asarray(targets)
    except ValueError:  # ragged nested sequences
        array = np.asarray(None, dtype=object)
    if array.dtype == object or not (
        np.issubdtype(array.dtype, np.number) or array.dtype == bool
    ):
        raise TypeError(
            "targets must be None, an int, a sequence of ints, an (N, K) weight array or a "
            f"callable; got {type(targets).__name__} of {array.dtype}"
        )
    if array.ndim == 1:
        if len(array) != n:
            raise ValueError(f"got {len(array)} targets for {n} samples; give one per sample")
        if array.dtype == bool or not np.all(np.mod(array, 1) == 0):
            raise TypeError(
                "a 1-D targets array must hold integer class indices; for weights give an "
                "(N, K) array"
            )
        index = array.astype(np.int64)
        bad = index[(index < -num_classes) | (index >= num_classes)]
        if bad.size:
            raise ValueError(
                f"target class {int(bad[0])} is out of range: the model has {num_classes} "
                f"classes (0..{num_classes - 1})"
            )
        return Targets(np.eye(num_classes, dtype=np.float32)[index], np.zeros(n, bool))
    if array.ndim == 2:
        if array.shape != (n, num_classes):
            raise ValueError(
                f"target weights have shape {array.shape}; expected (N, K) = "
                f"({n}, {num_classes})"
            )
        weights = array.astype(np.float32)
        if not np.all(np.isfinite(weights)):
            raise ValueError("target weights contain NaN or Inf")
        soft = not np.all((weights == 0) | (weights == 1)) or np.any(weights.sum(1) != 1)
        return Targets(weights, np.zeros(n, bool), soft=bool(soft))
    raise ValueError(
        f"targets of rank {array.ndim} are not understood: give None, an int, one int per "
        "sample, an (N, K) weight array or a callable"
    )


def class_scores(outputs, weights, auto):
    """Compiled-side score of class targets.

    Returns:
      ``(scores (N,), weights (N, K))`` where auto rows became the one-hot top-1 class.
    """
    outputs = tf.cast(outputs, tf.float32)
    top = tf.one_hot(tf.argmax(outputs, axis=-1), tf.shape(outputs)[-1], dtype=tf.float32)
    weights = tf.where(auto[:, None], top, weights)
    return tf.reduce_sum(outputs * weights, axis=-1), weights
