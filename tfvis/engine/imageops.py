"""Image computation that explainers need: normalise, blur, resize (numpy and TensorFlow only).

Nothing here draws or imports matplotlib / OpenCV, so explainers can use it without pulling in
display libraries; `tfvis.plotting` builds its pictures on top of it. TensorFlow is imported by
the TF functions when called, so the numpy `normalize` (and `tfvis.plotting`) loads without it
(importing TensorFlow imports Keras, which itself loads matplotlib and OpenCV when installed).

- `normalize`: numpy, per map min-max (and signed modes) for results handed to users.
- `normalize_tf`: the same min-max, in TF, for use inside a compiled step.
- `gaussian_blur`: one separable Gaussian blur of ``(N, H, W, C)`` batches with reflected
  borders, usable eagerly on numpy arrays and inside ``tf.function`` with tensor sigmas.
- `resize`: bilinear resize of map or image batches in TF.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import tensorflow as tf

#: Scale under which a map counts as constant (it then normalises to zeros, never NaN).
EPS = 1e-8
NORMALIZE_MODES = ("minmax", "positive", "absolute", "diverging")


def normalize(
    maps: np.ndarray,
    mode: str = "minmax",
    clip_percentile: float | None = None,
    warn_constant: bool = False,
) -> np.ndarray:
    """Normalises each map (over its last two axes) to [0, 1] (``diverging``: [-1, 1]).

    Args:
      maps: ``(H, W)`` or a batch ``(..., H, W)``. Not modified.
      mode: ``minmax`` (min -> 0, max -> 1), ``positive`` (negatives -> 0, max -> 1),
        ``absolute`` (|m| / max |m|), ``diverging`` (m / max |m|, sign kept).
      clip_percentile: clip values above this percentile of each map (and, for signed
        modes, below its mirror) before scaling; e.g. 99 tames single hot pixels.
      warn_constant: warn when a map is constant (it normalises to all zeros).

    Returns:
      float32 maps of the same shape; constant maps become zeros, never NaN.

    Raises:
      ValueError: for an unknown ``mode``, a ``clip_percentile`` outside (0, 100], or maps
        containing NaN or Inf.
    """
    if mode not in NORMALIZE_MODES:
        raise ValueError(f"mode must be one of {NORMALIZE_MODES}, got {mode!r}")
    m = np.asarray(maps, dtype=np.float32)
    if not np.all(np.isfinite(m)):
        raise ValueError("maps contain NaN or Inf; they cannot be normalised")
    axes = (-2, -1)
    if clip_percentile is not None:
        if not 0 < clip_percentile <= 100:
            raise ValueError("clip_percentile must be in (0, 100]")
        hi = np.percentile(m, clip_percentile, axis=axes, keepdims=True)
        lo = np.percentile(m, 100 - clip_percentile, axis=axes, keepdims=True)
        if mode == "minmax":
            m = np.clip(m, lo, hi)
        else:
            bound = np.percentile(np.abs(m), clip_percentile, axis=axes, keepdims=True)
            m = np.clip(m, -bound, bound)
    if mode == "minmax":
        m = m - m.min(axis=axes, keepdims=True)
        scale = m.max(axis=axes, keepdims=True)
    elif mode == "positive":
        m = np.maximum(m, 0)
        scale = m.max(axis=axes, keepdims=True)
    else:
        if mode == "absolute":
            m = np.abs(m)
        scale = np.abs(m).max(axis=axes, keepdims=True)
    constant = scale <= EPS
    if warn_constant and np.any(constant):
        count = int(np.sum(constant))
        warnings.warn(
            f"{count} map(s) are constant (e.g. all zero): they are shown as zeros. The target "
            "may not depend on the explained layer, or its evidence is all negative.",
            RuntimeWarning,
            stacklevel=3,
        )
    return np.where(constant, 0.0, m / np.maximum(scale, EPS)).astype(np.float32)


def normalize_tf(maps: Any) -> tf.Tensor:
    """Per-map min-max to [0, 1] over the last two axes, in TF (for compiled steps).

    Scale-free: a map is constant when its range is at most `EPS` times its peak ``max |m|``,
    so tiny but real maps (1e-11 on an untrained net) are kept. This equals
    ``normalize(maps / max|maps|)`` per map, which is what `Explainer` results hold. Constant
    maps (all zeros included) become zeros, never NaN.

    Args:
      maps: ``(..., H, W)`` float tensor or array (rank >= 2).

    Returns:
      float32 tensor of the same shape.
    """
    import tensorflow as tf

    m = tf.cast(tf.convert_to_tensor(maps), tf.float32)
    if m.shape.rank is not None and m.shape.rank < 2:
        raise ValueError(f"normalize_tf needs maps of rank >= 2 (..., H, W), got shape {m.shape}")
    axes = [-2, -1]
    peak = tf.reduce_max(tf.abs(m), axes, keepdims=True)
    m = m / tf.where(peak > 0, peak, tf.ones_like(peak))
    m = m - tf.reduce_min(m, axes, keepdims=True)
    scale = tf.reduce_max(m, axes, keepdims=True)
    constant = scale <= EPS
    return tf.where(constant, tf.zeros_like(m), m / tf.maximum(scale, EPS))


def _sigma_pair(sigma: Any) -> tf.Tensor:
    import tensorflow as tf

    if tf.is_tensor(sigma):
        static = tf.get_static_value(sigma)
    else:
        try:
            static = np.asarray(sigma, np.float64)
        except (TypeError, ValueError, NotImplementedError):  # e.g. a pair of graph tensors
            static, sigma = None, tf.stack([tf.cast(s, tf.float64) for s in sigma])
    if static is not None:
        values = np.asarray(static, np.float64)
        if values.ndim > 1 or values.size not in (1, 2):
            raise ValueError(
                f"sigma must be a number or a pair (sigma_y, sigma_x), got shape {values.shape}"
            )
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"sigma must be finite and >= 0, got {values.tolist()}")
        return tf.constant(np.broadcast_to(values.reshape(-1), (2,)), tf.float64)
    s = tf.cast(sigma, tf.float64)
    if s.shape.rank is not None and (s.shape.rank > 1 or s.shape.num_elements() not in (1, 2, None)):
        raise ValueError(f"sigma must be a number or a pair (sigma_y, sigma_x), got shape {s.shape}")
    s = tf.reshape(s, [-1])
    check = tf.debugging.assert_non_negative(s, message="gaussian_blur: sigma must be >= 0")
    with tf.control_dependencies([check]):
        return tf.broadcast_to(s, [2])


def gaussian_blur(x: Any, sigma: Any) -> tf.Tensor:
    """Separable Gaussian blur of an ``(N, H, W, C)`` batch with reflected borders.

    Works eagerly (numpy arrays or tensors in) and inside ``tf.function`` (tensor ``x`` of
    unknown height / width, tensor ``sigma``); always returns a tensor (call ``.numpy()``
    eagerly for an array).

    Kernel: taps ``exp(-t^2 / (2 sigma^2))`` for ``t`` in ``-r..r``, normalised to sum 1,
    with radius ``r = min(ceil(3 sigma), size - 1)`` per axis; ``sigma = 0`` (or an axis of
    size 1) leaves that axis unchanged.

    Border rule: the image is reflected about its edge pixel without repeating it
    (``d c b | a b c d | c b a``; OpenCV's ``BORDER_REFLECT_101``, numpy's ``"reflect"``,
    TF's ``"REFLECT"``). Reflection keeps the blur of a constant image constant and keeps
    border values from being pulled towards zero or towards a renormalised one-sided mean,
    which matters for fills and baselines that should look like the image. Reflection needs
    ``r <= size - 1``: hence the radius cap, which truncates (and renormalises) the kernel
    when ``3 sigma`` exceeds the image.

    Args:
      x: ``(N, H, W, C)`` float images (array or tensor). Not modified.
      sigma: standard deviation in pixels, ``>= 0``: a number, or a pair
        ``(sigma_y, sigma_x)``; a Python/numpy value or a (scalar or length-2) tensor.

    Returns:
      A tensor of ``x``'s shape, in ``x``'s float dtype (float32 for integer inputs).

    Raises:
      ValueError: ``x`` is not rank 4, or ``sigma`` is negative, non-finite or not a number
        or a pair (for tensor sigmas known only at run time, a negative value raises
        ``InvalidArgumentError`` then).
    """
    import tensorflow as tf

    x = tf.convert_to_tensor(x)
    if x.shape.rank is not None and x.shape.rank != 4:
        raise ValueError(
            f"gaussian_blur expects a batch (N, H, W, C), got shape {tuple(x.shape)}; add a "
            "batch axis (x[None]) or a channel axis (x[..., None])"
        )
    dtype = x.dtype if x.dtype.is_floating else tf.float32
    out = tf.cast(x, tf.float32)
    sigmas = _sigma_pair(sigma)
    channels = tf.shape(out)[-1]
    for axis in (1, 2):
        s = sigmas[axis - 1]
        radius = tf.cast(tf.math.ceil(3.0 * s), tf.int32)
        radius = tf.maximum(tf.minimum(radius, tf.shape(out)[axis] - 1), 0)
        t = tf.cast(tf.range(-radius, radius + 1), tf.float64)
        # float64 taps, like the numpy reference; radius 0 gives the single tap 1 (identity).
        taps = tf.exp(-0.5 * tf.square(t / tf.maximum(s, 1e-12)))
        taps = tf.cast(taps / tf.reduce_sum(taps), tf.float32)
        shape = [-1, 1, 1, 1] if axis == 1 else [1, -1, 1, 1]
        kernel = tf.tile(tf.reshape(taps, shape), tf.stack([1, 1, channels, 1]))
        pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pad[axis] = [radius, radius]
        out = tf.nn.depthwise_conv2d(
            tf.pad(out, pad, mode="REFLECT"), kernel, strides=[1, 1, 1, 1], padding="VALID"
        )
    return tf.cast(out, dtype)


def resize(x: Any, height: Any, width: Any, method: str = "bilinear") -> tf.Tensor:
    """Resizes a batch of maps ``(N, H, W)`` or images ``(N, H, W, C)`` to ``(height, width)``.

    Bilinear with half-pixel centres (like OpenCV's ``INTER_LINEAR`` and Keras's
    ``UpSampling2D(interpolation="bilinear")``), no antialiasing; usable inside ``tf.function``
    with tensor sizes. Returns float32.

    Args:
      x: ``(N, H, W)`` or ``(N, H, W, C)``.
      height, width: the output size (ints or scalar tensors).
      method: any ``tf.image.resize`` method name.
    """
    import tensorflow as tf

    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    rank = x.shape.rank
    if rank not in (3, 4):
        raise ValueError(
            f"resize expects maps (N, H, W) or images (N, H, W, C), got shape {tuple(x.shape)}"
        )
    size = tf.stack([tf.cast(height, tf.int32), tf.cast(width, tf.int32)])
    if rank == 3:
        return tf.image.resize(x[..., None], size, method=method)[..., 0]
    return tf.image.resize(x, size, method=method)
