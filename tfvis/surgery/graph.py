"""Run a Keras model's graph on tensors, reaching inside nested models.

This is the one piece of model surgery everything else stands on. Instead of building new
`keras.Model` objects (which adds nodes to the user's layers and breaks on nested models with
"Graph disconnected"), tfvis executes the user's own layer graph node by node, exactly as
`Functional.call` does, with these additions:

* nested functional / Sequential models are entered, so every inner layer has a path
  (``"resnet50/conv5_block3_out"``) and can be observed;
* a layer called at several sites of one graph (a shared layer, a ``tower`` model applied
  to two inputs) has one path per call site, ``name@k`` (k: the 0-based call order among
  that layer's calls in this graph), e.g. ``"conv@1"`` or ``"tower@1/conv2"``; a layer called
  once keeps its plain name;
* ``hooks`` map a layer path to a function applied to that layer's output (used to watch
  and capture activations for a gradient tape);
* ``replace`` maps a layer (by identity) to a function called instead of it (used to bypass a
  final softmax, or to gate ReLUs);
* ``feed`` maps a layer path to a value used as that call's output (the layer is not called);
* only what is needed runs: `capture` computes the requested paths (and, optionally, the
  outputs) and skips every node they do not depend on, including the part of a nested model
  past a captured inner layer and everything upstream of a fed layer.

The user's layers are only *called*, on concrete tensors, so their weights are shared (an
explainer sees later weight updates) and nothing about the model changes: the calls run in a
Keras stateless scope and record no losses (an ``activity_regularizer``, ``add_loss``) on the
user's layers, whose ``model.losses`` stay as they were (`_keras.recording_nothing`).
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import keras

from tfvis.surgery import _keras

Hook = Callable[[Any], Any]
_SITE = re.compile(r"@\d+$")


def graph_of(layer: Any):
    """Returns the functional graph behind ``layer`` or None when it has none.

    Functional models are their own graph; a built Sequential model keeps one inside;
    subclassed models and plain layers have none.
    """
    if isinstance(layer, keras.Sequential):
        return _keras.sequential_graph(layer)
    if _keras.is_functional(layer):
        return layer
    return None


def nodes_in_call_order(graph) -> Iterator[Any]:
    """Yields the graph's operation nodes in execution order (deepest first)."""
    by_depth = _keras.nodes_by_depth(graph)
    for depth in sorted(by_depth, reverse=True):
        for node in by_depth[depth]:
            if _keras.node_operation(node) is not None and not _keras.is_input_node(node):
                yield node


def input_names(model) -> list[str]:
    """Names of the model's inputs (its InputLayers), in ``model.inputs`` order.

    These are the keys `run_graph` and `capture` accept when inputs are given as a dict.
    """
    graph = graph_of(model)
    if graph is None:
        raise TypeError(f"model {model.name!r} has no layer graph, so no named inputs")
    return _keras.input_layer_names(graph)


# -- call sites -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    """One call of an operation in one graph."""

    node: Any
    op: Any
    segment: str  # the path segment: "name", or "name@k" for a layer called at several sites
    inner: Any  # the graph of a nested model, or None


class _Level:
    """One graph's call sites in execution order, named."""

    def __init__(self, graph) -> None:
        self.graph = graph
        nodes = list(nodes_in_call_order(graph))
        member = {id(n) for depth in _keras.nodes_by_depth(graph).values() for n in depth}
        self.sites: list[_Site] = []
        for node in nodes:
            op = _keras.node_operation(node)
            own = [id(n) for n in _keras.inbound_nodes(op) if id(n) in member]
            segment = op.name if len(own) <= 1 else f"{op.name}@{own.index(id(node))}"
            self.sites.append(_Site(node, op, segment, graph_of(op)))
        self.by_segment = {s.segment: s for s in self.sites}
        self.by_node = {id(s.node): s for s in self.sites}


class _Levels:
    """Per-call memo of `_Level` by graph (lives only as long as one call)."""

    def __init__(self) -> None:
        self._levels: dict[int, _Level] = {}

    def __call__(self, graph) -> _Level:
        level = self._levels.get(id(graph))
        if level is None:
            level = self._levels[id(graph)] = _Level(graph)
        return level


def site_segment(graph, node) -> str:
    """The path segment of ``node`` (a call site of ``graph``): ``name`` or ``name@k``."""
    return _Level(graph).by_node[id(node)].segment


def plain_path(path: str) -> str:
    """``path`` without call-site suffixes: ``"tower@1/conv@0"`` -> ``"tower/conv"``."""
    return "/".join(_SITE.sub("", part) for part in path.split("/"))


# -- the layer table --------------------------------------------------------------------------


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


def _table(model, levels: _Levels) -> list[LayerInfo]:
    table: list[LayerInfo] = []

    def visit(graph, prefix: str) -> None:
        for site in levels(graph).sites:
            shapes = [tuple(t.shape) for t in _keras.node_outputs(site.node)]
            path = prefix + site.segment
            table.append(LayerInfo(path, site.op, shapes[0] if len(shapes) == 1 else shapes))
            if site.inner is not None:
                visit(site.inner, path + "/")

    graph = graph_of(model)
    if graph is not None:
        visit(graph, "")
    return table


def layer_table(model) -> list[LayerInfo]:
    """Lists every layer call site of ``model`` in call order, nested models included.

    A nested model appears once per call site as itself, followed by its own layers with
    ``"outer/inner"`` paths. A layer called at several sites of one graph has one entry per
    site, its last path segment suffixed ``@k`` (``"conv@0"``, ``"conv@1"``).
    """
    return _table(model, _Levels())


def describe(infos: list[LayerInfo], limit: int = 20) -> str:
    """Formats layer paths and output shapes, one per line."""
    lines = [f"  {i.path}  {i.shape}" for i in infos[-limit:]]
    if len(infos) > limit:
        lines.insert(0, f"  ... ({len(infos) - limit} earlier layers not shown)")
    return "\n".join(lines)


def call_sites_error(name: str, sites: Sequence[str]) -> ValueError:
    """The error for a layer named without saying which of its call sites is meant."""
    return ValueError(
        f"layer {name!r} is called at {len(sites)} sites; use one of: "
        + ", ".join(repr(p) for p in sites)
    )


def unknown_layer_error(model, name: str, table: list[LayerInfo] | None = None) -> ValueError:
    """The error for a layer name or path that is not in ``model`` (close matches listed)."""
    table = _table(model, _Levels()) if table is None else table
    sites = [i.path for i in table if plain_path(i.path) == name]
    if len(sites) > 1 and "@" not in name:
        return call_sites_error(name, sites)
    by_path = [i.path for i in table]
    names = list(dict.fromkeys(by_path + [p.rsplit("/", 1)[-1] for p in by_path]))
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    spatial = [i for i in table if i.is_spatial]
    return ValueError(
        f"no layer {name!r} in model {model.name!r}.{hint} Valid layers with spatial "
        "outputs (path, shape):\n" + describe(spatial or table)
    )


# -- what a run must compute ------------------------------------------------------------------


_NOTHING = object()


@dataclass
class _Want:
    """What is asked of one path (and, through ``children``, of the paths inside it)."""

    capture: bool = False
    hook: Hook | None = None
    feed: Any = _NOTHING
    children: dict[str, _Want] = field(default_factory=dict)

    @property
    def fed(self) -> bool:
        return self.feed is not _NOTHING

    def captures_inside(self) -> bool:
        return any(c.capture or c.captures_inside() for c in self.children.values())


def _wants(model, graph, levels: _Levels, paths, hooks, feed) -> _Want:
    """Builds the request tree, checking every path against the model's call sites."""
    root = _Want()

    def at(path: str, what: str) -> _Want:
        if not isinstance(path, str):
            raise TypeError(f"{what} keys must be layer paths (str), got {path!r}")
        want, level = root, levels(graph)
        for part in path.split("/"):
            site = level.by_segment.get(part) if level is not None else None
            if site is None:
                raise unknown_layer_error(model, path, _table(model, levels))
            want = want.children.setdefault(part, _Want())
            level = levels(site.inner) if site.inner is not None else None
        return want

    for path in paths:
        at(path, "capture").capture = True
    for path, fn in hooks.items():
        at(path, "hooks").hook = fn
    for path, value in feed.items():
        at(path, "feed").feed = value

    def check(want: _Want, prefix: str) -> None:
        for segment, child in want.children.items():
            path = prefix + segment
            if child.fed and child.children:
                inside = sorted(path + "/" + c for c in child.children)
                raise ValueError(
                    f"{path!r} is fed, so nothing inside it runs, but {inside} inside it "
                    "were also asked for (captured, hooked or fed). Feed or capture an inner "
                    "layer instead of the whole nested model, or drop the inner paths."
                )
            check(child, path + "/")

    check(root, "")
    return root


@dataclass
class _Plan:
    """The sites of one graph to run, in call order, and the graph inputs they need."""

    graph: Any
    steps: list[tuple[str, _Site, _Want | None, _Plan | None]]
    inputs: list[int]
    outputs: bool


def _plan(graph, want: _Want, outputs: bool, levels: _Levels) -> _Plan:
    """Backward dependency analysis of one graph level (nested levels recursively).

    A site runs when one of its outputs is needed (by a later site, the graph outputs or a
    capture); a nested model runs fully then, and partially (up to what is captured inside)
    when only inner paths are wanted; a fed site makes its own inputs unnecessary.
    """
    needed: set[int] = set()
    if outputs:
        needed.update(id(t) for t in graph.outputs)
    steps: list[tuple[str, _Site, _Want | None, _Plan | None]] = []
    for site in reversed(levels(graph).sites):
        w = want.children.get(site.segment)
        full = (w is not None and w.capture) or any(
            id(t) in needed for t in _keras.node_outputs(site.node)
        )
        if w is not None and w.fed:
            if full:
                steps.append(("feed", site, w, None))
            continue
        if site.inner is not None:
            if not (full or (w is not None and w.captures_inside())):
                continue
            sub = _plan(site.inner, w or _Want(), full, levels)
            flat = keras.tree.flatten(_keras.node_first_arg(site.node))
            needed.update(id(flat[i]) for i in sub.inputs
                          if isinstance(flat[i], keras.KerasTensor))
            steps.append(("enter", site, w, sub))
        elif full:
            needed.update(id(t) for t in _keras.node_inputs(site.node))
            steps.append(("call", site, w, None))
    steps.reverse()
    inputs = [i for i, t in enumerate(graph.inputs) if id(t) in needed]
    return _Plan(graph, steps, inputs, outputs)


# -- running ----------------------------------------------------------------------------------


def _flat_inputs(model, graph, inputs) -> list:
    """Inputs in ``graph.inputs`` order (None where not given)."""
    refs = graph.inputs
    names = _keras.input_layer_names(graph)
    if inputs is None:
        return [None] * len(refs)
    if isinstance(inputs, Mapping):
        struct = graph.input
        keys = list(struct) if isinstance(struct, Mapping) else []
        unknown = [k for k in inputs if k not in names and k not in keys]
        if unknown:
            raise ValueError(
                f"model {model.name!r} has no input named {unknown}; its inputs are {names}. "
                "Key the dict by these names (or pass a list in this order)."
            )
        flat = [inputs.get(n) for n in names]
        for key in keys:  # a model built on a dict of inputs: its own keys are accepted too
            if key in inputs and isinstance(struct[key], keras.KerasTensor):
                flat[[id(r) for r in refs].index(id(struct[key]))] = inputs[key]
        return flat
    if isinstance(inputs, (list, tuple)):
        if len(inputs) != len(refs):
            raise ValueError(
                f"model {model.name!r} has {len(refs)} input(s) {names}, but {len(inputs)} "
                "were given. Pass one tensor per input in this order, or a dict keyed by "
                "these names."
            )
        return list(inputs)
    if len(refs) != 1:
        raise ValueError(
            f"model {model.name!r} has {len(refs)} inputs {names}, but one tensor was given. "
            "Pass a list in this order, or a dict keyed by these names."
        )
    return [inputs]


def _cast(value, ref):
    if ref.dtype is not None and keras.backend.standardize_dtype(value.dtype) != ref.dtype:
        return keras.ops.cast(value, ref.dtype)
    return value


def _execute(plan: _Plan, flat: list, prefix: str, replace, captured: dict):
    values: dict[int, Any] = {}
    for i in plan.inputs:
        ref = plan.graph.inputs[i]
        values[id(ref)] = _cast(flat[i], ref)
    for kind, site, want, sub in plan.steps:
        path = prefix + site.segment
        if kind == "feed":
            outputs = want.feed
        elif kind == "enter":
            args = keras.tree.flatten(_keras.node_first_arg(site.node))
            inner = [values.get(id(a)) if isinstance(a, keras.KerasTensor) else a
                     for a in args]
            outputs = _execute(sub, inner, path + "/", replace, captured)
            if not sub.outputs:
                continue  # entered only for what is captured inside
        else:
            args, kwargs = _keras.fill_in(site.node, values)
            if id(site.op) in replace:
                outputs = replace[id(site.op)](*args, **kwargs)
            else:
                if "training" in _keras.call_context_args(site.op):
                    kwargs = {**kwargs, "training": False}
                outputs = site.op(*args, **kwargs)
        if want is not None:
            if kind != "feed" and want.hook is not None:
                outputs = want.hook(outputs)
            if want.capture:
                captured[path] = outputs
        for ref, value in zip(_keras.node_outputs(site.node), keras.tree.flatten(outputs)):
            values[id(ref)] = value
    if not plan.outputs:
        return None
    flat_out = [values[id(ref)] for ref in plan.graph.outputs]
    outputs = keras.tree.pack_sequence_as(_keras.outputs_struct(plan.graph), flat_out)
    if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
        return outputs[0]
    return outputs


def _run(model, inputs, paths, hooks, replace, feed, outputs: bool):
    graph = graph_of(model)
    levels = _Levels()
    want = _wants(model, graph, levels, paths, hooks, feed)
    plan = _plan(graph, want, outputs, levels)
    flat = _flat_inputs(model, graph, inputs)
    missing = [i for i in plan.inputs if flat[i] is None]
    if missing:
        names = _keras.input_layer_names(graph)
        raise ValueError(
            f"model {model.name!r} needs input(s) {[names[i] for i in missing]} to compute "
            f"{'its outputs' if outputs else 'the captured layers'}"
            f"{' and the captured layers' if outputs and paths else ''}, but they were not "
            f"given. Pass them (inputs: {names}), or feed a layer that every needed path "
            "goes through."
        )
    captured: dict[str, Any] = {}
    with _keras.recording_nothing(model):
        result = _execute(plan, flat, "", replace, captured)
    return {p: captured[p] for p in paths}, result


def _no_graph(model) -> TypeError:
    return TypeError(
        f"model {model.name!r} ({type(model).__name__}) has no layer graph to hook into, "
        "capture from or feed: it is a subclassed model (or an unbuilt Sequential). Rebuild "
        "it with the functional API, or give the Sequential model an input shape."
    )


def run_graph(
    model,
    inputs,
    *,
    hooks: Mapping[str, Hook] | None = None,
    replace: Mapping[int, Callable[..., Any]] | None = None,
    feed: Mapping[str, Any] | None = None,
):
    """Computes ``model(inputs, training=False)``, applying ``hooks``, ``replace``, ``feed``.

    Args:
      model: a Keras model. Subclassed models are called as they are (no hooks possible).
      inputs: a tensor (single-input models), a list/tuple in ``model.inputs`` order, or a
        dict keyed by input name (see `input_names`). With ``feed``, inputs that nothing
        needed depends on may be None or left out.
      hooks: layer path -> function of that layer's output, returning the output to use.
      replace: ``id(layer)`` -> function called with the layer's arguments instead of it.
      feed: layer path -> the value to use as that call's output (the layer, and what only
        it needs, is not run; hooks do not apply to fed values).

    Returns:
      The model's outputs, in the model's output structure.

    Raises:
      ValueError: an unknown path (close matches listed), wrong inputs, or a needed input
        that was not given.
      TypeError: hooks, replace or feed on a model without a layer graph.
    """
    hooks, replace, feed = hooks or {}, replace or {}, feed or {}
    if graph_of(model) is None:
        if hooks or replace or feed:
            raise _no_graph(model)
        with _keras.recording_nothing(model, stateless=model.built):
            return model(inputs, training=False)
    return _run(model, inputs, (), hooks, replace, feed, True)[1]


def capture(
    model,
    inputs,
    paths: str | Iterable[str],
    *,
    hooks: Mapping[str, Hook] | None = None,
    replace: Mapping[int, Callable[..., Any]] | None = None,
    feed: Mapping[str, Any] | None = None,
    outputs: bool = False,
):
    """Computes the outputs of the layers at ``paths``, running only what they need.

    Nodes no requested path depends on are not run: a capture of an early layer stops
    there, a nested model is entered only up to its captured inner layers, and everything
    upstream of a fed layer is skipped.

    Args:
      model: a functional or Sequential Keras model (nested models allowed).
      inputs: as for `run_graph` (a tensor, a list, or a dict keyed by input name); None or
        left out where nothing needed depends on them.
      paths: layer paths as in `layer_table` (``"conv"``, ``"base/convB"``, ``"conv@1"``).
      hooks: layer path -> function of that layer's output, returning the output to use
        (applied to sites that run; a captured value is the hooked one).
      replace: ``id(layer)`` -> function called with the layer's arguments instead of it.
      feed: layer path -> the value to use as that call's output, as it is.
      outputs: also compute and return the model's outputs.

    Returns:
      ``{path: output}`` in the order of ``paths``, or ``(captured, model_outputs)`` when
      ``outputs`` is True.

    Raises:
      ValueError: an unknown path (close matches listed), a layer called at several sites
        named without ``@k``, wrong inputs, or a needed input that was not given.
      TypeError: a model without a layer graph (subclassed).
    """
    if graph_of(model) is None:
        raise _no_graph(model)
    paths = [paths] if isinstance(paths, str) else list(dict.fromkeys(paths))
    captured, result = _run(model, inputs, paths, hooks or {}, replace or {}, feed or {},
                            bool(outputs))
    return (captured, result) if outputs else captured


def with_activation(layer, activation: Callable[[Any], Any]):
    """A view of ``layer`` with another activation, sharing its variables.

    Works for any layer that applies ``self.activation`` in its call (Dense, Conv*,
    EinsumDense, Activation, ...). The user's layer is not touched: the view is a new
    object whose attribute dictionary is a shallow copy of the layer's, with its own loss
    lists, call-graph lists and attribute tracker (so calling the view records nothing on the
    layer), and the same variables.
    """
    view = object.__new__(type(layer))
    view.__dict__.update(layer.__dict__)
    _keras.detach_view(view, layer)
    view.__dict__["activation"] = activation
    return view
