"""Resolve the layer a user names (name, index, path, object or automatic)."""

from __future__ import annotations

import difflib
from typing import Any

import keras

from tfvis.surgery.graph import LayerInfo, graph_of, layer_table

LayerSpec = Any  # str | int | keras.layers.Layer | None


def describe(infos: list[LayerInfo], limit: int = 20) -> str:
    """Formats layer paths and output shapes, one per line."""
    lines = [f"  {i.path}  {i.shape}" for i in infos[-limit:]]
    if len(infos) > limit:
        lines.insert(0, f"  ... ({len(infos) - limit} earlier layers not shown)")
    return "\n".join(lines)


def require_graph(model, why: str) -> None:
    """Raises a clear TypeError when ``model`` has no layer graph (subclassed model)."""
    if graph_of(model) is not None:
        return
    if isinstance(model, keras.Sequential):
        raise ValueError(
            f"Sequential model {model.name!r} is not built. Give it an input shape "
            "(keras.Input(shape=...) as its first layer) or call it once on data."
        )
    raise TypeError(
        f"{why} needs a functional or Sequential model, but {model.name!r} is a subclassed "
        f"model ({type(model).__name__}) whose layers are hidden inside Python code. Rebuild "
        "it with the functional API, or use a method that needs only outputs or input "
        "gradients."
    )


def resolve_layer(model, layer: LayerSpec = None) -> LayerInfo:
    """Finds the layer to explain.

    Args:
      model: a functional or Sequential Keras model (nested models allowed).
      layer: a layer name, an ``"outer/inner"`` path into nested models, an int index into
        ``model.layers`` (negative counts from the end), a layer object, or None for the last
        layer in call order (searching inside nested models) whose output is rank 4 with
        height and width > 1.

    Returns:
      The resolved `LayerInfo` (its ``path`` is what hooks use).

    Raises:
      ValueError: unknown name (close matches listed), index out of range, no spatial layer.
      TypeError: an unsupported ``layer`` type or a model without a layer graph.
    """
    require_graph(model, "A layer method")
    table = layer_table(model)
    spatial = [i for i in table if i.is_spatial]
    if layer is None:
        if not spatial:
            raise ValueError(
                f"model {model.name!r} has no layer with a rank-4 output of height and width "
                "> 1, so there is no layer to explain automatically. Layers:\n"
                + describe(table)
            )
        return spatial[-1]
    if isinstance(layer, bool):
        raise TypeError(f"layer must be a name, path, index or layer object, not {layer!r}")
    if isinstance(layer, int):
        layers = model.layers
        if not -len(layers) <= layer < len(layers):
            raise ValueError(
                f"layer index {layer} is out of range: model {model.name!r} has "
                f"{len(layers)} layers (indices {-len(layers)}..{len(layers) - 1})."
            )
        layer = layers[layer]
    if isinstance(layer, keras.layers.InputLayer):
        raise ValueError(
            f"{layer.name!r} is the input of model {model.name!r}, not a layer that computes "
            "features (functional models count their InputLayer in model.layers, so index 0 "
            "is the input). Valid layers with spatial outputs (path, shape):\n"
            + describe(spatial or table)
        )
    if isinstance(layer, keras.layers.Layer):
        found = [i for i in table if i.layer is layer]
        if not found:
            raise ValueError(
                f"layer {layer.name!r} is not part of model {model.name!r}. Pass a layer of "
                "the explained model, or its name."
            )
        return found[-1]
    if not isinstance(layer, str):
        raise TypeError(
            f"layer must be a name, path, index, layer object or None, not "
            f"{type(layer).__name__}"
        )
    by_path = {i.path: i for i in table}
    if layer in by_path:
        return by_path[layer]
    by_leaf = [i for i in table if i.path.rsplit("/", 1)[-1] == layer]
    if len(by_leaf) == 1:
        return by_leaf[0]
    if len(by_leaf) > 1:
        raise ValueError(
            f"layer name {layer!r} is ambiguous in model {model.name!r}; use a full path:\n"
            + describe(by_leaf)
        )
    names = list(dict.fromkeys(list(by_path) + [p.rsplit("/", 1)[-1] for p in by_path]))
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    raise ValueError(
        f"no layer {layer!r} in model {model.name!r}.{hint} Valid layers with spatial "
        "outputs (path, shape):\n" + describe(spatial or table)
    )
