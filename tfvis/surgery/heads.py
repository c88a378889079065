"""What the model's head looks like: output selection, logits bypass, the CAM head."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import keras

from tfvis.surgery import _keras
from tfvis.surgery.graph import graph_of, site_segment, with_activation
from tfvis.surgery.layers import require_graph

# Layers that are the identity at inference time (skipped when reading a head's structure).
_INFERENCE_IDENTITY = (
    "Dropout",
    "SpatialDropout1D",
    "SpatialDropout2D",
    "SpatialDropout3D",
    "GaussianDropout",
    "GaussianNoise",
    "AlphaDropout",
)
_SQUASHING = ("softmax", "sigmoid")


def _activation_name(op) -> str | None:
    return getattr(getattr(op, "activation", None), "__name__", None)


def _trace(tensor, graph, prefix: str = "") -> list[tuple[str, Any, Any, Any]]:
    """``(path, operation, node, graph)`` producing ``tensor`` (a symbolic tensor of
    ``graph``), outermost first; nested models are followed to the plain layer inside."""
    chain = []
    while True:
        op, _, tensor_index = _keras.keras_history(tensor)
        node = _keras.producing_node(tensor)
        if isinstance(op, keras.layers.InputLayer):
            path = prefix + op.name
        else:
            path = prefix + site_segment(graph, node)
        chain.append((path, op, node, graph))
        inner = graph_of(op)
        if inner is None:
            return chain
        tensor, prefix, graph = inner.outputs[tensor_index], path + "/", inner


def trace_back(tensor, prefix: str = "", graph=None) -> list[tuple[str, Any, Any]]:
    """Returns ``(path, operation, node)`` producing ``tensor``, outermost first.

    When the producer is a nested model, its inner producer follows, so the last entry is
    always a plain layer (or an input layer). ``graph`` is the graph ``tensor`` belongs to
    (it names call sites ``name@k``); without it, paths use plain layer names.
    """
    if graph is None:
        chain = []
        while True:
            op, _, tensor_index = _keras.keras_history(tensor)
            path = prefix + op.name
            chain.append((path, op, _keras.producing_node(tensor)))
            inner = graph_of(op)
            if inner is None:
                return chain
            tensor, prefix = inner.outputs[tensor_index], path + "/"
    return [(path, op, node) for path, op, node, _ in _trace(tensor, graph, prefix)]


def _parent(path: str) -> str:
    return path.rsplit("/", 1)[0] + "/" if "/" in path else ""


def output_names(model) -> list[str]:
    """Names of the model's outputs (the layers producing them)."""
    graph = graph_of(model)
    if graph is None:
        return []
    return [_keras.keras_history(t)[0].name for t in graph.outputs]


def resolve_output(model, output: int | str | None) -> int | None:
    """Index of the output that class targets refer to (None: callable targets only)."""
    names = output_names(model)
    count = len(names) if graph_of(model) is not None else 1
    if output is None:
        return 0 if count == 1 else None
    if isinstance(output, str):
        if output not in names:
            raise ValueError(f"model {model.name!r} has no output {output!r}; outputs: {names}")
        return names.index(output)
    if isinstance(output, bool) or not isinstance(output, int) or not -count <= output < count:
        raise ValueError(
            f"output must be an output name or an index below {count}, got {output!r}; "
            f"outputs: {names}"
        )
    return output % count


def logits_replacements(model) -> dict[int, Callable[..., Any]]:
    """Layer replacements that make every softmax/sigmoid output give its pre-activation.

    A separate ``Softmax``/``Activation`` layer (or ``keras.ops`` softmax/sigmoid) becomes the
    identity; a fused ``activation="softmax"`` in a Dense or Conv layer is computed through a
    view of the layer with a linear activation, sharing its weights. Nothing is modified.
    """
    graph = graph_of(model)
    if graph is None:
        return {}
    replace = {}
    for tensor in graph.outputs:
        _, op, _, _ = _trace(tensor, graph)[-1]
        if _keras.keras_op_name(op) in ("Softmax", "Sigmoid") and _activation_name(op) is None:
            replace[id(op)] = lambda x, *args, **kwargs: x
        elif _activation_name(op) in _SQUASHING:
            view = with_activation(op, keras.activations.linear)
            replace[id(op)] = view
    return replace


@dataclass(frozen=True)
class GapDenseHead:
    """A global-average-pooling -> Dense head, as CAM requires."""

    feature_paths: tuple[str, ...]  # equivalent paths of the layer feeding the pooling
    dense: Any  # the Dense layer whose kernel gives the class weights


def gap_dense_head(model, output_index: int) -> GapDenseHead:
    """Finds the GAP -> Dense head producing output ``output_index``.

    Raises:
      ValueError: naming what CAM requires when the architecture has no such head.
      TypeError: for a model without a layer graph (subclassed).
    """
    require_graph(model, "CAM")
    graph = graph_of(model)

    def fail(found: str) -> ValueError:
        return ValueError(
            "CAM needs the explained output to be computed as Dense(GlobalAveragePooling2D("
            f"features)) (optionally followed by softmax/sigmoid), but {found}. Use GradCAM, "
            "which works on any architecture and equals CAM on such a head."
        )

    def skip(chain, names):
        path, op, node, where = chain[-1]
        while _keras.keras_op_name(op) in names or (
            _keras.keras_op_name(op) == "Activation"
            and _activation_name(op) in _SQUASHING + ("linear",)
        ):
            chain = _trace(_keras.node_inputs(node)[0], where, _parent(path))
            path, op, node, where = chain[-1]
        return chain

    def before(chain):
        path, _, node, where = chain[-1]
        return _trace(_keras.node_inputs(node)[0], where, _parent(path))

    chain = skip(_trace(graph.outputs[output_index], graph), ("Softmax",) + _INFERENCE_IDENTITY)
    path, dense, node, _ = chain[-1]
    if not isinstance(dense, keras.layers.Dense):
        raise fail(f"the output comes from {path!r} ({type(dense).__name__})")
    if _activation_name(dense) not in _SQUASHING + ("linear",):
        raise fail(f"Dense layer {path!r} has a {_activation_name(dense)!r} activation")
    chain = skip(before(chain), _INFERENCE_IDENTITY)
    path, gap, node, _ = chain[-1]
    if not isinstance(gap, keras.layers.GlobalAveragePooling2D) or gap.keepdims:
        raise fail(f"the Dense layer's input comes from {path!r} ({type(gap).__name__})")
    if gap.data_format != "channels_last":
        raise fail(f"{path!r} pools channels_first data")
    features = before(chain)
    if isinstance(features[-1][1], keras.layers.InputLayer):
        raise fail("the pooling is applied directly to the model input")
    return GapDenseHead(tuple(p for p, _, _, _ in features), dense)
