"""The one chunk loop: every explainer's compiled step runs through `run`.

A `tfvis.inputs.Source` yields fixed-size chunks (the last one padded, so the step never
retraces on a smaller batch); per-sample host arrays (class weights, flags) are sliced and
padded alongside; each chunk's outputs stay on the device, trimmed of padding, and are handed
to the caller as they come (`run` is a generator), so a streamed dataset is explained with
memory bounded by one chunk plus what the caller keeps. `collect` concatenates them on the
device and copies to the host once per call.

``strategy`` is the seam for `tf.distribute`: with a strategy each chunk is split evenly over
its replicas (the chunk is padded to a multiple of their number) and the results gathered.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvis.inputs import Source, _pad

#: ``(*inputs of the chunk, *per-sample chunks, *constants) -> tuple of (B, ...) tensors``.
Step = Callable[..., tuple]


def _distributed(step: Step, strategy: Any, args: list) -> tuple:
    replicas = strategy.num_replicas_in_sync

    def split(context):
        i = context.replica_id_in_sync_group
        return [tf.split(a, replicas)[i] if getattr(a, "shape", None) is not None
                and len(a.shape) and a.shape[0] == args[0].shape[0] else a for a in args]

    values = strategy.experimental_distribute_values_from_function(split)
    outputs = strategy.run(lambda *a: step(*a), args=tuple(values))
    return tuple(strategy.gather(o, axis=0) for o in outputs)


def run(
    step: Step,
    source: Source,
    rows: Callable[[int, int], Sequence[np.ndarray]] | None = None,
    *,
    batch_size: int,
    const: Sequence[Any] = (),
    verbose: int = 0,
    strategy: Any = None,
) -> Iterator[tuple[int, int, tuple]]:
    """Runs ``step`` over ``source`` in chunks of ``batch_size`` samples.

    Args:
      step: a compiled function of the chunk's model inputs (one tensor per input), then one
        tensor per array of ``rows``, then ``const``; returns a tuple of ``(B, ...)`` tensors.
      source: the samples (`tfvis.inputs.as_source`).
      rows: ``(start, stop) -> arrays``, rows ``start:stop`` of the per-sample arguments
        (e.g. class weights), padded like the inputs.
      batch_size: samples per chunk (smaller when the source is smaller).
      const: arguments passed unchanged to every chunk.
      verbose: 1 shows a progress bar when the work spans several chunks.
      strategy: None (run where TensorFlow places it), or a `tf.distribute.Strategy` whose
        replicas share each chunk.

    Yields:
      ``(start, count, outputs)``: the first sample index of the chunk, its number of real
      samples, and the step's outputs trimmed to them (device tensors).
    """
    size = batch_size if source.n is None else min(batch_size, source.n)
    if strategy is not None:
        replicas = strategy.num_replicas_in_sync
        size = -(-size // replicas) * replicas
    chunks = None if source.n is None else -(-source.n // size)
    bar = None
    if verbose and chunks != 1:
        bar = keras.utils.Progbar(chunks, unit_name="chunk")
    start = 0
    for done, (batch, count) in enumerate(source.chunks(size), 1):
        extra = [] if rows is None else [_pad(np.asarray(r), size)
                                          for r in rows(start, start + count)]
        args = [tf.convert_to_tensor(a) for a in (*batch, *extra)] + list(const)
        if strategy is None:
            outputs = step(*args)
        else:
            with strategy.scope():
                outputs = _distributed(step, strategy, args)
        if count < size:
            outputs = tuple(o[:count] for o in outputs)
        yield start, count, tuple(outputs)
        start += count
        if bar is not None:
            bar.update(done)


def collect(chunks: Iterator[tuple[int, int, tuple]]) -> list[np.ndarray]:
    """Concatenates `run`'s outputs on the device and copies them to the host once."""
    parts = [outputs for _, _, outputs in chunks]
    if len(parts) == 1:
        return [o.numpy() for o in parts[0]]
    return [tf.concat(p, axis=0).numpy() for p in zip(*parts)]
