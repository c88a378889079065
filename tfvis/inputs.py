"""Turn what users pass as inputs into one float batch the model accepts."""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf


def input_shape(model) -> tuple:
    """The model's single input shape with the batch axis, e.g. ``(None, 64, 64, 3)``."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return ()  # subclassed model that was never called: any shape goes
    if len(inputs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(inputs)} inputs; tfvis explains single-input "
            "models. Wrap the other inputs as constants in a small functional model."
        )
    return tuple(inputs[0].shape)


def _collect_dataset(dataset: tf.data.Dataset, shape: tuple) -> np.ndarray:
    parts = []
    for element in dataset:
        if isinstance(element, (tuple, list)):
            element = element[0]
        if isinstance(element, dict):
            raise TypeError("dataset elements that are dicts are not supported; map to images")
        part = np.asarray(element)
        parts.append(_as_rank(part, shape) if shape else part)
    if not parts:
        raise ValueError("the dataset is empty")
    shapes = {p.shape[1:] for p in parts}
    if len(shapes) > 1:
        raise ValueError(f"dataset elements have different shapes {sorted(shapes)}; resize them")
    return np.concatenate(parts)


def _as_rank(array: np.ndarray, shape: tuple) -> np.ndarray:
    """One sample or a batch -> a batch of the model's rank (grey gets its channel axis)."""
    rank = len(shape)
    if rank == 4 and shape[-1] == 1 and array.ndim in (2, 3) and array.shape[-1] != 1:
        if array.ndim == 3 and array.shape[:2] == shape[1:3] != array.shape[1:]:
            raise ValueError(
                f"inputs of shape {array.shape} look like one image with {array.shape[-1]} "
                f"channels, but the model expects {shape} (1 channel): convert to grey, e.g. "
                "x.mean(axis=-1)"
            )
        array = array[..., None]  # grey (H, W) or (N, H, W) for a one-channel model
    if array.ndim == rank - 1:
        return array[None]
    if array.ndim == rank:
        return array
    raise ValueError(
        f"inputs of shape {array.shape} do not fit the model input {shape}: give one "
        f"sample of rank {rank - 1} or a batch of rank {rank}"
    )


def as_batch(inputs: Any, shape: tuple) -> np.ndarray:
    """Returns inputs as a float32 batch matching the model's input ``shape``.

    Accepts numpy arrays or tensors of any float or integer dtype (cast, never rescaled: a
    uint8 image stays in 0..255), a single sample or a batch, a `tf.data.Dataset` (of samples,
    batches, or ``(x, y)`` pairs), and grey images as ``(H, W)`` or ``(H, W, 1)`` for models
    with one channel (a rank-3 array whose last axis is not 1 is then a batch of grey images).

    Raises:
      TypeError: for non-numeric data. ValueError: wrong rank, channels or size, NaN or Inf.
    """
    if isinstance(inputs, tf.data.Dataset):
        array = _collect_dataset(inputs, shape)
    elif isinstance(inputs, (tf.Tensor, tf.Variable)):
        array = inputs.numpy()
    else:
        array = np.asarray(inputs)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"inputs must be numeric images, got dtype {array.dtype}")
    if not shape:  # a subclassed model that was never called: any shape goes
        batch = array
    else:
        batch = _as_rank(array, shape)
        rank = len(shape)
        expected = shape[1:]
        got = batch.shape[1:]
        for axis, (want, have) in enumerate(zip(expected, got)):
            if want is not None and want != have:
                what = "channels" if axis == len(expected) - 1 and rank == 4 else f"axis {axis + 1}"
                fix = (
                    " (convert grey to RGB with np.repeat(x, 3, axis=-1))"
                    if what == "channels"
                    else " (resize with tf.image.resize(x, size))"
                )
                raise ValueError(
                    f"inputs have shape {batch.shape} but the model expects {shape}: "
                    f"{what} differ ({have} vs {want}){fix}"
                )
    if batch.shape[0] == 0:
        raise ValueError("inputs are empty")
    batch = batch.astype(np.float32)  # always a copy: the caller's array is never touched
    finite = np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
    if not finite.all():
        bad = np.flatnonzero(~finite)[:10].tolist()
        raise ValueError(f"inputs contain NaN or Inf (samples {bad}); clean them first")
    return batch
