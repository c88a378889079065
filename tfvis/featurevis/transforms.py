"""Random transforms for robust visualisations: jitter, scale, rotate, roll.

Each transform is a small frozen description; `apply` composes all of them into one
resampling per image inside the compiled step (bilinear, borders reflected), so their cost
is one gather whatever their number. Their randomness comes in as ``draws``: uniform numbers
``(N, NUM_DRAWS)`` per step, drawn on the host from each image's own seeded generator, so an
image's transforms depend on its seed only (not on the batch it is optimised in).

`Roll` shifts with wrap-around by up to the whole image (DeepDream's random roll, which
hides tile seams); the others reflect at the borders.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

#: Uniform numbers drawn per image and step: jitter y, x, scale, angle, roll y, x.
NUM_DRAWS = 6


@dataclass(frozen=True)
class Jitter:
    """Integer translation by up to ``pixels`` in each direction."""

    pixels: int = 4


@dataclass(frozen=True)
class Scale:
    """Zoom by a factor uniform in ``[low, high]`` about the centre."""

    low: float = 0.95
    high: float = 1.05


@dataclass(frozen=True)
class Rotate:
    """Rotation by an angle uniform in ``[-degrees, degrees]`` about the centre."""

    degrees: float = 5.0


@dataclass(frozen=True)
class Roll:
    """Integer translation with wrap-around, uniform over the whole image."""


def standard(size: int) -> tuple:
    """lucid-like defaults for an image of side ``size``: jitter, scale, rotate, jitter."""
    return (Jitter(max(1, size // 32)), Scale(0.95, 1.05), Rotate(5.0))


def check(transforms) -> tuple:
    out = tuple(transforms or ())
    kinds = [type(t) for t in out]
    for t in out:
        if not isinstance(t, (Jitter, Scale, Rotate, Roll)):
            raise TypeError(
                f"{t!r} is not a transform: use Jitter, Scale, Rotate or Roll from "
                "tfvis.featurevis.transforms"
            )
    dup = {k.__name__ for k in kinds if kinds.count(k) > 1}
    if dup:
        raise ValueError(f"each transform may appear once, got several {sorted(dup)}")
    return out


def _reflect(i, n):
    import tensorflow as tf

    period = tf.maximum(2 * (n - 1), 1)
    m = tf.math.floormod(i, period)
    return tf.where(m >= n, period - m, m)


def apply(img, draws, transforms: Sequence):
    """Transforms ``img`` ``(N, H, W, C)`` with per-image parameters from ``draws``."""
    import tensorflow as tf

    if not transforms:
        return img
    n, h, w = tf.shape(img)[0], img.shape[1], img.shape[2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    ty = tx = tf.zeros([n])
    scale = tf.ones([n])
    angle = tf.zeros([n])
    roll = None
    for t in transforms:
        if isinstance(t, Jitter):
            ty = tf.round((draws[:, 0] * 2 - 1) * t.pixels)
            tx = tf.round((draws[:, 1] * 2 - 1) * t.pixels)
        elif isinstance(t, Scale):
            scale = t.low + draws[:, 2] * (t.high - t.low)
        elif isinstance(t, Rotate):
            angle = (draws[:, 3] * 2 - 1) * (t.degrees * np.pi / 180.0)
        elif isinstance(t, Roll):
            roll = (tf.floor(draws[:, 4] * h), tf.floor(draws[:, 5] * w))
    yy, xx = tf.meshgrid(tf.range(h, dtype=tf.float32) - cy,
                         tf.range(w, dtype=tf.float32) - cx, indexing="ij")
    cos, sin = (tf.cos(angle) / scale)[:, None, None], (tf.sin(angle) / scale)[:, None, None]
    sy = cos * yy[None] - sin * xx[None] + cy + ty[:, None, None]
    sx = sin * yy[None] + cos * xx[None] + cx + tx[:, None, None]
    exact = not any(isinstance(t, (Scale, Rotate)) for t in transforms)
    flat = tf.reshape(img, [n, h * w, -1])

    def gather(iy, ix):
        if roll is not None:
            iy = tf.math.floormod(iy + tf.cast(roll[0], tf.int32)[:, None, None], h)
            ix = tf.math.floormod(ix + tf.cast(roll[1], tf.int32)[:, None, None], w)
        idx = tf.reshape(_reflect(iy, h) * w + _reflect(ix, w), [n, h * w])
        return tf.reshape(tf.gather(flat, idx, batch_dims=1), tf.shape(img))

    if exact:
        return gather(tf.cast(tf.round(sy), tf.int32), tf.cast(tf.round(sx), tf.int32))
    y0, x0 = tf.floor(sy), tf.floor(sx)
    fy, fx = (sy - y0)[..., None], (sx - x0)[..., None]
    y0, x0 = tf.cast(y0, tf.int32), tf.cast(x0, tf.int32)
    top = gather(y0, x0) * (1 - fx) + gather(y0, x0 + 1) * fx
    bottom = gather(y0 + 1, x0) * (1 - fx) + gather(y0 + 1, x0 + 1) * fx
    return top * (1 - fy) + bottom * fy
