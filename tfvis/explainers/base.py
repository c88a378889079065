"""The explainer contract every method builds on.

A method subclasses `Explainer` and writes one pure-TF function, `explain_batch`, which gets a
chunk of the explained input and a ``score`` function (outputs -> one score per sample) and
returns the raw map. Everything else lives here, once: input checks (multi-input models too),
target resolution, the logits bypass, the compiled step run by the one chunk loop
(`tfvis.engine.runner`), and assembling and normalising the `Explanation`.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from types import MappingProxyType
from typing import Any, Callable, ClassVar, Iterator, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfvis.checks import positive_int
from tfvis.engine import runner
from tfvis.engine.compiled import compile_step
from tfvis.engine.imageops import normalize
from tfvis.explanation import Explanation
from tfvis.inputs import Source, as_source, input_shape, model_inputs, resolve_input
from tfvis.surgery import graph_of, layer_table, logits_replacements, resolve_output, run_graph
from tfvis.surgery.layers import require_built, saved_model_layers
from tfvis.targets import Targets, TargetsLike, Task, class_scores, resolve_targets

ScoreFn = Callable[[Any], tuple]

#: Compiled steps kept for callable targets (each function object compiles its own step).
MAX_CALLABLE_STEPS = 8


def fold_channels(raw: np.ndarray, combine: np.ufunc, each: Callable = lambda p: p) -> np.ndarray:
    """``combine``-reduces ``each(raw[..., c])`` over the last (channel) axis, plane by plane.

    Equal to ``combine.reduce(each(raw), axis=-1)``, but numpy reduces a short last axis one
    element at a time: on a batch of 224x224 RGB gradients this is ~40x faster (0.5 ms
    instead of 20 ms, 1% of a ResNet50 saliency call).
    """
    out = np.array(each(raw[..., 0]), dtype=raw.dtype)
    for c in range(1, raw.shape[-1]):
        combine(out, each(raw[..., c]), out=out)
    return out


def _check_batch_size(batch_size: Any) -> int:
    return positive_int("batch_size", batch_size)


def _starts(chunks: Iterator[tuple[list, int]]) -> Iterator[tuple[int, tuple[list, int]]]:
    start = 0
    for chunk in chunks:
        yield start, chunk
        start += chunk[1]


class Explainer:
    """Base class of all explainers.

    Args:
      model: a Keras 3 model (functional, Sequential, nested; subclassed models only for
        methods that need no layer).
      output: for multi-output models, the output (name or index) that class targets refer
        to. Without it, a multi-output model needs callable targets.
      logits: explain the pre-activation score when an output ends in softmax or sigmoid
        (separate layer or fused), computed without modifying the model. False keeps the
        activated output. A model holding a SavedModel (`keras.layers.TFSMLayer`) is
        explained as it is, with a warning: a softmax inside the SavedModel's graph cannot
        be bypassed. Each `Explanation` records in ``extras["logits"]`` (``e.logits``) whether
        its scores are known to be pre-activation values: False where the activated output
        is kept (``logits=False`` on a softmax/sigmoid output) or where the model hides its
        graph (a SavedModel, a subclassed model), so a final activation could not be
        bypassed.
      batch_size: default number of samples per compiled chunk.
      verbose: 1 shows a progress bar when work spans several chunks; 0 is quiet.
      input: for multi-input models, the explained input (name or index); default: the only
        image-shaped (rank-4) input. `explain` then takes a list (model order) or a dict (by
        input name) of arrays, the other inputs being held fixed.

    Raises:
      TypeError: ``model`` is not a Keras model.
      ValueError: an unbuilt Sequential model (tfvis never builds it, which would change it),
        or an unknown ``output`` or ``input``.
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    #: True when the method needs the model's inner layers (layer activations or ReLU gates),
    #: so it cannot explain an opaque model such as a SavedModel.
    needs_internals: ClassVar[bool] = False
    #: Options for a quick look (demo gallery, callbacks): cheap settings of this method.
    quick_options: ClassVar[Mapping[str, Any]] = MappingProxyType({})

    def __init__(
        self,
        model: keras.Model,
        *,
        output: int | str | None = None,
        logits: bool = True,
        batch_size: int = 32,
        verbose: int = 1,
        input: int | str | None = None,
    ) -> None:
        if not isinstance(model, keras.Model):
            raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
        require_built(model)
        self.model = model
        self.inputs = model_inputs(model)
        self.input_index = resolve_input(model, input)
        self.input_shape = input_shape(model, self.input_index if self.inputs else None)
        self.output_index = resolve_output(model, output)
        self.logits = bool(logits)
        self.replace = logits_replacements(model) if logits else {}
        if self.replace:
            bypassed = [i.path for i in layer_table(model) if id(i.layer) in self.replace]
            logging.getLogger("tfvis").info(
                "%s explains logits: the softmax/sigmoid of %s is bypassed (logits=False keeps "
                "the activated outputs)", type(self).__name__, ", ".join(bypassed))
        #: TFSMLayers of the model: a final softmax inside one is explained as it is.
        self.saved_models = saved_model_layers(model)
        if self.logits and self.saved_models:
            warnings.warn(
                f"{type(self).__name__}: this model's outputs are explained as they are; a "
                "final softmax inside a SavedModel cannot be bypassed (TFSMLayer "
                f"{', '.join(map(repr, self.saved_models))}). Scores and maps are of the "
                "SavedModel's outputs, which may be probabilities, not logits.",
                stacklevel=3,
            )
        #: Whether explained scores are pre-activation values (``Explanation.extras["logits"]``).
        self.logits_used = not self.saved_models and graph_of(model) is not None and (
            bool(self.replace) or not logits_replacements(model))
        self.batch_size = _check_batch_size(batch_size)
        self.verbose = verbose
        self.layer: str | None = None
        self._steps: dict[tuple, Any] = {}  # (kind, target kind) -> tf.function
        self._callables: list[Callable] = []  # target functions with steps, least recent first
        self._warned_callables = False
        self._others: tuple = ()  # the other inputs of the chunk being traced (multi-input)

    # -- what subclasses write -------------------------------------------------------------

    def explain_batch(self, x: tf.Tensor, score: ScoreFn) -> tuple:
        """Computes one chunk; pure TF, traced once.

        Args:
          x: a float32 batch.
          score: ``outputs -> (scores (N,), class_weights (N, K) or None)``.

        Returns:
          ``(raw, scores, class_weights)``, optionally followed by extra per-sample tensors,
          which are chunked like ``raw`` and passed on to ``_assemble`` (a method returning
          them overrides ``_assemble`` to use them).
        """
        raise NotImplementedError

    # -- shared machinery --------------------------------------------------------------------

    def forward(self, x, hooks=None, others: tuple | None = None):
        """The model's outputs on ``x`` (logits when bypassing), with optional layer hooks.

        For a multi-input model ``x`` is the explained input; the other inputs are ``others``
        (default: those of the chunk being computed), repeated when ``x`` stacks several
        copies of the chunk (``k * N`` rows, copy-major).
        """
        others = self._others if others is None else others
        if not others:
            return run_graph(self.model, x, hooks=hooks, replace=self.replace)
        copies = tf.shape(x)[0] // tf.shape(others[0])[0]
        others = [tf.tile(o, tf.concat([[copies], tf.ones([tf.rank(o) - 1], tf.int32)], 0))
                  for o in others]
        inputs = others[: self.input_index] + [x] + others[self.input_index:]
        return run_graph(self.model, inputs, hooks=hooks, replace=self.replace)

    @contextlib.contextmanager
    def _feeding(self, others: tuple) -> Iterator[None]:
        """Makes `forward` (also of the explainers this one is built on) use ``others`` as the
        other inputs while a step is traced."""
        with contextlib.ExitStack() as stack:
            for part in self.parts():
                stack.enter_context(part._feeding(others))
            self._others = tuple(others)
            try:
                yield
            finally:
                self._others = ()

    def parts(self) -> list["Explainer"]:
        """The explainers whose computations this one calls (SmoothGrad's wrapped one, ...)."""
        return []

    def _output_shape(self, sample: list[np.ndarray] | None = None) -> tuple | None:
        """The explained output's shape (None for a multi-output model without ``output=``)."""
        if self.output_index is None:
            return None
        graph = graph_of(self.model)
        if graph is not None:
            return tuple(graph.outputs[self.output_index].shape)
        x = [tf.constant(a[:1]) for a in sample]
        others = tuple(x[: self.input_index] + x[self.input_index + 1:])
        outputs = self.forward(x[self.input_index], others=others)
        return tuple(keras.tree.flatten(outputs)[0].shape)

    def _num_classes(self, x: np.ndarray | None = None) -> int | None:
        shape = self._output_shape(None if x is None else [x])
        return shape[-1] if shape is not None and len(shape) == 2 else None

    def resolve(self, source: Source, targets: TargetsLike) -> Targets:
        """Resolves ``targets`` for the samples of ``source``."""
        probe = None if graph_of(self.model) is not None else source.first()
        shape = self._output_shape(probe)
        classes = shape[-1] if shape is not None and len(shape) == 2 else None
        return resolve_targets(targets, source.n, classes, shape)

    def _select(self, outputs):
        # Flattened like the graph's outputs (dicts by sorted key), so output_index matches.
        return keras.tree.flatten(outputs)[self.output_index]

    def target_scores(self, fn: Any, outputs, weights, auto, params: tuple = ()) -> tuple:
        """Compiled-side scores of the targets.

        Args:
          fn: the target kind (`Targets.kind`): None for classes, a callable, a `Task` type.
          outputs: the model's outputs.
          weights, auto, params: the chunk's rows of `Targets.arrays`.

        Returns:
          ``(scores (N,), class_weights)``: for class targets the ``(N, K)`` weights with
          ``auto`` rows set to the top-1 class; None for a callable or a task.
        """
        if fn is None:
            return class_scores(self._select(outputs), weights, auto)
        if isinstance(fn, type) and issubclass(fn, Task):
            return tf.cast(fn.score(self._select(outputs), *params), tf.float32), None
        scores = tf.cast(fn(outputs), tf.float32)
        if scores.shape.rank != 1:
            raise ValueError(
                "a callable target must return one score per sample, shape (N,), got "
                f"shape {scores.shape}; e.g. lambda out: out[:, 3]"
            )
        return scores, None

    def _cached_step(self, kind: str, fn: Callable | None, make: Callable[[], Any]):
        """The compiled step ``kind`` for target function ``fn``, made by ``make()`` once.

        Steps are per target *kind*: one for class targets (``fn`` None), one per callable.
        Only the `MAX_CALLABLE_STEPS` most recently used callables keep theirs, so a loop
        that passes a fresh lambda each call cannot grow memory without bound (it warns once
        instead: every new function object pays a compilation).
        """
        key = (kind, fn)
        if key not in self._steps:
            self._steps[key] = make()
        if fn is not None:
            self._callables = [f for f in self._callables if f is not fn] + [fn]
            if len(self._callables) > MAX_CALLABLE_STEPS:
                old = self._callables.pop(0)
                for stale in [k for k in self._steps if k[1] is old]:
                    del self._steps[stale]
                if not self._warned_callables:
                    self._warned_callables = True
                    warnings.warn(
                        f"{self.title}: more than {MAX_CALLABLE_STEPS} different callable "
                        "targets were used, and each new function object compiles a new "
                        "step; define the target function once and pass the same object "
                        "each call",
                        stacklevel=4,
                    )
        return self._steps[key]

    def split(self, args: tuple) -> tuple[Any, tuple, tuple]:
        """A chunk's arguments ``(*inputs, weights, auto, *params)`` -> ``(x, others, targets)``
        where ``targets`` is ``(weights, auto, *params)``."""
        count = max(len(self.inputs), 1)
        inputs, targets = list(args[:count]), tuple(args[count:])
        x = inputs.pop(self.input_index)
        return x, tuple(inputs), targets

    def _step(self, fn: Any):
        def step(*args):
            x, others, (weights, auto, *params) = self.split(args)
            with self._feeding(others):
                raw, scores, used, *extra = self.explain_batch(
                    x, lambda o: self.target_scores(fn, o, weights, auto, tuple(params))
                )
            if used is None:
                used = weights
            return (tf.cast(raw, tf.float32), scores, used, *extra)

        return self._cached_step("explain", fn, lambda: compile_step(step))

    def traces(self) -> int:
        """How many times this explainer's compiled steps were traced (for diagnostics)."""
        return sum(s.experimental_get_tracing_count() for s in self._steps.values())

    def explain(
        self, inputs: Any, targets: TargetsLike = None, batch_size: int | None = None
    ) -> Explanation:
        """Explains ``inputs`` for ``targets``.

        Args:
          inputs: one sample or a batch (numpy, tensor, a `tf.data.Dataset` or a generator,
            streamed chunk by chunk), any float or integer dtype (cast to float32, never
            rescaled), grey or RGB, any size the model accepts. For a multi-input model, a
            list (model order) or dict (by input name) with one array per input.
          targets: None (top-1 class per sample), an int, one int per sample, an ``(N, K)``
            one-hot or soft weight array, a callable ``outputs -> (N,)`` scores, or a task
            target (`tfvis.targets.Regression`, `tfvis.targets.Segmentation`).
          batch_size: samples per compiled chunk (default: the explainer's ``batch_size``).

        Returns:
          An `Explanation`, whose ``extras["logits"]`` says whether the scores are
          pre-activation values (see the class docstring).

        Retracing: work runs in chunks of ``min(batch_size, number of samples)`` rows (the
        last chunk padded to that size), through one compiled step per target kind (class
        targets; each callable; each task type). A step traces once for its first chunk
        shape; the first *different* chunk shape traces one shape-relaxed version (batch
        axis None) that serves every later size. So a call with a new batch size or sample
        count retraces at most once per new padded chunk shape, and never more than twice per
        target kind in all; e.g. 5, 3 then 7 samples with ``batch_size=4`` run chunks of 4,
        3 and 4 rows and trace twice. New class ids never retrace. `traces` counts them.
        """
        source, resolved, chunks = self._start(inputs, targets, batch_size)
        raw, scores, used, *extra = runner.collect(chunks)
        resolved.check_count(source.n)
        return self._assemble(raw, scores, used, resolved, *extra)

    def _start(self, inputs: Any, targets: TargetsLike, batch_size: int | None):
        source = as_source(inputs, self.inputs, self.input_index)
        size = _check_batch_size(self.batch_size if batch_size is None else batch_size)
        resolved = self.resolve(source, targets)
        chunks = runner.run(self._step(resolved.kind), source, resolved.rows,
                            batch_size=size, verbose=self.verbose)
        return source, resolved, chunks

    def stream(
        self, inputs: Any, targets: TargetsLike = None, batch_size: int | None = None
    ) -> Iterator[Explanation]:
        """Explains ``inputs`` chunk by chunk, yielding one `Explanation` per chunk.

        For datasets larger than memory: only one chunk of inputs and results exists at a
        time (the caller decides what to keep). Same arguments as `explain`; the chunks hold
        ``batch_size`` samples (the last one fewer) and concatenate to `explain`'s result.
        """
        if type(self).explain is not Explainer.explain:  # a method with its own explain
            source = as_source(inputs, self.inputs, self.input_index)
            size = _check_batch_size(self.batch_size if batch_size is None else batch_size)
            shared = self.resolve(source, targets) if targets is not None else None
            for start, (batch, count) in _starts(source.chunks(size)):
                rows = [b[:count] for b in batch]
                chunk_targets = targets
                if shared is not None and not shared.shared and shared.task is None and \
                        shared.fn is None:
                    chunk_targets = shared.weights[start:start + count]
                yield self.explain(rows if len(rows) > 1 else rows[0], chunk_targets, size)
            return
        source, resolved, chunks = self._start(inputs, targets, batch_size)
        for _, _, outputs in chunks:
            raw, scores, used, *extra = (o.numpy() for o in outputs)
            yield self._assemble(raw, scores, used, resolved, *extra)
        resolved.check_count(source.n)

    __call__ = explain

    def _assemble(self, raw, scores, used, resolved: Targets) -> Explanation:
        if not np.all(np.isfinite(raw)):
            bad = np.flatnonzero(~np.isfinite(raw.reshape(len(raw), -1)).all(axis=1))
            raise FloatingPointError(
                f"{self.title or type(self).__name__} produced NaN or Inf for samples "
                f"{bad[:10].tolist()}: the model's outputs or gradients are not finite there"
            )
        maps = self.to_maps(raw)
        vectors = maps.ndim == 2  # non-image models: one vector per sample
        if vectors:
            maps = maps[:, None, :]
        # Min-max is scale-free; dividing by each map's peak first makes the constant-map test
        # relative, so small but real maps (e.g. 1e-11 on an untrained net) are not zeroed.
        peak = np.abs(maps).max(axis=(-2, -1), keepdims=True)
        maps = normalize(maps / np.where(peak > 0, peak, 1), warn_constant=True)
        if vectors:
            maps = maps[:, 0, :]
        if resolved.task is not None:
            targets = resolved.task
        elif resolved.fn is not None:
            targets = resolved.fn
        elif resolved.soft:
            targets = used
        else:
            targets = used.argmax(axis=-1)
        return Explanation(maps, raw, targets, scores.astype(np.float32), self.name, self.layer,
                           extras={"logits": self.logits_used})

    def to_maps(self, raw: np.ndarray) -> np.ndarray:
        """Grey maps from raw values: pixel-space ``(N, H, W, C)`` -> max |.| over channels."""
        return fold_channels(raw, np.maximum, np.abs) if raw.ndim == 4 else raw

    def __repr__(self) -> str:
        layer = f", layer={self.layer!r}" if self.layer else ""
        return f"{type(self).__name__}(model={self.model.name!r}{layer})"
