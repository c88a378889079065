"""ReLU gates: the backward rules of backprop, deconvnet and guided backprop.

A gate wraps one ReLU call (a ``ReLU`` layer, ``Activation("relu")``, a fused
``activation="relu"``, or ``keras.ops.relu`` in a functional graph) in a `tf.custom_gradient`.
Its forward *is* that call, so outputs stay bit-for-bit equal; only the backward signal ``R``
arriving at the ReLU is changed (``f`` is the ReLU's input):

* ``"backprop"``: ``relu'(f) * R``, the true gradient;
* ``"deconvnet"``: ``(R > 0) * R`` (Zeiler & Fergus, 2014), ignoring ``f``;
* ``"guided"``: ``relu'(f) * (R > 0) * R`` (Springenberg et al., 2015).

``relu'`` is the derivative of the call itself (taken with an inner tape), so a ``ReLU`` layer
keeps its ``max_value``, ``threshold`` and ``negative_slope``. Everything computes in the
input's dtype (float16 under ``mixed_float16``).

`relu_gates` turns this into a ``replace`` mapping for `run_graph`: the "clone with gates
spliced in" is the user's own layer graph executed with those replacements. It shares the
user's weights, is built without deserialising anything (a ``Lambda`` layer's bytecode is
never touched) and leaves the model as it was.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import keras
import tensorflow as tf

from tfvis.surgery import _keras
from tfvis.surgery.graph import graph_of, nodes_in_call_order, with_activation
from tfvis.surgery.layers import require_graph

RULES = ("backprop", "deconvnet", "guided")
#: Activation functions (by name) that are ReLU call sites when fused into a layer.
RELU_ACTIVATIONS = ("relu", "relu6")
#: Keras operations (``keras.ops.relu`` in a functional graph) that are ReLU call sites.
RELU_OPS = ("Relu", "Relu6")


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown ReLU backward rule {rule!r}; choose one of {RULES}")
    return rule


def gate(fn: Callable[[Any], Any], rule: str) -> Callable[[Any], Any]:
    """Wraps the elementwise ReLU-like ``fn`` so its backward pass follows ``rule``.

    Args:
      fn: the ReLU call, ``x -> y`` (elementwise, same shape).
      rule: ``"backprop"``, ``"deconvnet"`` or ``"guided"``.

    Returns:
      A function with ``fn``'s forward values and the rule's gradient.
    """
    _check_rule(rule)

    @tf.custom_gradient
    def gated(x):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            y = fn(x)

        def grad(upstream):
            if rule == "deconvnet":
                return tf.cast(tf.nn.relu(upstream), x.dtype)
            if rule == "guided":
                upstream = tf.nn.relu(upstream)
            return tape.gradient(y, x, output_gradients=upstream)

        return y, grad

    return gated


def _gated_call(op, rule: str):
    """Replacement for a ``ReLU`` layer or ``keras.ops.relu`` node: the op's own call, gated."""

    def call(x, *args, **kwargs):
        return gate(lambda t: op(t, *args, **kwargs), rule)(x)

    return call


def _is_relu_activation(op) -> bool:
    fn = vars(op).get("activation")
    return getattr(fn, "__name__", None) in RELU_ACTIVATIONS


def _is_relu_op(op) -> bool:
    if isinstance(op, keras.layers.ReLU):
        return True
    return _keras.keras_op_name(op) in RELU_OPS


def relu_gates(model, rule: str) -> tuple[dict[int, Callable[..., Any]], int]:
    """Gates every ReLU call site of ``model``, nested models included.

    Args:
      model: a functional or Sequential Keras model.
      rule: the backward rule, see `RULES`.

    Returns:
      ``(replace, count)``: the ``id(layer) -> function`` mapping for `run_graph` and the
      number of ReLU call sites it gates (a layer called twice counts twice).

    Raises:
      TypeError: for a subclassed model (its ReLUs are hidden in Python code).
    """
    _check_rule(rule)
    require_graph(model, "Gating ReLUs (guided backprop, deconvnet)")
    replace: dict[int, Callable[..., Any]] = {}
    count = 0

    def visit(graph) -> None:
        nonlocal count
        for node in nodes_in_call_order(graph):
            op = _keras.node_operation(node)
            inner = graph_of(op)
            if inner is not None:
                visit(inner)
            elif _is_relu_op(op):
                replace.setdefault(id(op), _gated_call(op, rule))
                count += 1
            elif _is_relu_activation(op):
                if id(op) not in replace:
                    replace[id(op)] = with_activation(op, gate(op.activation, rule))
                count += 1
            elif isinstance(op, keras.Model):
                warnings.warn(
                    f"layer {op.name!r} is a subclassed model: ReLUs inside it cannot be "
                    "gated and keep their plain gradient",
                    stacklevel=3,
                )

    visit(graph_of(model))
    return replace, count
