"""Activations and their gradients for several layers in one compiled pass.

Everything runs through `tfvis.surgery.capture` (only what the requested layers need runs,
nested models by path) and the one chunk loop `tfvis.engine.runner.run`, so arrays, tensors,
`tf.data` datasets and generators all work and nothing in the user's model changes.
"""

from __future__ import annotations

from typing import Any, Callable, Iterator, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine import runner
from tfvis.engine.compiled import compile_step
from tfvis.inputs import Source, as_source, model_inputs, resolve_input
from tfvis.surgery import capture, logits_replacements, resolve_layer
from tfvis.surgery.heads import resolve_output
from tfvis.surgery.layers import require_built, require_graph
from tfvis.targets import class_scores, resolve_targets

LayersLike = Any  # a layer spec (name, path, index, layer object) or a sequence of them


def resolve_layers(model: keras.Model, layers: LayersLike, what: str = "this function"
                   ) -> list[str]:
    """Layer paths for one spec or a sequence of specs (None: the last spatial layer)."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    require_built(model)
    require_graph(model, what)
    specs = [layers] if layers is None or isinstance(layers, (str, int, keras.layers.Layer)) \
        else list(layers)
    if not specs:
        raise ValueError("layers is empty: give at least one layer name or path")
    return list(dict.fromkeys(resolve_layer(model, spec).path for spec in specs))


def model_call(model: keras.Model, xs: Sequence[tf.Tensor]) -> Any:
    """The model inputs of a chunk in the form `capture` takes (one tensor or a list)."""
    return xs[0] if len(xs) == 1 else list(xs)


def layer_source(model: keras.Model, data: Any, input: int | str | None = None) -> Source:
    """``data`` (array, tensor, dataset, generator; multi-input lists) as a `Source`."""
    return as_source(data, model_inputs(model), resolve_input(model, input))


def activation_step(model: keras.Model, paths: list[str], reduce: Callable | None = None):
    """The compiled step ``(*model inputs) ->`` the activations of ``paths`` (float32), or
    ``reduce(*activations)`` of them (a tuple of ``(B, ...)`` tensors) when given. Keep it to
    run several sources through one trace."""
    count = max(len(model_inputs(model)), 1)

    def step(*args):
        acts = capture(model, model_call(model, args[:count]), paths)
        acts = [tf.cast(acts[p], tf.float32) for p in paths]
        return tuple(reduce(*acts)) if reduce is not None else tuple(acts)

    return compile_step(step)


def activation_chunks(model: keras.Model, source: Source, paths: list[str], *,
                      batch_size: int, reduce: Callable | None = None, verbose: int = 0,
                      step: Any = None) -> Iterator[tuple[int, int, tuple]]:
    """`runner.run` over ``source`` of `activation_step` (or of ``step``, one made by it)."""
    step = activation_step(model, paths, reduce) if step is None else step
    return runner.run(step, source, batch_size=batch_size, verbose=verbose)


def activations(
    model: keras.Model,
    images: Any,
    layers: LayersLike = None,
    *,
    batch_size: int = 32,
    input: int | str | None = None,
    verbose: int = 0,
) -> dict[str, np.ndarray]:
    """The outputs of several layers on ``images``, in one compiled pass per chunk.

    Example:
      >>> acts = tfvis.inspect.activations(model, x, ["conv1a", "base/conv5_block3_out"])
      >>> acts["conv1a"].shape   # (N, h, w, C)

    Args:
      model: a functional or Sequential model (nested models by ``"outer/inner"`` path).
      images: an array or tensor (one sample or a batch), a `tf.data.Dataset` (samples,
        batches, ``(x, y)`` pairs) or a generator; for a multi-input model a list / dict with
        one array per input.
      layers: one layer spec or a sequence (names, paths, indices, layer objects); None: the
        last spatial layer.
      batch_size: samples per compiled chunk.
      input: the image input of a multi-input model (only used to validate inputs).
      verbose: 1 shows a progress bar over chunks.

    Returns:
      ``{path: float32 array (N, ...)}`` in the order of ``layers``.
    """
    paths = resolve_layers(model, layers, "activations")
    source = layer_source(model, images, input)
    out = runner.collect(activation_chunks(model, source, paths, batch_size=batch_size,
                                           verbose=verbose))
    return dict(zip(paths, out))


def _score_fn(model: keras.Model, targets: Any, output: int | str | None, n: int | None):
    """``(resolved targets, outputs -> scores)`` for gradient targets (explainer forms)."""
    index = resolve_output(model, output)
    graph_outputs = getattr(model, "outputs", None) or []
    shape = tuple(graph_outputs[index].shape) if index is not None and graph_outputs else None
    classes = shape[-1] if shape is not None and len(shape) == 2 else None
    resolved = resolve_targets(targets, n, classes, shape)

    def select(outputs):
        return keras.tree.flatten(outputs)[index]

    def score(outputs, weights, auto, params):
        if resolved.task is not None:
            return tf.cast(resolved.task.score(select(outputs), *params), tf.float32)
        if resolved.fn is not None:
            scores = tf.cast(resolved.fn(outputs), tf.float32)
            if scores.shape.rank != 1:
                raise ValueError("a callable target must return one score per sample, shape "
                                 f"(N,), got shape {scores.shape}; e.g. lambda out: out[:, 3]")
            return scores
        return class_scores(select(outputs), weights, auto)[0]

    return resolved, score


def gradient_chunks(model: keras.Model, source: Source, paths: list[str], targets: Any, *,
                    output: int | str | None = None, logits: bool = True, batch_size: int,
                    reduce: Callable | None = None, verbose: int = 0):
    """`runner.run` of a step returning ``(*activations, *gradients)`` of ``paths`` (or
    ``reduce(acts, grads)``), and the resolved targets (check their count at the end)."""
    count = max(len(model_inputs(model)), 1)
    replace = logits_replacements(model) if logits else {}
    resolved, score = _score_fn(model, targets, output, source.n)

    def step(*args):
        xs, (weights, auto, *params) = args[:count], args[count:]
        watched: dict[str, tf.Tensor] = {}
        with tf.GradientTape(watch_accessed_variables=False) as tape:

            def hook_for(path):
                def hook(a):
                    tape.watch(a)
                    watched[path] = a
                    return a
                return hook

            hooks = {p: hook_for(p) for p in paths}
            _, outputs = capture(model, model_call(model, xs), paths, hooks=hooks,
                                 replace=replace, outputs=True)
            scores = score(outputs, weights, auto, tuple(params))
        grads = tape.gradient(scores, [watched[p] for p in paths],
                              unconnected_gradients=tf.UnconnectedGradients.ZERO)
        acts = [tf.cast(watched[p], tf.float32) for p in paths]
        grads = [tf.cast(g, tf.float32) for g in grads]
        if reduce is not None:
            return tuple(reduce(acts, grads))
        return (*acts, *grads)

    chunks = runner.run(compile_step(step), source, resolved.rows, batch_size=batch_size,
                        verbose=verbose)
    return resolved, chunks


def gradients(
    model: keras.Model,
    images: Any,
    layers: LayersLike = None,
    targets: Any = None,
    *,
    output: int | str | None = None,
    logits: bool = True,
    batch_size: int = 32,
    input: int | str | None = None,
    verbose: int = 0,
) -> dict[str, np.ndarray]:
    """d score / d activation for several layers, in one compiled pass per chunk.

    Args:
      model, images, layers, batch_size, input, verbose: as for `activations`.
      targets: what is differentiated, in the explainers' forms: None (top-1 class per
        sample), an int, one int per sample, ``(N, K)`` weights, a callable ``outputs ->
        (N,)`` or a task target (`tfvis.targets.Regression`, ...).
      output: which output class targets refer to (multi-output models).
      logits: differentiate the pre-softmax score (the model is not modified).

    Returns:
      ``{path: float32 array}`` shaped like the activations.
    """
    paths = resolve_layers(model, layers, "gradients")
    source = layer_source(model, images, input)
    resolved, chunks = gradient_chunks(model, source, paths, targets, output=output,
                                       logits=logits, batch_size=batch_size, verbose=verbose)
    out = runner.collect(chunks)
    resolved.check_count(source.n)
    return dict(zip(paths, out[len(paths):]))
