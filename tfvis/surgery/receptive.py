"""Exact receptive fields of units, computed in closed form from the layer graph.

Every spatial layer maps a unit ``o`` of its output to input units ``o * stride - pad_before``
.. ``o * stride - pad_before + (kernel - 1) * dilation``; composed through the stack (nested
models entered, branches merged by union) a unit ``(y, x)`` of a layer sees the input pixels
``start + y * jump`` .. ``start + y * jump + size - 1`` per axis (``start`` may be negative:
padding), clipped to the image by `ReceptiveField.box`.

"same" padding depends on the input size (TensorFlow pads ``total // 2`` before), so sizes are
propagated from the model's input shape (or ``image_size`` for fully convolutional models).
A layer past a global pooling, Flatten or Dense sees the whole image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import keras
import numpy as np

from tfvis.surgery import _keras
from tfvis.surgery.graph import _Level, graph_of
from tfvis.surgery.layers import LayerSpec, require_graph, resolve_layer

#: Layers that keep every spatial position where it is (elementwise / per-position ops).
_POINTWISE = (
    keras.layers.Activation, keras.layers.ReLU, keras.layers.LeakyReLU, keras.layers.PReLU,
    keras.layers.ELU, keras.layers.Softmax, keras.layers.BatchNormalization,
    keras.layers.LayerNormalization, keras.layers.Dropout, keras.layers.SpatialDropout2D,
    keras.layers.GaussianNoise, keras.layers.GaussianDropout, keras.layers.Rescaling,
    keras.layers.Normalization, keras.layers.Add, keras.layers.Subtract,
    keras.layers.Multiply, keras.layers.Average, keras.layers.Maximum, keras.layers.Minimum,
    keras.layers.Concatenate, keras.layers.Identity, keras.layers.InputLayer,
)
_GLOBAL = (
    keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D, keras.layers.Flatten,
    keras.layers.Dense, keras.layers.Reshape,
)


@dataclass(frozen=True)
class _Axis:
    """Unit ``i`` of a feature axis of ``length`` units covers input pixels
    ``[start + i * jump, start + i * jump + size)``; ``size`` None: the whole image."""

    start: int
    size: int | None
    jump: int
    length: int


@dataclass(frozen=True)
class ReceptiveField:
    """The exact receptive field of the units of one layer.

    Attributes:
      layer: the layer path.
      size: ``(height, width)`` of a unit's field in input pixels, padding included (None: the
        whole image, for a layer past a global pooling / Flatten / Dense).
      jump: ``(y, x)`` input pixels between neighbouring units (the cumulative stride).
      start: ``(y, x)`` input pixel of the top-left corner of unit ``(0, 0)``'s field (negative
        where it lies in the padding).
      image_size: ``(H, W)`` of the input image.
      feature_size: ``(h, w)`` of the layer's output.
    """

    layer: str
    size: tuple[int, int] | None
    jump: tuple[int, int]
    start: tuple[int, int]
    image_size: tuple[int, int]
    feature_size: tuple[int, int]

    def box(self, y: Any, x: Any) -> np.ndarray:
        """The field of unit(s) ``(y, x)`` clipped to the image.

        Args:
          y, x: unit coordinates in the layer's output (ints or arrays of the same shape).

        Returns:
          int64 ``(..., 4)`` boxes ``(x0, y0, x1, y1)``, ends exclusive.
        """
        y = np.asarray(y, np.int64)
        x = np.asarray(x, np.int64)
        height, width = self.image_size
        if self.size is None:
            zeros = np.zeros(np.broadcast(y, x).shape, np.int64)
            return np.stack([zeros, zeros, zeros + width, zeros + height], axis=-1)
        y0 = self.start[0] + y * self.jump[0]
        x0 = self.start[1] + x * self.jump[1]
        return np.stack([np.clip(x0, 0, width), np.clip(y0, 0, height),
                         np.clip(x0 + self.size[1], 0, width),
                         np.clip(y0 + self.size[0], 0, height)], axis=-1)


def _pair(value: Any) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return tuple(int(v) for v in value)  # type: ignore[return-value]


def _window(axis: _Axis, kernel: int, stride: int, dilation: int, padding: str,
            where: str) -> _Axis:
    """The axis after a sliding window (convolution or pooling)."""
    span = (kernel - 1) * dilation + 1
    if padding == "valid":
        length = (axis.length - span) // stride + 1
        before = 0
    elif padding == "same":
        length = -(-axis.length // stride)
        before = max((length - 1) * stride + span - axis.length, 0) // 2
    else:
        raise ValueError(f"{where}: padding {padding!r} is not supported by receptive fields "
                         "(only 'valid' and 'same')")
    if axis.size is None:
        return _Axis(0, None, axis.jump * stride, length)
    return _Axis(axis.start - before * axis.jump, axis.size + (span - 1) * axis.jump,
                 axis.jump * stride, length)


def _merge(fields: list, where: str):
    """Union of the fields of several inputs of one layer (an Add of two branches)."""
    fields = [f for f in fields if f is not None]
    if not fields:
        return None
    out = []
    for axes in zip(*fields):
        if len({(a.jump, a.length) for a in axes}) > 1:
            raise ValueError(f"{where}: its inputs have different strides or sizes "
                             f"{[(a.jump, a.length) for a in axes]}; the receptive field is "
                             "not a box")
        if any(a.size is None for a in axes):
            out.append(_Axis(0, None, axes[0].jump, axes[0].length))
            continue
        start = min(a.start for a in axes)
        end = max(a.start + a.size for a in axes)
        out.append(_Axis(start, end - start, axes[0].jump, axes[0].length))
    return tuple(out)


def _apply(op: Any, field, where: str):
    """The field of ``op``'s output from the (merged) field of its input."""
    if field is None:
        return None
    if isinstance(op, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D,
                       keras.layers.SeparableConv2D)) and not isinstance(
                           op, keras.layers.Conv2DTranspose):
        if getattr(op, "data_format", "channels_last") != "channels_last":
            raise ValueError(f"{where}: only channels_last layers are supported")
        k, s, d = _pair(op.kernel_size), _pair(op.strides), _pair(op.dilation_rate)
        return tuple(_window(a, k[i], s[i], d[i], op.padding, where) for i, a in enumerate(field))
    if isinstance(op, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)):
        k, s = _pair(op.pool_size), _pair(op.strides)
        return tuple(_window(a, k[i], s[i], 1, op.padding, where) for i, a in enumerate(field))
    if isinstance(op, keras.layers.ZeroPadding2D):
        (top, bottom), (left, right) = op.padding
        return tuple(_Axis(a.start - b * a.jump if a.size is not None else 0, a.size, a.jump,
                           a.length + b + e)
                     for a, (b, e) in zip(field, ((top, bottom), (left, right))))
    if isinstance(op, keras.layers.Cropping2D):
        (top, bottom), (left, right) = op.cropping
        return tuple(_Axis(a.start + b * a.jump if a.size is not None else 0, a.size, a.jump,
                           a.length - b - e)
                     for a, (b, e) in zip(field, ((top, bottom), (left, right))))
    if isinstance(op, _GLOBAL):
        return tuple(_Axis(0, None, a.jump, 1) for a in field)
    if isinstance(op, _POINTWISE):
        return field
    raise ValueError(
        f"{where}: {type(op).__name__} has no known receptive-field rule (supported: Conv2D, "
        "DepthwiseConv2D, SeparableConv2D, Max/AveragePooling2D, ZeroPadding2D, Cropping2D, "
        "elementwise layers, global pooling / Flatten / Dense); ask for a layer before it"
    )


def _walk(graph, fields_in: list, segments: list[str], prefix: str):
    """Propagates fields through ``graph`` until the site named by ``segments``."""
    values = {id(t): f for t, f in zip(graph.inputs, fields_in)}
    level = _Level(graph)
    for site in level.sites:
        where = f"layer {prefix + site.segment!r}"
        inner = site.inner
        if inner is not None:
            args = keras.tree.flatten(_keras.node_first_arg(site.node))
            inner_fields = [values.get(id(a)) for a in args]
            if segments and segments[0] == site.segment and len(segments) > 1:
                return _walk(inner, inner_fields, segments[1:], prefix + site.segment + "/")
            outs = _walk(inner, inner_fields, [], prefix + site.segment + "/")
        else:
            merged = _merge([values.get(id(t)) for t in _keras.node_inputs(site.node)], where)
            outs = [_apply(site.op, merged, where)] * len(_keras.node_outputs(site.node))
        if segments and segments == [site.segment]:
            return outs[0]
        for ref, value in zip(_keras.node_outputs(site.node), outs):
            values[id(ref)] = value
    if segments:
        raise ValueError(f"no layer {'/'.join(segments)!r} under {prefix or 'the model'}")
    return [values.get(id(t)) for t in graph.outputs]


def receptive_field(model: keras.Model, layer: LayerSpec = None, *,
                    image_size: tuple[int, int] | None = None,
                    input: int | str | None = None) -> ReceptiveField:
    """The exact receptive field of the units of ``layer`` (closed form, from the graph).

    Args:
      model: a functional or Sequential model (nested models are entered).
      layer: a name, ``"outer/inner"`` path, index, layer object, or None (the last spatial
        layer), as for the explainers.
      image_size: ``(H, W)`` of the input; required when the model's input size is unknown.
      input: the image input of a multi-input model (name or index; default: the only one).

    Returns:
      A `ReceptiveField`; ``field.box(y, x)`` is the clipped box of unit ``(y, x)``.

    Raises:
      ValueError: a layer without a known rule on the way (named), an unknown input size, or
        branches with different strides merged.
    """
    from tfvis.inputs import model_inputs, resolve_input

    require_graph(model, "receptive_field")
    info = resolve_layer(model, layer)
    graph = graph_of(model)
    index = resolve_input(model, input)
    shape = model_inputs(model)[index].shape
    if len(shape) != 4:
        raise ValueError(f"input {index} of model {model.name!r} has shape {shape}; receptive "
                         "fields need an image input (N, H, W, C)")
    size = tuple(image_size) if image_size is not None else tuple(shape[1:3])
    if any(s is None for s in size):
        raise ValueError(f"model {model.name!r} accepts images of any size {shape}; pass "
                         "image_size=(H, W)")
    fields: list = [None] * len(graph.inputs)
    fields[index] = (_Axis(0, 1, 1, int(size[0])), _Axis(0, 1, 1, int(size[1])))
    found = _walk(graph, fields, info.path.split("/"), "")
    if found is None:
        raise ValueError(f"layer {info.path!r} does not depend on the image input {index}")
    ay, ax = found
    whole = ay.size is None or ax.size is None
    return ReceptiveField(
        info.path,
        None if whole else (ay.size, ax.size),
        (ay.jump, ax.jump),
        (0, 0) if whole else (ay.start, ax.start),
        (int(size[0]), int(size[1])),
        (ay.length, ax.length),
    )
