"""Streaming many variants of a batch through a gradient explainer, in bounded chunks.

SmoothGrad (noisy copies) and Integrated Gradients (path points) both need the gradient at
``count`` variants of every input. Materialising them all would make memory grow with
``count``; instead a `tf.while_loop` handles ``k`` variants of the whole batch per iteration
(``k * N <= batch_size``, at least one) and accumulates sums. The loop runs one iteration at a
time (``parallel_iterations=1``): TensorFlow would otherwise overlap up to ten, each holding a
chunk's activations for its backward pass, and memory would no longer be bounded by
``batch_size`` (on ResNet50 that overlap cost 1.2 GB for an 8-step Integrated Gradients).
"""

from __future__ import annotations

from typing import Callable

import tensorflow as tf


def chunking(count: int, n: tf.Tensor, batch_size: int) -> tuple[tf.Tensor, tf.Tensor]:
    """``(iterations, k)`` covering ``count`` variants of an ``n``-sample batch.

    ``k * n`` stays within ``batch_size`` (``k >= 1``), and ``k`` is balanced so that fewer
    than ``iterations`` variants are wasted on padding.
    """
    most = tf.maximum(1, batch_size // n)
    iterations = (count + most - 1) // most
    return iterations, (count + iterations - 1) // iterations


def stream(
    count: int,
    n: tf.Tensor,
    batch_size: int,
    step: Callable[[tf.Tensor, tf.Tensor], tuple],
    initial: tuple,
) -> tuple:
    """Folds ``step`` over the variant indices ``0 .. count - 1`` in chunks.

    Args:
      count: number of variants.
      n: the batch size of the inputs (a scalar tensor).
      batch_size: bound on ``k * n``, the rows one iteration differentiates.
      step: ``(indices (k,), valid (k,) bool) -> tuple of increments``; indices past
        ``count`` are padding and flagged invalid (their increments must be masked).
      initial: the accumulators (a tuple of tensors).

    Returns:
      The accumulated tuple.
    """
    iterations, k = chunking(count, n, batch_size)

    def body(i, totals):
        index = i * k + tf.range(k)
        increments = step(index, index < count)
        return i + 1, tuple(tf.ensure_shape(t + d, t.shape) for t, d in zip(totals, increments))

    _, totals = tf.while_loop(lambda i, _: i < iterations, body, (tf.constant(0), tuple(initial)),
                              parallel_iterations=1)  # one chunk in flight: bounded memory
    return totals


def stacked(variants: tf.Tensor) -> tf.Tensor:
    """``(k, N, ...)`` -> ``(k * N, ...)`` (copy-major, as `InputGradients.pin` expects)."""
    shape = tf.shape(variants)
    return tf.reshape(variants, tf.concat([[shape[0] * shape[1]], shape[2:]], 0))


def unstacked(rows: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """``(k * N, ...)`` -> ``(k, N, ...)``."""
    shape = tf.shape(rows)
    return tf.reshape(rows, tf.concat([[k, shape[0] // k], shape[1:]], 0))
