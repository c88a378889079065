"""The one chunk loop: every explainer's compiled step runs through `run`.

A `tfvis.inputs.Source` yields fixed-size chunks (the last one padded, so the step never
retraces on a smaller batch); per-sample host arrays (class weights, flags) are sliced and
padded alongside; each chunk's outputs stay on the device, trimmed of padding, and are handed
to the caller as they come (`run` is a generator), so a streamed dataset is explained with
memory bounded by one chunk plus what the caller keeps. `collect` concatenates them on the
device and copies to the host once per call.

``strategy`` is the seam for `tf.distribute`: with a strategy each chunk is split evenly over
its replicas (the chunk is padded to a multiple of their number) and the results gathered,
all in one compiled call per chunk (`Distributed`).
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine.compiled import compile_step
from tfvis.inputs import Source, _pad

#: ``(*inputs of the chunk, *per-sample chunks, *constants) -> tuple of (B, ...) tensors``.
Step = Callable[..., tuple]


class Distributed:
    """``step`` over the replicas of ``strategy``, compiled: one `tf.function` runs
    ``strategy.run(step)`` and gathers the replicas' outputs, so a chunk costs one call from
    Python and traces once for all chunks of one shape (`experimental_get_tracing_count`).

    Callers that run many chunk loops (one per shard) keep one `Distributed` per step and
    strategy (`tfvis.distributed` keeps it in the explainer's cache of compiled steps).
    """

    def __init__(self, step: Step, strategy: Any) -> None:
        self.step = step
        self.strategy = strategy
        self.replicas = int(strategy.num_replicas_in_sync)

        def replicated(*values):
            outputs = strategy.run(step, args=values)
            return tuple(strategy.gather(o, axis=0) for o in outputs)

        self._compiled = compile_step(replicated)

    def _values(self, args: list) -> tuple:
        """Per-replica slices of the chunk's per-sample arguments (others are passed whole),
        placed on each replica's device."""
        rows = args[0].shape[0]
        per = rows // self.replicas

        def split(context):
            i = context.replica_id_in_sync_group
            return tuple(a[i * per:(i + 1) * per] if isinstance(a, tf.Tensor) and a.shape.rank
                         and a.shape[0] == rows else a for a in args)

        return self.strategy.experimental_distribute_values_from_function(split)

    def __call__(self, *args) -> tuple:
        with self.strategy.scope():
            return self._compiled(*self._values(list(args)))

    def experimental_get_tracing_count(self) -> int:
        """Traces of the compiled distributed step (as a `tf.function` reports them)."""
        return self._compiled.experimental_get_tracing_count()


def distribute(step: Step, strategy: Any) -> Distributed:
    """``step`` compiled over the replicas of ``strategy`` (see `Distributed`); a `Distributed`
    step is returned as it is (``strategy`` None or its own)."""
    if not isinstance(step, Distributed):
        return Distributed(step, strategy)
    if strategy is not None and strategy is not step.strategy:
        raise ValueError("this Distributed step was compiled for another strategy; pass "
                         "strategy=None or the step's own strategy")
    return step


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
        replicas share each chunk (``step`` is compiled with it by `distribute`; pass a
        `Distributed` step to reuse one compilation over several calls).

    Yields:
      ``(start, count, outputs)``: the first sample index of the chunk, its number of real
      samples, and the step's outputs trimmed to them (device tensors).
    """
    size = batch_size if source.n is None else min(batch_size, source.n)
    if isinstance(step, Distributed) or strategy is not None:
        step = distribute(step, strategy)
        size = -(-size // step.replicas) * step.replicas
    chunks = None if source.n is None else -(-source.n // size)
    bar = None
    if verbose and chunks != 1:
        bar = keras.utils.Progbar(chunks, unit_name="chunk")
    start = 0
    for done, (batch, count) in enumerate(source.chunks(size), 1):
        extra = [] if rows is None else [_pad(np.asarray(r), size)
                                          for r in rows(start, start + count)]
        args = [tf.convert_to_tensor(a) for a in (*batch, *extra)] + list(const)
        outputs = step(*args)
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
