"""Random transforms for robust visualisations: jitter, scale, rotate, roll.

Each transform is a small frozen description; `apply` composes all of them into one
resampling of the batch inside the compiled step (``tf.raw_ops.ImageProjectiveTransformV3``,
one op whatever their number; two when `Roll` is combined with `Scale` / `Rotate`). Their
randomness comes in as ``draws``: uniform numbers ``(N, NUM_DRAWS)`` per step, drawn on the
host from each image's own seeded generator, so an image's transforms depend on its seed only
(not on the batch it is optimised in).

* `Jitter` alone (or with `Roll`) is an exact integer shift (nearest-neighbour sampling at
  integer coordinates). With `Scale` / `Rotate` the resampling is bilinear.
* Borders are reflected half-sample symmetrically (``d c b a | a b c d | d c b a``, TF's
  ``REFLECT`` fill mode: the edge pixel is repeated).
* `Roll` shifts with wrap-around by up to the whole image (DeepDream's random roll, which
  hides tile seams), exactly; combined with `Scale` / `Rotate` the roll is applied first and
  the other transforms then reflect at the borders of the rolled image.
* `Fourier` images are periodic: integer shifts alone (`Jitter`, `Roll`, `only_shifts`) shift
  them circularly, as a phase ramp on the spectrum inside the rendering (`circular_shift`; no
  resampling, nearly free). With `Scale` / `Rotate` they go through the one resampling above.

The gradient is the op's registered one: the inverse warp of the incoming gradient (one op,
as cheap as the forward). For integer shifts it is exact away from the borders; for scale /
rotate it is the usual approximation of the bilinear adjoint (as in lucid), not the exact
adjoint (a scatter-add, several times slower on a CPU).
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


def _warp(img, transforms, interpolation: str, fill_mode: str):
    """One ``ImageProjectiveTransformV3`` per batch: ``transforms`` ``(N, 8)`` maps output to
    input coordinates (x, y). Its registered gradient is the inverse warp (one more op)."""
    import tensorflow as tf

    return tf.raw_ops.ImageProjectiveTransformV3(
        images=img, transforms=transforms, output_shape=tf.shape(img)[1:3],
        fill_value=tf.constant(0.0, tf.float32), interpolation=interpolation,
        fill_mode=fill_mode)


def _translation(ty, tx):
    """Flat transforms for output (y, x) <- input (y + ty, x + tx)."""
    import tensorflow as tf

    one, zero = tf.ones_like(ty), tf.zeros_like(ty)
    return tf.stack([one, zero, tx, zero, one, ty, zero, zero], axis=1)


def only_shifts(transforms: Sequence) -> bool:
    """Whether ``transforms`` are integer shifts only (`Jitter`, `Roll`), with at least one."""
    return bool(transforms) and all(isinstance(t, (Jitter, Roll)) for t in transforms)


def _shifts(draws, transforms: Sequence, h: int, w: int):
    """Per-image jitter ``(ty, tx)`` and roll ``(ry, rx)`` (None without `Roll`) from
    ``draws``; a roll is taken in [-side/2, side/2), within one period of the image (where
    TF's WRAP mode is exact)."""
    import tensorflow as tf

    ty = tx = tf.zeros_like(draws[:, 0])
    roll = None
    for t in transforms:
        if isinstance(t, Jitter):
            ty = tf.round((draws[:, 0] * 2 - 1) * t.pixels)
            tx = tf.round((draws[:, 1] * 2 - 1) * t.pixels)
        elif isinstance(t, Roll):
            ry, rx = tf.floor(draws[:, 4] * h), tf.floor(draws[:, 5] * w)
            roll = (tf.where(ry >= h / 2.0, ry - h, ry), tf.where(rx >= w / 2.0, rx - w, rx))
    return (ty, tx), roll


def circular_shift(draws, transforms: Sequence, h: int, w: int):
    """``(N, 2)`` integer shifts (rows, columns) of `only_shifts` transforms, wrapping around:
    what `Fourier` images get as a phase ramp instead of a resampling."""
    import tensorflow as tf

    (ty, tx), roll = _shifts(draws, transforms, h, w)
    if roll is not None:
        ty, tx = ty + roll[0], tx + roll[1]
    return tf.stack([ty, tx], axis=1)


def apply(img, draws, transforms: Sequence):
    """Transforms ``img`` ``(N, H, W, C)`` with per-image parameters from ``draws``."""
    import tensorflow as tf

    if not transforms:
        return img
    h, w = img.shape[1], img.shape[2]
    cy, cx = (h - 1) / 2.0, (w - 1) / 2.0
    (ty, tx), roll = _shifts(draws, transforms, h, w)
    scale = angle = None
    for t in transforms:
        if isinstance(t, Scale):
            scale = t.low + draws[:, 2] * (t.high - t.low)
        elif isinstance(t, Rotate):
            angle = (draws[:, 3] * 2 - 1) * (t.degrees * np.pi / 180.0)
    if roll is not None:
        if scale is None and angle is None:  # integer shifts only: one exact warp
            return _warp(img, _translation(ty + roll[0], tx + roll[1]), "NEAREST", "WRAP")
        img = _warp(img, _translation(*roll), "NEAREST", "WRAP")
    if scale is None and angle is None:
        return _warp(img, _translation(ty, tx), "NEAREST", "REFLECT")
    angle = tf.zeros_like(ty) if angle is None else angle
    scale = tf.ones_like(ty) if scale is None else scale
    cos, sin = tf.cos(angle) / scale, tf.sin(angle) / scale
    # input y = cos (y - cy) - sin (x - cx) + cy + ty, input x = sin (y - cy) + cos (x - cx)
    # + cx + tx: a rotation by the angle and a zoom about the centre, then the jitter
    zero = tf.zeros_like(cos)
    flat = tf.stack([cos, sin, cx - cos * cx - sin * cy + tx,
                     -sin, cos, cy + sin * cx - cos * cy + ty, zero, zero], axis=1)
    return _warp(img, flat, "BILINEAR", "REFLECT")
