"""Every private Keras access tfvis makes, behind small named functions.

tfvis executes the user's own layer graph, which needs a few Keras internals: the node graph of
a functional model (``_nodes_by_depth``), the graph inside a Sequential model
(``_functional``), the call event that produced a symbolic tensor (``_keras_history``,
``_inbound_nodes``), how to call a node on concrete values (``node.arguments.fill_in``), which
context arguments a layer takes (``_call_context_args``), the output structure
(``_outputs_struct``), the class names of ``keras.ops`` operations, the per-layer state a
view of a layer must not share (``_losses``, ``_tracker``, ...), and the stateless scope that
keeps layer calls from recording losses on the user's layers.

Nothing outside this module touches those names, and ``tests/test_keras_internals.py`` has one
canary test per function, so a Keras upgrade that moves one fails loudly in one place. The
Keras version is checked at import against the range these were tested with.
"""

from __future__ import annotations

import contextlib
import copy
import re
from typing import Any, Iterator, Mapping

import keras

#: Keras versions these accessors were tested with: ``MIN_VERSION <= version < MAX_VERSION``.
MIN_VERSION = (3, 15)
MAX_VERSION = (4, 0)

#: Per-layer containers a view of a layer gets fresh copies of (see `detach_view`): losses
#: recorded by calls (``add_loss``, activity regularizers) and the symbolic call graph.
VIEW_FRESH_STATE = ("_losses", "_loss_ids", "_losses_override", "_inbound_nodes",
                    "_outbound_nodes")


def _version_tuple(version: str) -> tuple[int, int]:
    match = re.match(r"(\d+)\.(\d+)", version)
    if match is None:
        raise ImportError(f"tfvis cannot read the Keras version {version!r}")
    return int(match.group(1)), int(match.group(2))


def check_version(version: str) -> None:
    """Raises ImportError unless ``version`` is in the tested Keras range.

    Args:
      version: a Keras version string such as ``"3.15.1"``.

    Raises:
      ImportError: naming the installed and the supported versions.
    """
    found = _version_tuple(version)
    if not MIN_VERSION <= found < MAX_VERSION:
        low = ".".join(map(str, MIN_VERSION))
        high = ".".join(map(str, MAX_VERSION))
        raise ImportError(
            f"tfvis needs Keras >={low},<{high} (its model surgery relies on Keras internals "
            f"tested in that range), but Keras {version} is installed. Install a supported "
            f'version, e.g. pip install "keras>={low},<{high}".'
        )


check_version(keras.__version__)


def _moved(what: str) -> RuntimeError:
    return RuntimeError(
        f"Keras {keras.__version__} no longer provides {what}, which tfvis relies on to run a "
        "model's layer graph. Install a Keras version tfvis supports "
        f"(>={'.'.join(map(str, MIN_VERSION))},<{'.'.join(map(str, MAX_VERSION))})."
    )


# -- graphs -----------------------------------------------------------------------------------


def is_functional(obj: Any) -> bool:
    """True for a Keras model that is its own layer graph (a functional model)."""
    return isinstance(obj, keras.Model) and hasattr(obj, "_nodes_by_depth")


def sequential_graph(model: Any) -> Any:
    """The functional graph a built Sequential model keeps (``_functional``), or None."""
    return getattr(model, "_functional", None)


def nodes_by_depth(graph: Any) -> Mapping[int, list]:
    """The graph's nodes by depth (0: the outputs' producers; inputs are deepest)."""
    try:
        return graph._nodes_by_depth
    except AttributeError:
        raise _moved("Functional._nodes_by_depth") from None


def outputs_struct(graph: Any) -> Any:
    """The structure (list, dict, ...) of the graph's outputs, holding symbolic tensors."""
    try:
        return graph._outputs_struct
    except AttributeError:
        raise _moved("Functional._outputs_struct") from None


def input_layer_names(graph: Any) -> list[str]:
    """Names of the graph's InputLayers, in ``graph.inputs`` order."""
    return [keras_history(t)[0].name for t in graph.inputs]


# -- nodes (one call event of an operation) ---------------------------------------------------


def node_operation(node: Any) -> Any:
    """The layer or operation a node calls."""
    return node.operation


def node_outputs(node: Any) -> list:
    """The node's symbolic output tensors, flattened."""
    return node.outputs


def node_inputs(node: Any) -> list:
    """The node's symbolic input tensors, flattened (positional and keyword arguments)."""
    return node.arguments.keras_tensors


def node_first_arg(node: Any) -> Any:
    """The first positional argument the node was called with (symbolic)."""
    return node.arguments.args[0]


def is_input_node(node: Any) -> bool:
    """True for the node of an InputLayer (a graph entry point)."""
    return node.is_input


def fill_in(node: Any, values: Mapping[int, Any]) -> tuple[tuple, dict]:
    """The node's call arguments with each symbolic tensor ``t`` replaced by ``values[id(t)]``.

    Returns:
      ``(args, kwargs)`` to call the node's operation with.
    """
    return node.arguments.fill_in(values)


def keras_history(tensor: Any) -> tuple[Any, int, int]:
    """``(operation, node_index, tensor_index)`` of the call that produced a symbolic tensor."""
    try:
        op, node_index, tensor_index = tensor._keras_history
    except AttributeError:
        raise _moved("KerasTensor._keras_history") from None
    return op, node_index, tensor_index


def inbound_nodes(layer: Any) -> list:
    """Every call event of ``layer`` (one node per symbolic call, in call order)."""
    try:
        return layer._inbound_nodes
    except AttributeError:
        raise _moved("Operation._inbound_nodes") from None


def producing_node(tensor: Any) -> Any:
    """The node whose call produced the symbolic ``tensor``."""
    op, node_index, _ = keras_history(tensor)
    return inbound_nodes(op)[node_index]


# -- calling layers ---------------------------------------------------------------------------


def call_context_args(op: Any) -> frozenset:
    """Context arguments (``training``) Keras propagates into ``op``'s call.

    ``keras.ops`` operations in a functional graph take none. A layer without the attribute
    means Keras moved it: tfvis would otherwise silently call Dropout or BatchNormalization
    without ``training=False``, so that is an error.

    Raises:
      RuntimeError: naming the Keras version, when a layer lacks ``_call_context_args``.
    """
    if not isinstance(op, keras.layers.Layer):
        return frozenset()
    try:
        return frozenset(op._call_context_args)
    except AttributeError:
        raise _moved(
            f"Layer._call_context_args (missing on layer {op.name!r}, so tfvis cannot make "
            "sure it runs with training=False)"
        ) from None


def keras_op_name(op: Any) -> str | None:
    """The class name of a Keras layer or ``keras.ops`` operation; None for user classes.

    ``keras.ops.relu(x)`` in a functional graph is an instance of a private class
    (``keras.src.ops.nn.Relu``); this is the one place that reads such names.
    """
    kind = type(op)
    return kind.__name__ if kind.__module__.startswith("keras.") else None


# -- views of layers --------------------------------------------------------------------------


def detach_view(view: Any, layer: Any) -> None:
    """Gives ``view`` (a shallow ``__dict__`` copy of ``layer``) its own mutable state.

    The view keeps the layer's variables (so weight updates are shared) but gets fresh loss
    lists and call-graph lists, and a fresh attribute tracker whose stores hold the same
    variables and sublayers in new lists: calling the view (which clears and records losses,
    and adds nodes when called symbolically) never changes the original layer.

    Raises:
      RuntimeError: when Keras moved one of these attributes.
    """
    state = view.__dict__
    missing = [n for n in VIEW_FRESH_STATE + ("_tracker",) if n not in state]
    if missing:
        raise _moved(f"Layer attributes {missing}")
    for name in VIEW_FRESH_STATE:
        state[name] = set() if name == "_loss_ids" else []
    tracker = layer.__dict__["_tracker"]
    fresh = copy.copy(tracker)
    stores: dict[int, list] = {}
    fresh.config = {}
    for store, (test, items) in tracker.config.items():
        stores[id(items)] = list(items)
        fresh.config[store] = (test, stores[id(items)])
    fresh.stored_ids = {store: set(ids) for store, ids in tracker.stored_ids.items()}
    state["_tracker"] = fresh
    for name, value in list(state.items()):
        if id(value) in stores:  # _trainable_variables, _layers, ... point at the stores
            state[name] = stores[id(value)]


# -- calls that leave no trace on the layers ----------------------------------------------------


@contextlib.contextmanager
def recording_nothing(model: Any, stateless: bool = True) -> Iterator[None]:
    """Calls of ``model``'s layers inside record nothing on them (the model is unchanged).

    Calling a layer on its own (as `tfvis.surgery.run_graph` does, node by node) makes it the
    entry of a Keras call: it clears the losses it holds and records new ones (an
    ``activity_regularizer``, ``add_loss``), which inside a `tf.function` are symbolic tensors
    of tfvis's trace left in the user's ``model.losses``. Inside this context the calls run
    in a Keras ``StatelessScope`` that collects no losses (Keras's own way to run layers
    without side effects; variables are read as they are), and every layer's loss lists are
    put back as they were on exit (the clear at each call's start is undone).

    Args:
      model: the Keras model whose layers are called.
      stateless: enter the stateless scope (False only restores the loss lists: for a model
        that may still create variables on its first call, which a stateless scope forbids).
        An already active stateless scope (the caller's) is kept, with its variable values.

    Raises:
      RuntimeError: when Keras moved one of these internals.
    """
    try:
        from keras.src.backend.common.stateless_scope import StatelessScope, in_stateless_scope

        layers = list(model._flatten_layers(include_self=True, recursive=True))
        saved = [(layer, layer._losses, list(layer._losses), layer._loss_ids,
                  set(layer._loss_ids)) for layer in layers]
    except (ImportError, AttributeError):
        raise _moved("StatelessScope, Layer._flatten_layers, _losses or _loss_ids") from None
    try:
        if stateless and not in_stateless_scope():
            with StatelessScope(collect_losses=False, initialize_variables=False):
                yield
        else:
            yield
    finally:
        for layer, losses, before, ids, ids_before in saved:
            losses[:] = before
            ids.clear()
            ids.update(ids_before)
            layer.__dict__["_losses"], layer.__dict__["_loss_ids"] = losses, ids
