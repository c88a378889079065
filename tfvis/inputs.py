"""Turn what users pass as inputs into float batches the model accepts, streamed in chunks.

One explained input (the images) and, for multi-input models, the other inputs given as fixed
arrays alongside it. Arrays and tensors are checked and cast once; a `tf.data.Dataset` or a
generator is read element by element (prefetched) and never concatenated up front.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class InputSpec:
    """One model input: its name and shape with the batch axis, e.g. ``(None, 64, 64, 3)``."""

    name: str
    shape: tuple


def model_inputs(model) -> list[InputSpec]:
    """The model's inputs in call order ([] for a subclassed model that was never called)."""
    specs = []
    for i, tensor in enumerate(getattr(model, "inputs", None) or ()):
        history = getattr(tensor, "_keras_history", None)
        name = history[0].name if history is not None else f"input_{i}"
        specs.append(InputSpec(name, tuple(tensor.shape)))
    return specs


def _listing(specs: list[InputSpec]) -> str:
    return ", ".join(f"{i}: {s.name!r} {s.shape}" for i, s in enumerate(specs))


def resolve_input(model, input: int | str | None = None) -> int:
    """Index of the explained input.

    Args:
      model: a Keras model.
      input: an input name or index; None picks the only input, else the only image-shaped
        (rank-4) input.

    Raises:
      ValueError: unknown name or index, or several candidates for None (inputs listed).
    """
    specs = model_inputs(model)
    if not specs:
        if input not in (None, 0):
            raise ValueError(f"model {model.name!r} has no known inputs; leave input=None")
        return 0
    if input is None:
        if len(specs) == 1:
            return 0
        images = [i for i, s in enumerate(specs) if len(s.shape) == 4]
        if len(images) == 1:
            return images[0]
        raise ValueError(
            f"model {model.name!r} has {len(specs)} inputs and "
            f"{'several' if images else 'no'} image-shaped (rank-4) ones; pass input=<name or "
            f"index> to the explainer. Inputs: {_listing(specs)}"
        )
    names = [s.name for s in specs]
    if isinstance(input, str):
        if input not in names:
            raise ValueError(f"model {model.name!r} has no input {input!r}; inputs: "
                             f"{_listing(specs)}")
        return names.index(input)
    if isinstance(input, bool) or not isinstance(input, (int, np.integer)) or not (
        -len(specs) <= input < len(specs)
    ):
        raise ValueError(f"input must be an input name or an index below {len(specs)}, got "
                         f"{input!r}; inputs: {_listing(specs)}")
    return int(input) % len(specs)


def input_shape(model, index: int | None = None) -> tuple:
    """The shape (with the batch axis) of input ``index``; None: the model's only input."""
    specs = model_inputs(model)
    if not specs:
        return ()  # subclassed model that was never called: any shape goes
    if index is None:
        if len(specs) != 1:
            raise ValueError(
                f"model {model.name!r} has {len(specs)} inputs; say which one is explained with "
                f"input=<name or index>. Inputs: {_listing(specs)}"
            )
        index = 0
    return specs[index].shape


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


def _numeric(inputs: Any) -> np.ndarray:
    if isinstance(inputs, (tf.Tensor, tf.Variable)):
        array = inputs.numpy()
    else:
        array = np.asarray(inputs)
    if not (np.issubdtype(array.dtype, np.floating) or np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"inputs must be numeric images, got dtype {array.dtype}")
    return array


def _checked(array: np.ndarray, shape: tuple, what: str = "inputs", first: int = 0) -> np.ndarray:
    """A float32 batch of ``array`` for input ``shape`` (always a copy), or a clear error."""
    array = _numeric(array)
    if not shape:  # a subclassed model that was never called: any shape goes
        batch = array
    else:
        batch = _as_rank(array, shape)
        rank = len(shape)
        for axis, (want, have) in enumerate(zip(shape[1:], batch.shape[1:])):
            if want is not None and want != have:
                channels = axis == rank - 2 and rank == 4
                name = "channels" if channels else f"axis {axis + 1}"
                fix = (
                    " (convert grey to RGB with np.repeat(x, 3, axis=-1))"
                    if channels
                    else " (resize with tf.image.resize(x, size))"
                )
                raise ValueError(
                    f"{what} have shape {batch.shape} but the model expects {shape}: "
                    f"{name} differ ({have} vs {want}){fix}"
                )
    if batch.shape[0] == 0:
        raise ValueError(f"{what} are empty")
    batch = batch.astype(np.float32)  # always a copy: the caller's array is never touched
    finite = np.isfinite(batch.reshape(len(batch), -1)).all(axis=1)
    if not finite.all():
        bad = (np.flatnonzero(~finite)[:10] + first).tolist()
        raise ValueError(f"{what} contain NaN or Inf (samples {bad}); clean them first")
    return batch


def as_batch(inputs: Any, shape: tuple) -> np.ndarray:
    """Returns inputs as a float32 batch matching the model's input ``shape``.

    Accepts numpy arrays or tensors of any float or integer dtype (cast, never rescaled: a
    uint8 image stays in 0..255), a single sample or a batch, a `tf.data.Dataset` (of samples,
    batches, or ``(x, y)`` pairs), and grey images as ``(H, W)`` or ``(H, W, 1)`` for models
    with one channel (a rank-3 array whose last axis is not 1 is then a batch of grey images).

    Raises:
      TypeError: for non-numeric data. ValueError: wrong rank, channels or size, NaN or Inf.
    """
    source = as_source(inputs, [InputSpec("input", shape)], 0)
    return source.arrays()[0]


def _pad(batch: np.ndarray, size: int) -> np.ndarray:
    """``batch`` with its last row repeated up to ``size`` rows (fixed chunk shapes)."""
    if len(batch) == size:
        return batch
    return np.concatenate([batch, np.repeat(batch[-1:], size - len(batch), axis=0)])


class Source:
    """The samples to explain: the explained input and the other inputs, in chunks.

    Built by `as_source`. ``n`` is the number of samples, or None until a streamed dataset
    has been read to its end.
    """

    def __init__(self, specs: list[InputSpec], index: int, arrays=None, stream=None) -> None:
        self.specs = specs
        self.index = index
        self._arrays = arrays  # list of float32 batches, one per model input
        self._stream = stream  # an iterable of raw elements (dataset or generator)
        self.n = len(arrays[0]) if arrays is not None else None
        self._row_shapes: dict[int, tuple] = {}  # per input, the sample shape of a stream

    @property
    def streamed(self) -> bool:
        """True for a dataset or generator read chunk by chunk."""
        return self._arrays is None

    def arrays(self) -> list[np.ndarray]:
        """Every input as one float32 batch (reads a stream to its end, all in memory)."""
        if self._arrays is None:
            parts = [batch for batch, _ in self.chunks(None)]
            if not parts:
                raise ValueError("the dataset is empty")
            self._arrays = [np.concatenate(p) for p in zip(*parts)]
            self.n = len(self._arrays[0])
        return self._arrays

    def first(self) -> list[np.ndarray]:
        """One sample of every input (for shape probes). A stream's first element is kept
        and read again by `chunks`, so probing never loses samples of a one-shot iterator."""
        if self._arrays is not None:
            return [a[:1] for a in self._arrays]
        stream = iter(self._stream)
        for element in stream:
            self._stream = itertools.chain([element], stream)
            return [a[:1] for a in self._element(element, 0)]
        raise ValueError("the dataset is empty")

    def chunks(self, size: int | None) -> Iterator[tuple[list[np.ndarray], int]]:
        """Yields ``(batch, count)``: every input as a ``size``-row float32 chunk (the last one
        padded by repeating its last row) and the number of real rows. ``size=None`` yields
        the elements as they come (no padding)."""
        if self._arrays is not None:
            n = self.n
            step = n if size is None else size
            for start in range(0, n, step):
                stop = min(start + step, n)
                batch = [a[start:stop] for a in self._arrays]
                yield ([_pad(b, step) for b in batch] if size else batch), stop - start
            return
        pending: list[list[np.ndarray]] = []
        rows = seen = 0
        for element in self._stream:
            batch = self._element(element, seen)
            seen += len(batch[0])
            if size is None:
                yield batch, len(batch[0])
                continue
            pending.append(batch)
            rows += len(batch[0])
            while rows >= size:
                joined = [np.concatenate(p) for p in zip(*pending)]
                yield [j[:size] for j in joined], size
                rest = [j[size:] for j in joined]
                pending, rows = ([rest] if len(rest[0]) else []), rows - size
        if rows:
            joined = [np.concatenate(p) for p in zip(*pending)]
            yield [_pad(j, size) for j in joined], rows
        if not seen:
            raise ValueError("the dataset is empty")
        self.n = seen

    def _element(self, element: Any, first: int) -> list[np.ndarray]:
        specs = self.specs
        if isinstance(element, dict):
            missing = [s.name for s in specs if s.name not in element]
            if len(specs) == 1 or missing:
                raise TypeError(
                    "dataset elements that are dicts must map every model input name to an "
                    f"array (missing {missing}); for a single-input model map them to images"
                )
            element = [element[s.name] for s in specs]
        elif isinstance(element, (tuple, list)):
            if len(specs) == 1 or isinstance(element[0], (tuple, list, dict)):
                element = element[0]  # (x, y) pairs: the labels are not used here
                return self._element(element, first) if len(specs) > 1 else [
                    self._check(element, 0, first)]
            if len(element) < len(specs):
                raise ValueError(f"dataset elements have {len(element)} parts; the model has "
                                 f"{len(specs)} inputs ({_listing(specs)})")
            element = list(element[: len(specs)])
        else:
            if len(specs) != 1:
                raise TypeError(f"the model has {len(specs)} inputs: dataset elements must be "
                                "a tuple or a dict of them")
            element = [element]
        return [self._check(e, i, first) for i, e in enumerate(element)]

    def _check(self, element: Any, i: int, first: int) -> np.ndarray:
        shape = self.specs[i].shape
        batch = _checked(element, shape, first=first)
        known = self._row_shapes.setdefault(i, batch.shape[1:])
        if known != batch.shape[1:]:
            raise ValueError(
                f"dataset elements have different shapes {sorted({known, batch.shape[1:]})}; "
                "resize them"
            )
        return batch


def as_source(inputs: Any, specs: list[InputSpec], index: int) -> Source:
    """What users pass -> a `Source` of float32 batches.

    Args:
      inputs: for a single-input model, an array or tensor (one sample or a batch), a
        `tf.data.Dataset` (of samples, batches or ``(x, y)`` pairs) or a generator of them.
        For a multi-input model: a list or tuple with one array per input (model order), or a
        dict by input name; a dataset then yields such tuples or dicts.
      specs: the model's inputs (`model_inputs`); ``[]`` for a never-called subclassed model.
      index: the explained input.

    Raises:
      TypeError / ValueError: naming what is wrong and how to fix it.
    """
    specs = specs or [InputSpec("input", ())]
    if isinstance(inputs, tf.data.Dataset):
        return Source(specs, index, stream=inputs.prefetch(tf.data.AUTOTUNE).as_numpy_iterator())
    if hasattr(inputs, "__next__") and not isinstance(inputs, np.ndarray):
        return Source(specs, index, stream=inputs)
    if len(specs) > 1:
        if isinstance(inputs, dict):
            unknown = sorted(set(inputs) - {s.name for s in specs})
            missing = [s.name for s in specs if s.name not in inputs]
            if unknown or missing:
                raise ValueError(f"inputs by name: unknown {unknown}, missing {missing}; the "
                                 f"model's inputs are {_listing(specs)}")
            parts = [inputs[s.name] for s in specs]
        elif isinstance(inputs, (list, tuple)) and len(inputs) == len(specs):
            parts = list(inputs)
        else:
            raise ValueError(
                f"the model has {len(specs)} inputs ({_listing(specs)}): pass a list with one "
                "array per input, in this order, or a dict by input name"
            )
        arrays = [_checked(p, s.shape, f"input {s.name!r}") for p, s in zip(parts, specs)]
        counts = {len(a) for a in arrays}
        if len(counts) > 1:
            raise ValueError(f"the inputs have different numbers of samples "
                             f"{[len(a) for a in arrays]}; give one row per sample for each")
    else:
        arrays = [_checked(inputs, specs[0].shape)]
    return Source(specs, index, arrays=arrays)
