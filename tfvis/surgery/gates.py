"""ReLU gates: the backward rules of backprop, deconvnet and guided backprop.

A gate wraps one ReLU call (a ``ReLU`` layer, ``Activation("relu")``, a fused
``activation="relu"``, or ``keras.ops.relu`` in a functional graph) in a `tf.custom_gradient`.
Its forward *is* that call, so outputs stay bit-for-bit equal; only the backward signal ``R``
arriving at the ReLU is changed (``f`` is the ReLU's input):

* ``"backprop"``: ``relu'(f) * R``, the true gradient;
* ``"deconvnet"``: ``(R > 0) * R`` (Zeiler & Fergus, 2014), ignoring ``f``;
* ``"guided"``: ``relu'(f) * (R > 0) * R`` (Springenberg et al., 2015);
* ``"redirected"``: ``relu'(f) * R`` where the unit is on, and ``R`` where it is off
  (``relu'(f) = 0``) but ``R < 0``, i.e. where a minimiser's step ``-R`` would push the
  pre-activation up (lucid's "redirected ReLU"): a unit that is off everywhere still passes a
  gradient towards turning it on. Feature visualisation uses it for its first steps
  (`tfvis.visualize`'s ``redirect_relu``), so a channel that is zero on the start image
  (keras-team/keras#18334, "filters stuck at 0") can be optimised.

``relu'`` is the derivative of the call itself (taken with an inner tape), so a ``ReLU`` layer
keeps its ``max_value``, ``threshold`` and ``negative_slope``. Everything computes in the
input's dtype (float16 under ``mixed_float16``).

`relu_gates` turns this into a ``replace`` mapping for `run_graph`: the "clone with gates
spliced in" is the user's own layer graph executed with those replacements. It shares the
user's weights, is built without deserialising anything (a ``Lambda`` layer's bytecode is
never touched) and leaves the model as it was.

Only ReLU call sites are gated. Other members of the ReLU family (``LeakyReLU``, ``PReLU``,
``ELU`` layers, fused ``activation="leaky_relu"``/``"elu"``/``"selu"``/``"celu"``, or the
matching ``keras.ops``) are left ungated with a warning naming them: the rules are defined
for ReLU, so their plain gradient flows through. A SavedModel (``keras.layers.TFSMLayer``)
is refused: its ReLUs are hidden in its graph, so no rule can be applied.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import keras
import tensorflow as tf

from tfvis.surgery import _keras
from tfvis.surgery.graph import graph_of, layer_table, nodes_in_call_order, with_activation
from tfvis.surgery.layers import require_graph, saved_model_layers

RULES = ("backprop", "deconvnet", "guided", "redirected")
#: Activation functions (by name) that are ReLU call sites when fused into a layer.
RELU_ACTIVATIONS = ("relu", "relu6")
#: Keras operations (``keras.ops.relu`` in a functional graph) that are ReLU call sites.
RELU_OPS = ("Relu", "Relu6")
#: ReLU-family activations (by function name) and Keras layer / op classes (by class name)
#: that are not gated (the rules are defined for ReLU): `relu_gates` warns about them.
UNGATED_ACTIVATIONS = ("leaky_relu", "elu", "selu", "celu")
UNGATED_OPS = ("LeakyReLU", "PReLU", "ELU", "LeakyRelu", "Elu", "Selu", "Celu")
#: How warnings and errors name each rule.
RULE_TITLES = {"backprop": "backprop", "deconvnet": "deconvnet", "guided": "guided backprop",
               "redirected": "redirected ReLU"}


def _check_rule(rule: str) -> str:
    if rule not in RULES:
        raise ValueError(f"unknown ReLU backward rule {rule!r}; choose one of {RULES}")
    return rule


def gate(fn: Callable[[Any], Any], rule: str) -> Callable[[Any], Any]:
    """Wraps the elementwise ReLU-like ``fn`` so its backward pass follows ``rule``.

    Args:
      fn: the ReLU call, ``x -> y`` (elementwise, same shape).
      rule: ``"backprop"``, ``"deconvnet"``, ``"guided"`` or ``"redirected"``.

    Returns:
      A function with ``fn``'s forward values and the rule's gradient.
    """
    _check_rule(rule)

    @tf.custom_gradient
    def gated(x):
        with tf.GradientTape(watch_accessed_variables=False,
                             persistent=rule == "redirected") as tape:
            tape.watch(x)
            y = fn(x)

        def grad(upstream):
            if rule == "redirected":
                true = tape.gradient(y, x, output_gradients=upstream)
                slope = tape.gradient(y, x, output_gradients=tf.ones_like(upstream))
                push_up = tf.logical_and(tf.equal(slope, 0), upstream < 0)
                return tf.where(push_up, tf.cast(upstream, true.dtype), true)
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


def _is_ungated_relu_family(op) -> bool:
    """A ReLU relative the rules do not cover (LeakyReLU, PReLU, ELU, ...)."""
    if _keras.keras_op_name(op) in UNGATED_OPS:
        return True
    fn = vars(op).get("activation") if hasattr(op, "__dict__") else None
    return getattr(fn, "__name__", None) in UNGATED_ACTIVATIONS


def refuse_saved_models(model, rule: str) -> None:
    """Raises when ``model`` holds a SavedModel, whose ReLUs ``rule`` cannot reach.

    Raises:
      TypeError: naming the TFSMLayer, the reason and what to use instead (Saliency).
    """
    saved = saved_model_layers(model)
    if saved:
        raise _saved_model_error(_check_rule(rule), saved)


def _saved_model_error(rule: str, paths: list[str]) -> TypeError:
    return TypeError(
        f"{RULE_TITLES[rule]} needs to replace the backward pass of the model's ReLUs, but "
        f"they are hidden inside the SavedModel graph of TFSMLayer "
        f"{', '.join(map(repr, paths))}, so the rule cannot be applied (the result would be "
        "plain gradients under another method's name). Use tfvis.Saliency for the gradient "
        "of a SavedModel, or load the original Keras model (.keras) to use this method."
    )


def relu_gates(model, rule: str) -> tuple[dict[int, Callable[..., Any]], int]:
    """Gates every ReLU call site of ``model``, nested models included.

    Args:
      model: a functional or Sequential Keras model.
      rule: the backward rule, see `RULES`.

    Returns:
      ``(replace, count)``: the ``id(layer) -> function`` mapping for `run_graph` and the
      number of ReLU call sites it gates (a layer called twice counts twice).

    Warns:
      UserWarning: naming (by path) the ReLU-family layers left ungated (LeakyReLU, PReLU,
        ELU, ...), for the deconvnet and guided rules.

    Raises:
      TypeError: for a subclassed model (its ReLUs are hidden in Python code) or a model
        holding a SavedModel (`keras.layers.TFSMLayer`, its ReLUs are hidden in its graph).
    """
    _check_rule(rule)
    refuse_saved_models(model, rule)
    require_graph(model, "Gating ReLUs (guided backprop, deconvnet)")
    replace: dict[int, Callable[..., Any]] = {}
    ungated: set[int] = set()
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
            elif _is_ungated_relu_family(op):
                ungated.add(id(op))
            elif isinstance(op, keras.Model):
                warnings.warn(
                    f"layer {op.name!r} is a subclassed model: ReLUs inside it cannot be "
                    "gated and keep their plain gradient",
                    stacklevel=3,
                )

    visit(graph_of(model))
    if ungated and rule != "backprop":
        paths = [i.path for i in layer_table(model) if id(i.layer) in ungated]
        shown = ", ".join(map(repr, paths[:10])) + (f" and {len(paths) - 10} more"
                                                    if len(paths) > 10 else "")
        warnings.warn(
            f"{RULE_TITLES[rule]} gates ReLUs only: {len(paths)} ReLU-family layer(s) "
            f"(LeakyReLU, PReLU, ELU, ...) were left ungated and pass their plain gradient: "
            f"{shown}",
            stacklevel=3,
        )
    return replace, count
