"""Canaries: one test per private Keras access in `tfvis.surgery._keras`.

Each checks the accessor against a tiny real model, so a Keras upgrade that moves one of these
internals fails here, by name, rather than somewhere deep in an explainer.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import seeded

from tfvis.surgery import _keras


def tiny():
    """Input -> Dense -> Dropout -> keras.ops.relu -> Dense (two outputs of one split)."""
    inp = keras.Input((4,), name="x")
    h = keras.layers.Dense(3, name="d1", kernel_initializer=seeded(1))(inp)
    h = keras.layers.Dropout(0.5, name="drop")(h)
    h = keras.ops.relu(h)
    out = keras.layers.Dense(2, name="d2", kernel_initializer=seeded(2))(h)
    return keras.Model(inp, {"logits": out, "hidden": h}, name="tiny")


def test_version_range():
    _keras.check_version(keras.__version__)  # the installed one is supported
    _keras.check_version("3.15.0")
    _keras.check_version("3.99.1rc0")
    for bad in ("3.14.2", "4.0.0", "2.15.0"):
        with pytest.raises(ImportError, match=rf"needs Keras >=3\.15,<4\.0.*Keras {bad} is"):
            _keras.check_version(bad)


def test_is_functional():
    assert _keras.is_functional(tiny())
    assert not _keras.is_functional(keras.layers.Dense(2))


def test_sequential_graph():
    seq = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, name="d")])
    graph = _keras.sequential_graph(seq)
    assert _keras.is_functional(graph)
    assert [n.operation.name for n in _keras.nodes_by_depth(graph)[0]] == ["d"]
    assert _keras.sequential_graph(keras.Sequential([keras.layers.Dense(2)])) is None


def test_nodes_by_depth():
    model = tiny()
    by_depth = _keras.nodes_by_depth(model)
    names = {d: [_keras.node_operation(n).name for n in nodes] for d, nodes in by_depth.items()}
    # depth 0 produces the outputs; the input node is deepest
    relu = names[1][0]  # keras.ops.relu's operation: "relu", "relu_1", ...
    assert relu.startswith("relu")
    assert names == {0: ["d2"], 1: [relu], 2: ["drop"], 3: ["d1"], 4: ["x"]}


def test_outputs_struct():
    model = tiny()
    struct = _keras.outputs_struct(model)
    assert isinstance(struct, dict) and set(struct) == {"logits", "hidden"}
    assert struct["logits"] is model.get_layer("d2").output


def test_input_layer_names():
    assert _keras.input_layer_names(tiny()) == ["x"]


def test_node_accessors_and_fill_in():
    model = tiny()
    d2 = model.get_layer("d2")
    (node,) = _keras.inbound_nodes(d2)
    assert _keras.node_operation(node) is d2
    assert _keras.node_outputs(node) == [d2.output]
    (symbolic,) = _keras.node_inputs(node)
    assert _keras.node_first_arg(node) is symbolic
    assert not _keras.is_input_node(node)
    assert _keras.is_input_node(_keras.producing_node(model.inputs[0]))
    value = tf.ones((1, 3))
    args, kwargs = _keras.fill_in(node, {id(symbolic): value})
    assert args[0] is value and kwargs == {}


def test_keras_history_and_producing_node():
    model = tiny()
    d1 = model.get_layer("d1")
    op, node_index, tensor_index = _keras.keras_history(d1.output)
    assert (op, node_index, tensor_index) == (d1, 0, 0)
    assert _keras.producing_node(d1.output) is _keras.inbound_nodes(d1)[0]


def test_call_context_args():
    model = tiny()
    assert "training" in _keras.call_context_args(model.get_layer("drop"))
    relu = _keras.node_operation(_keras.producing_node(model.get_layer("d2").input))
    assert not isinstance(relu, keras.layers.Layer)
    assert _keras.call_context_args(relu) == frozenset()
    moved = keras.layers.Dropout(0.5, name="moved")
    del moved.__dict__["_call_context_args"]  # what a Keras upgrade removing it looks like
    with pytest.raises(RuntimeError, match=rf"Keras {keras.__version__}.*_call_context_args"):
        _keras.call_context_args(moved)


def test_keras_op_name():
    model = tiny()
    relu = _keras.node_operation(_keras.producing_node(model.get_layer("d2").input))
    assert _keras.keras_op_name(relu) == "Relu"
    assert _keras.keras_op_name(model.get_layer("drop")) == "Dropout"

    class Relu(keras.layers.Layer):
        def call(self, x):
            return x

    assert _keras.keras_op_name(Relu()) is None


def test_detach_view():
    model = tiny()
    layer = model.get_layer("d1")
    for name in _keras.VIEW_FRESH_STATE + ("_tracker",):
        assert name in layer.__dict__, name
    view = object.__new__(type(layer))
    view.__dict__.update(layer.__dict__)
    _keras.detach_view(view, layer)
    for name in _keras.VIEW_FRESH_STATE + ("_tracker",):
        assert view.__dict__[name] is not layer.__dict__[name], name
    assert len(view._inbound_nodes) == 0 and len(layer._inbound_nodes) == 1
    assert [id(v) for v in view.trainable_variables] == [id(v) for v in layer.trainable_variables]
    assert view._trainable_variables is not layer._trainable_variables
    assert view._tracker.config["trainable_variables"][1] is view._trainable_variables
    np.testing.assert_allclose(view(np.ones((1, 4), np.float32)).numpy(),
                               layer(np.ones((1, 4), np.float32)).numpy())


def test_recording_nothing():
    inp = keras.Input((4,))
    out = keras.layers.Dense(2, activity_regularizer="l2", name="reg")(inp)
    model = keras.Model(inp, out)
    model(np.ones((1, 4), np.float32))  # the user's own call records a loss
    kept = [float(v) for v in model.losses]
    layer = model.get_layer("reg")
    with _keras.recording_nothing(model):
        layer(np.full((1, 4), 3.0, np.float32))
    assert [float(v) for v in model.losses] == kept and len(kept) == 1
    with _keras.recording_nothing(model, stateless=False):
        layer(np.full((1, 4), 5.0, np.float32))  # records, then is put back
    assert [float(v) for v in model.losses] == kept
