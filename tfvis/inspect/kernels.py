"""Convolution kernels as images (Zeiler & Fergus fig. 6: one dominating filter shows)."""

from __future__ import annotations

import keras
import numpy as np

from tfvis.surgery import layer_table, resolve_layer
from tfvis.surgery.layers import LayerSpec, require_built, require_graph

_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)


def conv_paths(model: keras.Model) -> list[str]:
    """Paths of every 2-D convolution of ``model`` in call order (nested models included)."""
    return [i.path for i in layer_table(model) if isinstance(i.layer, _CONVS)
            and not isinstance(i.layer, keras.layers.Conv2DTranspose)]


def kernels(
    model: keras.Model,
    layer: LayerSpec = None,
    *,
    normalize: str = "joint",
    channel: int | str = "mean",
    max_filters: int | None = None,
) -> np.ndarray:
    """The filters of a convolution as images in [0, 1].

    Args:
      model: a functional or Sequential model (a layer inside a nested base by path).
      layer: the convolution (name, path, index, layer object); None: the first Conv2D.
      normalize: ``"joint"`` scales every filter by the same range (so a filter with much
        larger weights dominates, as in Zeiler & Fergus fig. 6), ``"filter"`` each on its own.
      channel: for a layer whose input does not have 1 or 3 channels: ``"mean"`` over the input
        channels, or an input channel index. Ignored for RGB / grey first layers.
      max_filters: keep the first filters only.

    Returns:
      float32 ``(F, kh, kw, 3)`` for a layer on RGB input, else ``(F, kh, kw, 1)``. A
      depthwise kernel gives one image per (input channel, multiplier); a separable one its
      depthwise part.

    Raises:
      ValueError: the layer is not a 2-D convolution, or a bad ``normalize`` / ``channel``.
    """
    if normalize not in ("joint", "filter"):
        raise ValueError(f"normalize must be 'joint' or 'filter', got {normalize!r}")
    require_built(model)
    require_graph(model, "kernels")
    if layer is None:
        convs = conv_paths(model)
        if not convs:
            raise ValueError(f"model {model.name!r} has no Conv2D layer; pass layer=")
        layer = convs[0]
    info = resolve_layer(model, layer)
    op = info.layer
    if not isinstance(op, _CONVS) or isinstance(op, keras.layers.Conv2DTranspose):
        raise ValueError(f"layer {info.path!r} is a {type(op).__name__}, not a 2-D convolution; "
                         f"convolutions: {conv_paths(model)}")
    if isinstance(op, (keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)):
        weights = op.depthwise_kernel if hasattr(op, "depthwise_kernel") else op.kernel
        k = np.asarray(keras.ops.convert_to_numpy(weights), np.float32)  # (kh, kw, cin, m)
        filters = k.reshape(k.shape[0], k.shape[1], -1).transpose(2, 0, 1)[..., None]
    else:
        k = np.asarray(keras.ops.convert_to_numpy(op.kernel), np.float32)  # (kh, kw, cin, cout)
        filters = np.moveaxis(k, -1, 0)  # (F, kh, kw, cin)
        if filters.shape[-1] not in (1, 3):
            if channel == "mean":
                filters = filters.mean(axis=-1, keepdims=True)
            elif isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) \
                    and -filters.shape[-1] <= channel < filters.shape[-1]:
                filters = filters[..., [int(channel)]]
            else:
                raise ValueError(f"channel must be 'mean' or an input channel index below "
                                 f"{filters.shape[-1]}, got {channel!r}")
    if max_filters is not None:
        filters = filters[: int(max_filters)]
    axes = None if normalize == "joint" else (1, 2, 3)
    low = filters.min(axis=axes, keepdims=True)
    span = np.maximum(filters.max(axis=axes, keepdims=True) - low, 1e-8)
    return ((filters - low) / span).astype(np.float32)


def kernel_grid(images: np.ndarray, size: int = 32, columns: int | None = None) -> np.ndarray:
    """Kernel (or any small) images scaled to ``size`` pixels (nearest) and tiled: uint8 RGB.

    Used by `tfvis.callbacks.FeatureEvolution` and the figures (OpenCV imported on use).
    """
    from tfvis.plotting.images import tile, to_uint8_rgb

    return tile(np.stack([nearest(to_uint8_rgb(np.asarray(im)), size) for im in images]),
                columns)


def nearest(image: np.ndarray, size: int) -> np.ndarray:
    """``image`` resized to ``size x size`` with nearest-neighbour sampling (OpenCV, on use)."""
    import cv2  # deferred: drawing only

    return cv2.resize(image, (size, size), interpolation=cv2.INTER_NEAREST)
