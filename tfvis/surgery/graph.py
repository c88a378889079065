"""Run a Keras model's graph on tensors, reaching inside nested models.

This is the one piece of model surgery everything else stands on. Instead of building new
`keras.Model` objects (which adds nodes to the user's layers and breaks on nested models with
"Graph disconnected"), tfvis executes the user's own layer graph node by node, exactly as
`Functional.call` does, with three additions:

* nested functional / Sequential models are entered, so every inner layer has a path
  (``"resnet50/conv5_block3_out"``) and can be observed;
* ``hooks`` map a layer path to a function applied to that layer's output (used to watch
  and capture activations for a gradient tape);
* ``replace`` maps a layer (by identity) to a function called instead of it (used to bypass a
  final softmax, or to gate ReLUs).

The user's layers are only *called*, on concrete tensors, so their weights are shared (an
explainer sees later weight updates) and nothing about the model changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping

import keras

Hook = Callable[[Any], Any]


def graph_of(layer: Any):
    """Returns the functional graph behind ``layer`` or None when it has none.

    Functional models are their own graph; a built Sequential model keeps one in
    ``_functional``; subclassed models and plain layers have none.
    """
    if isinstance(layer, keras.Sequential):
        return getattr(layer, "_functional", None)
    if isinstance(layer, keras.Model) and hasattr(layer, "_nodes_by_depth"):
        return layer
    return None


def nodes_in_call_order(graph) -> Iterator[Any]:
    """Yields the graph's operation nodes in execution order (deepest first)."""
    by_depth = graph._nodes_by_depth
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if node.operation is not None and not node.is_input:
                yield node


@dataclass(frozen=True)
class LayerInfo:
    """One layer call site of a model, with its path through nested models."""

    path: str
    layer: Any
    shape: Any  # output shape (tuple with None batch), or a list of them

    @property
    def is_spatial(self) -> bool:
        """True for rank-4 outputs with height and width > 1 (valid CAM layers).

        Unknown sizes (``None``, fully convolutional models) count as spatial.
        """
        s = self.shape
        return (
            isinstance(s, tuple)
            and len(s) == 4
            and all(v is None or (isinstance(v, int) and v > 1) for v in s[1:3])
        )


def layer_table(model) -> list[LayerInfo]:
    """Lists every layer call of ``model`` in call order, nested models included.

    A nested model appears once as itself, followed by its own layers with
    ``"outer/inner"`` paths. A layer called several times keeps its last position.
    """
    table: dict[str, LayerInfo] = {}

    def visit(graph, prefix: str) -> None:
        for node in nodes_in_call_order(graph):
            op = node.operation
            shapes = [tuple(t.shape) for t in node.outputs]
            info = LayerInfo(prefix + op.name, op, shapes[0] if len(shapes) == 1 else shapes)
            table.pop(info.path, None)
            table[info.path] = info
            inner = graph_of(op)
            if inner is not None:
                visit(inner, info.path + "/")

    graph = graph_of(model)
    if graph is not None:
        visit(graph, "")
    return list(table.values())


def run_graph(
    model,
    inputs,
    *,
    hooks: Mapping[str, Hook] | None = None,
    replace: Mapping[int, Callable[..., Any]] | None = None,
):
    """Computes ``model(inputs, training=False)``, applying ``hooks`` and ``replace``.

    Args:
      model: a Keras model. Subclassed models are called as they are (no hooks possible).
      inputs: a tensor (single-input models).
      hooks: layer path -> function of that layer's output, returning the output to use.
      replace: ``id(layer)`` -> function called with the layer's arguments instead of it.

    Returns:
      The model's outputs, in the model's output structure.
    """
    hooks = hooks or {}
    replace = replace or {}
    graph = graph_of(model)
    if graph is None:
        if hooks or replace:
            raise TypeError(f"model {model.name!r} has no layer graph to hook into")
        return model(inputs, training=False)
    return _run(graph, [inputs], "", hooks, replace)


def _run(graph, inputs: list, prefix: str, hooks, replace):
    values = {}
    for ref, value in zip(graph.inputs, inputs):
        if value.dtype != ref.dtype and ref.dtype is not None:
            value = keras.ops.cast(value, ref.dtype)
        values[id(ref)] = value
    for node in nodes_in_call_order(graph):
        if any(id(t) not in values for t in node.input_tensors):
            continue
        args, kwargs = node.arguments.fill_in(values)
        op = node.operation
        path = prefix + op.name
        inner = graph_of(op)
        if inner is not None:
            outputs = _run(inner, keras.tree.flatten(args[0]), path + "/", hooks, replace)
        elif id(op) in replace:
            outputs = replace[id(op)](*args, **kwargs)
        else:
            if "training" in getattr(op, "_call_context_args", ()):
                kwargs = {**kwargs, "training": False}
            outputs = op(*args, **kwargs)
        if path in hooks:
            outputs = hooks[path](outputs)
        for ref, value in zip(node.outputs, keras.tree.flatten(outputs)):
            values[id(ref)] = value
    flat = [values[id(ref)] for ref in graph.outputs]
    outputs = keras.tree.pack_sequence_as(graph._outputs_struct, flat)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def with_activation(layer, activation: Callable[[Any], Any]):
    """A view of ``layer`` with another activation, sharing its variables.

    Works for any layer that applies ``self.activation`` in its call (Dense, Conv*,
    EinsumDense, Activation, ...). The user's layer is not touched: the view is a new
    object whose attribute dictionary is a shallow copy of the layer's.
    """
    view = object.__new__(type(layer))
    view.__dict__.update(layer.__dict__)
    view.__dict__["activation"] = activation
    return view
