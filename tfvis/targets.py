"""What is explained: one place that turns every target form into something compiled code uses.

Class choices (None, an int, one int per sample, one-hot or soft weights) all become a
``(N, K)`` float weight array plus an ``auto`` flag per sample (pick the top-1 class inside the
compiled step). The score of a sample is ``sum(outputs * weights)``, so one traced function
serves every class: changing targets never retraces. A callable ``outputs -> (N,)`` is the
escape hatch for output neurons, embedding dimensions and multi-output models. Task targets
(`Regression`, `Segmentation`) carry their choices as per-sample arrays fed to the compiled
step, so changing the class or the mask never retraces either.

Detection models have no single output layout, so box scores are a callable recipe: for a
model whose output is ``(N, boxes, 4 + K)`` (box, then class logits), the score of class ``k``
in the boxes that overlap a region is::

    def box_score(outputs, k=3, keep=keep):     # keep: (boxes,) 0/1 array chosen once
        return tf.reduce_sum(outputs[..., 4 + k] * keep, axis=-1)

Define the function once and pass the same object on every call (each new function object
compiles a new step).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence, Union

import numpy as np
import tensorflow as tf

class Task:
    """A task target: what is explained, as per-sample arrays and a pure TF score.

    Subclasses write `params` (host side: the arrays, one row per sample or one row shared by
    all) and `score` (compiled side: depends only on its arguments, so one compiled step
    serves every instance of the class).
    """

    def params(self, n: int | None, output_shape: tuple) -> tuple[np.ndarray, ...]:
        """Per-sample arrays for ``n`` samples (None: unknown, give one shared row)."""
        raise NotImplementedError

    @staticmethod
    def score(output: tf.Tensor, *params: tf.Tensor) -> tf.Tensor:
        """One score per sample from the explained output and the params' rows."""
        raise NotImplementedError


class Regression(Task):
    """The signed value of a regression output.

    Args:
      output: which unit of the explained output (its last axis) to explain; None when the
        output has one value per sample (shape ``(N,)`` or ``(N, 1)``). On a multi-output
        model, the explainer's ``output=`` picks the output first.
    """

    def __init__(self, output: int | None = None) -> None:
        if output is not None and (isinstance(output, bool) or not isinstance(output, (int, np.integer))):
            raise TypeError(f"Regression(output=...) takes a unit index or None, got {output!r}")
        self.output = output

    def params(self, n, output_shape):
        units = 1 if len(output_shape) == 1 else int(np.prod(output_shape[1:]))
        if self.output is None:
            if units != 1:
                raise ValueError(
                    f"the explained output has shape {output_shape}, {units} values per sample: "
                    "say which with Regression(output=<index>)"
                )
            index = 0
        elif not -units <= self.output < units:
            raise ValueError(f"Regression output {self.output} is out of range: the output has "
                             f"{units} values per sample")
        else:
            index = self.output % units
        return (np.eye(units, dtype=np.float32)[[index]],)

    @staticmethod
    def score(output, unit):
        flat = tf.reshape(tf.cast(output, tf.float32), [tf.shape(output)[0], -1])
        return tf.reduce_sum(flat * unit, axis=-1)

    def __repr__(self) -> str:
        return f"Regression(output={self.output!r})"


class Segmentation(Task):
    """The sum of one class's scores over a pixel mask of a segmentation output.

    The explained output is ``(N, H, W, K)`` (logits by default: a final softmax/sigmoid is
    bypassed as for classifiers).

    Args:
      class_id: the class k (an int, or one per sample).
      mask: which pixels count: None (all), an ``(H, W)`` mask shared by all samples, or
        ``(N, H, W)``; boolean or float weights, at the output's resolution.
    """

    def __init__(self, class_id: int | Sequence[int], mask: Any = None) -> None:
        self.class_id = class_id
        self.mask = None if mask is None else np.asarray(mask)
        if self.mask is not None and not (
            self.mask.dtype == bool or np.issubdtype(self.mask.dtype, np.number)
        ):
            raise TypeError(f"mask must be boolean or numeric, got dtype {self.mask.dtype}")

    def params(self, n, output_shape):
        if len(output_shape) != 4:
            raise ValueError(f"Segmentation targets need an (N, H, W, K) output; the explained "
                             f"output has shape {output_shape}")
        height, width, classes = output_shape[1:]
        ids = np.atleast_1d(np.asarray(self.class_id))
        if not np.issubdtype(ids.dtype, np.integer) or ids.ndim != 1 or (
            len(ids) not in (1, n) if n is not None else len(ids) != 1
        ):
            raise ValueError(f"class_id must be an int or one int per sample, got {self.class_id!r}")
        if np.any((ids < -classes) | (ids >= classes)):
            raise ValueError(f"class_id {self.class_id!r} is out of range: the output has "
                             f"{classes} classes")
        weights = np.eye(classes, dtype=np.float32)[ids % classes]
        mask = np.ones((1, height, width), np.float32) if self.mask is None else self.mask
        mask = np.asarray(mask, np.float32)
        mask = mask[None] if mask.ndim == 2 else mask
        if mask.ndim != 3 or mask.shape[1:] != (height, width) or (
            len(mask) not in (1, n) if n is not None else len(mask) != 1
        ):
            raise ValueError(
                f"mask has shape {np.shape(self.mask)}; it must be (H, W) = ({height}, {width}) "
                f"or (N, H, W), at the resolution of the output {output_shape}"
            )
        if not np.all(np.isfinite(mask)):
            raise ValueError("mask contains NaN or Inf")
        if len(weights) != len(mask) and n is not None:
            weights, mask = np.broadcast_to(weights, (n, classes)), np.broadcast_to(
                mask, (n, height, width))
        return weights, mask

    @staticmethod
    def score(output, weights, mask):
        output = tf.cast(output, tf.float32)
        per_pixel = tf.reduce_sum(output * weights[:, None, None, :], axis=-1)
        return tf.reduce_sum(per_pixel * mask, axis=(1, 2))

    def __repr__(self) -> str:
        mask = "None" if self.mask is None else f"<{self.mask.shape} mask>"
        return f"Segmentation(class_id={self.class_id!r}, mask={mask})"


TargetsLike = Union[None, int, Sequence[int], np.ndarray, Callable[[Any], Any], Task]


@dataclass(frozen=True)
class Targets:
    """Resolved targets.

    Attributes:
      weights: ``(N, K)`` float32 class weights (rows of zeros where ``auto``), or None.
      auto: ``(N,)`` bool, True where the sample's top-1 class is explained.
      fn: a callable ``outputs -> (N,)`` scores, or None.
      soft: True when ``weights`` has rows that are not one-hot (soft weights).
      task: a `Task`, or None.
      params: the task's arrays.
      shared: True when every array has one row shared by all samples (the number of
        samples may be unknown: a streamed dataset).
    """

    weights: np.ndarray | None
    auto: np.ndarray
    fn: Callable[[Any], Any] | None = None
    soft: bool = False
    task: Task | None = None
    params: tuple = ()
    shared: bool = False

    @property
    def kind(self) -> Any:
        """What a compiled step is specialised on: None (classes), a callable, a Task type."""
        return type(self.task) if self.task is not None else self.fn

    def arrays(self) -> tuple[np.ndarray, ...]:
        """The per-sample arrays fed to a compiled step: class weights, auto flags, params."""
        weights = self.weights if self.weights is not None else np.zeros((len(self.auto), 1),
                                                                          np.float32)
        return (weights, self.auto, *self.params)

    def rows(self, start: int, stop: int) -> tuple[np.ndarray, ...]:
        """Rows ``start:stop`` of `arrays` (shared rows repeated)."""
        arrays = self.arrays()
        if self.shared:
            return tuple(np.repeat(a, stop - start, axis=0) for a in arrays)
        if stop > len(arrays[1]):
            raise ValueError(f"got {len(arrays[1])} targets, but the inputs have more samples; "
                             "give one per sample")
        return tuple(a[start:stop] for a in arrays)

    def check_count(self, n: int) -> None:
        """Raises when per-sample targets were given for another number of samples."""
        if not self.shared and len(self.auto) != n:
            raise ValueError(f"got {len(self.auto)} targets for {n} samples; give one per sample")


def resolve_targets(
    targets: TargetsLike,
    n: int | None,
    num_classes: int | None,
    output_shape: tuple | None = None,
) -> Targets:
    """Validates ``targets`` for ``n`` samples of a model with ``num_classes`` class scores.

    Args:
      targets: None (top-1 class of each sample), an int (same class for all), a sequence
        or 1-D array of ints (one per sample; ``(N, 1)`` integer labels too), a ``(N, K)``
        one-hot or soft weight array, a callable from the model's outputs to one score per
        sample, or a `Task` (`Regression`, `Segmentation`).
      n: number of samples; None when unknown (a streamed dataset: per-sample targets then
        set it, and the caller checks the count at the end).
      num_classes: K, the size of the explained output's last axis; None when the model has
        no single class output (then only a callable or a task is accepted).
      output_shape: the explained output's shape (for task targets).

    Raises:
      ValueError / TypeError: naming the problem and the accepted forms.
    """
    if isinstance(targets, Task):
        if output_shape is None:
            raise ValueError(f"{targets!r} needs one explained output: pass output=<name or "
                             "index> to the explainer for a multi-output model")
        params = targets.params(n, output_shape)
        shared = n is None or all(len(p) == 1 for p in params) and n != 1
        rows = 1 if shared else n
        return Targets(None, np.zeros(rows, bool), task=targets,
                       params=tuple(np.ascontiguousarray(p, np.float32) for p in params),
                       shared=shared)
    if callable(targets) and not isinstance(targets, (np.ndarray, tf.Tensor)):
        return Targets(None, np.zeros(n or 1, bool), fn=targets, shared=n is None)
    if num_classes is None:
        raise ValueError(
            "this model has several outputs (or no rank-2 class output), so class targets are "
            "ambiguous: pass output=<name or index> to the explainer, or targets as a callable "
            "outputs -> (N,) scores, e.g. targets=lambda out: out[1][:, 3]."
        )
    if targets is None:
        return Targets(np.zeros((n or 1, num_classes), np.float32), np.ones(n or 1, bool),
                       shared=n is None)
    if isinstance(targets, tf.Tensor):
        targets = targets.numpy()
    if isinstance(targets, (bool, np.bool_)):
        raise TypeError(f"targets must be class indices, weights or a callable, not {targets!r}")
    if isinstance(targets, (int, np.integer)):
        targets = np.full(n or 1, int(targets))
        shared = n is None
        n = n or 1
    else:
        shared = False
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
    if array.ndim == 2 and array.shape[1] == 1 and np.issubdtype(array.dtype, np.integer):
        array = array[:, 0]  # (N, 1) integer labels (keras.datasets' layout) are class ids
    elif array.ndim == 2 and array.shape[1] == 1 and num_classes > 1:
        raise ValueError(
            f"targets of shape {array.shape} and dtype {array.dtype} are ambiguous: for class "
            "ids give integers (N,) or (N, 1); for weights give (N, K) with K = "
            f"{num_classes}"
        )
    if n is None:
        n = len(array)
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
        return Targets(np.eye(num_classes, dtype=np.float32)[index], np.zeros(n, bool),
                       shared=shared)
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
