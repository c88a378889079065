"""Resolve the layer a user names (name, index, path, object or automatic)."""

from __future__ import annotations

from typing import Any

import keras

from tfvis.surgery.graph import (
    LayerInfo,
    call_sites_error,
    describe,
    graph_of,
    layer_table,
    plain_path,
    unknown_layer_error,
)

LayerSpec = Any  # str | int | keras.layers.Layer | None


def _leaf(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def require_graph(model, why: str) -> None:
    """Raises a clear TypeError when ``model`` has no layer graph (subclassed model)."""
    if graph_of(model) is not None:
        return
    if isinstance(model, keras.Sequential):
        require_built(model)
        raise ValueError(
            f"{why} needs the layer graph of Sequential model {model.name!r}, and it has "
            "none (Keras could not trace its layers symbolically when it was built). Give it "
            "keras.Input(shape=...) as its first layer, or rebuild it with the functional API."
        )
    raise TypeError(
        f"{why} needs a functional or Sequential model, but {model.name!r} is a subclassed "
        f"model ({type(model).__name__}) whose layers are hidden inside Python code. Rebuild "
        "it with the functional API, or use a method that needs only outputs or input "
        "gradients."
    )


def require_built(model) -> None:
    """Refuses a Sequential model that was never built, without building it.

    Such a model (no ``keras.Input`` first, never called) has no input shape, no weights and
    no layer graph; calling it would build it, creating its weights: a change to the user's
    model that tfvis never makes.

    Raises:
      ValueError: saying how to build the model.
    """
    if isinstance(model, keras.Sequential) and not model.built:
        raise ValueError(
            f"Sequential model {model.name!r} is not built (it has no input shape and no "
            "weights yet), and tfvis does not build it, since building changes the model. Build "
            "it first: give it keras.Input(shape=...) as its first layer, or call "
            "model.build((None, *input_shape)) or model(x) once on data."
        )


def saved_model_layers(model) -> list[str]:
    """Paths of the `keras.layers.TFSMLayer` layers of ``model``, nested models included.

    A TFSMLayer runs a SavedModel's graph as one opaque call: its inner layers (ReLUs, a final
    softmax) cannot be reached, gated or bypassed.
    """
    found: list[str] = []
    seen: set[int] = set()

    def visit(layer, prefix: str) -> None:
        if id(layer) in seen:
            return
        seen.add(id(layer))
        for inner in getattr(layer, "layers", None) or ():
            path = prefix + inner.name
            if isinstance(inner, keras.layers.TFSMLayer):
                found.append(path)
            else:
                visit(inner, path + "/")

    if isinstance(model, keras.layers.TFSMLayer):
        return [model.name]
    visit(model, "")
    return found


def resolve_layer(model, layer: LayerSpec = None) -> LayerInfo:
    """Finds the layer to explain.

    Args:
      model: a functional or Sequential Keras model (nested models allowed).
      layer: a layer name, an ``"outer/inner"`` path into nested models (``name@k`` names
        call site k of a layer called at several sites), an int index into
        ``model.layers`` (negative counts from the end), a layer object, or None for the last
        layer in call order (searching inside nested models) whose output is rank 4 with
        height and width > 1.

    Returns:
      The resolved `LayerInfo` (its ``path`` is what hooks use).

    Raises:
      ValueError: unknown name (close matches listed), a layer called at several sites named
        without ``@k`` (the sites listed), index out of range, no spatial layer.
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
        if len(found) > 1:
            raise call_sites_error(layer.name, [i.path for i in found])
        return found[0]
    if not isinstance(layer, str):
        raise TypeError(
            f"layer must be a name, path, index, layer object or None, not "
            f"{type(layer).__name__}"
        )
    by_path = {i.path: i for i in table}
    if layer in by_path:
        return by_path[layer]
    # A leaf name inside nested models; a layer called at several sites is named "conv@0",
    # "conv@1" (or "tower@0/conv", "tower@1/conv"), so "conv" alone is not enough.
    found = [i for i in table if _leaf(i.path) == layer]
    if not found:
        found = [i for i in table if layer in (plain_path(i.path), plain_path(_leaf(i.path)))]
    if len(found) == 1:
        return found[0]
    if found and all(i.layer is found[0].layer for i in found):
        raise call_sites_error(layer, [i.path for i in found])
    if found:
        raise ValueError(
            f"layer name {layer!r} is ambiguous in model {model.name!r}; use a full path:\n"
            + describe(found)
        )
    raise unknown_layer_error(model, layer, table)
