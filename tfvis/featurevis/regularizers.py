"""Regularisers: penalties subtracted from the objective, and pixel edits between steps.

Penalties (`L1`, `L2`, `TotalVariation`, `AlphaNorm`) are functions of the display-space
image ``(N, H, W, C)`` in [0, 1] returning one value per image, ``weight`` times the sum over
the image (so ``S(I) - L2(lam)`` has its optimum at ``w / (2 lam)`` for ``S(I) = w . I``).

Pixel edits (`Blur`, `ClipNorm`, `ClipContribution`, Yosinski et al. 2015) run every
``every`` steps on the image and need ``param="pixel"``. "Clipping" a pixel sets it to
``center`` (grey by default), the value a mean-subtracted image has at 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def _sum(x):
    import tensorflow as tf

    return tf.reduce_sum(x, list(range(1, x.shape.rank)))


def _closed_form(img, value_and_grad):
    """``value`` ``(N,)`` of ``value_and_grad(img) -> (value, d sum(value) / d img)``, with
    that closed-form gradient: one pass of element-wise kernels where autodiff builds the
    slices' and powers' gradients op by op (~1.5x the time, as much as a tenth of a small
    CNN's step)."""
    import tensorflow as tf

    @tf.custom_gradient
    def penalty(x):
        value, grad = value_and_grad(x)

        def backward(g):
            return tf.reshape(g, [-1] + [1] * (x.shape.rank - 1)) * grad

        return value, backward

    return penalty(img)


def _power(x, k: int):
    """``x ** k`` for an integer ``k >= 0`` as products (square and multiply): pow's exp/log
    is several times dearer, and it needs no special case at 0."""
    import tensorflow as tf

    out, base = None, x
    while k:
        if k & 1:
            out = base if out is None else out * base
        k >>= 1
        if k:
            base = base * base
    return tf.ones_like(x) if out is None else out


@dataclass(frozen=True)
class L1:
    """``weight * sum |I - center|``."""

    weight: float = 1e-3
    center: float = 0.0

    def penalty(self, img):
        import tensorflow as tf

        return self.weight * _sum(tf.abs(img - self.center))


@dataclass(frozen=True)
class L2:
    """``weight * sum (I - center)^2`` (Simonyan et al.'s ``lambda ||I||^2`` at center 0)."""

    weight: float = 1e-3
    center: float = 0.0

    def penalty(self, img):
        import tensorflow as tf

        return self.weight * _sum(tf.square(img - self.center))


@dataclass(frozen=True)
class AlphaNorm:
    """``weight * sum |I - center|^alpha`` (Mahendran & Vedaldi; alpha = 6 keeps pixels in
    range without an L2's pull on every pixel)."""

    weight: float = 1e-6
    alpha: float = 6.0
    center: float = 0.5

    def penalty(self, img):
        import tensorflow as tf

        a = float(self.alpha)

        def value_and_grad(x):
            d = x - self.center
            m = tf.abs(d)
            if a.is_integer() and 1 <= a <= 16:
                below = _power(m, int(a) - 1)  # |d|^(a-1)
                value = below * m
            else:
                below = tf.pow(m, a - 1.0)
                value = tf.pow(m, a)
            return self.weight * _sum(value), (self.weight * a) * below * tf.sign(d)

        return _closed_form(img, value_and_grad)


@dataclass(frozen=True)
class TotalVariation:
    """``weight * sum_ij ((I[i,j+1] - I[i,j])^2 + (I[i+1,j] - I[i,j])^2)^(beta / 2)``.

    Mahendran & Vedaldi's ``TV^beta`` over the pixels with both a right and a lower
    neighbour, summed over channels; beta = 1 is the classic (isotropic) total variation,
    beta = 2 its smooth square. A small ``eps`` inside the root keeps beta < 2 differentiable
    at flat regions (0 for beta >= 2); ``eps^(beta / 2)`` is subtracted per pixel, so a
    constant image has a total variation of exactly 0.
    """

    weight: float = 1e-3
    beta: float = 2.0
    eps: float = 1e-8

    def penalty(self, img):
        import tensorflow as tf

        half = self.beta / 2.0
        eps = self.eps if self.beta < 2 else 0.0

        def value_and_grad(x):
            dx = x[:, :-1, 1:, :] - x[:, :-1, :-1, :]
            dy = x[:, 1:, :-1, :] - x[:, :-1, :-1, :]
            sq = tf.square(dx) + tf.square(dy)
            if self.beta == 2.0:
                value, slope = sq, 2.0 * self.weight
            else:
                floor = tf.pow(tf.zeros_like(sq) + eps, half)  # same rounding as sq = 0
                value = tf.pow(sq + eps, half) - floor
                # d/d sq; 0 where sq + eps = 0 (beta < 2 without eps: a subgradient, no NaN)
                slope = tf.where(sq + eps > 0, (2.0 * self.weight * half) *
                                 tf.pow(tf.maximum(sq + eps, 1e-30), half - 1.0), 0.0)
            gx, gy = slope * dx, slope * dy
            pad = [[0, 0], [0, 1], [0, 1], [0, 0]]
            grad = (tf.pad(gx, [[0, 0], [0, 1], [1, 0], [0, 0]]) - tf.pad(gx + gy, pad)
                    + tf.pad(gy, [[0, 0], [1, 0], [0, 1], [0, 0]]))
            return self.weight * _sum(value), grad

        return _closed_form(img, value_and_grad)


def total_variation_np(img: np.ndarray, beta: float = 2.0, eps: float = 0.0) -> np.ndarray:
    """Numpy reference of `TotalVariation` (weight 1) per image (for tests and checks)."""
    img = np.asarray(img, np.float64)
    dx = img[:, :-1, 1:, :] - img[:, :-1, :-1, :]
    dy = img[:, 1:, :-1, :] - img[:, :-1, :-1, :]
    return ((dx**2 + dy**2 + eps) ** (beta / 2) - eps ** (beta / 2)).sum(axis=(1, 2, 3))


@dataclass(frozen=True)
class Blur:
    """Gaussian blur of the image every ``every`` steps (Yosinski et al.)."""

    sigma: float = 0.5
    every: int = 4

    needs_grad = False

    def edit(self, img, grad):
        from tfvis.engine.imageops import gaussian_blur

        return gaussian_blur(img, self.sigma)


@dataclass(frozen=True)
class ClipNorm:
    """Sets pixels whose colour norm ``||I - center||`` is below the ``percentile`` of the
    image to ``center``, every ``every`` steps."""

    percentile: float = 10.0
    every: int = 1
    center: float = 0.5

    needs_grad = False

    def edit(self, img, grad):
        return _clip_small(img, _norm(img - self.center), self.percentile, self.center)


@dataclass(frozen=True)
class ClipContribution:
    """Sets pixels whose contribution ``|sum_c (I - center) * dS/dI|`` is below the
    ``percentile`` of the image to ``center``, every ``every`` steps."""

    percentile: float = 10.0
    every: int = 1
    center: float = 0.5

    needs_grad = True

    def edit(self, img, grad):
        import tensorflow as tf

        contribution = tf.abs(tf.reduce_sum((img - self.center) * grad, -1))
        return _clip_small(img, contribution, self.percentile, self.center)


def _norm(x):
    import tensorflow as tf

    return tf.sqrt(tf.reduce_sum(tf.square(x), -1))


def _clip_small(img, score, percentile: float, center: float):
    """Pixels (``score`` (N, H, W)) below the per-image percentile become ``center``."""
    import tensorflow as tf

    n = tf.shape(score)[0]
    flat = tf.sort(tf.reshape(score, [n, -1]), -1)
    count = tf.shape(flat)[1]
    k = tf.cast(tf.round(percentile / 100.0 * tf.cast(count - 1, tf.float32)), tf.int32)
    threshold = flat[:, k][:, None, None]
    keep = tf.cast(score >= threshold, img.dtype)[..., None]
    return img * keep + center * (1.0 - keep)


def split(regularizers) -> tuple[list, list]:
    """``(penalties, edits)`` from a list of regulariser objects."""
    penalties, edits = [], []
    for r in regularizers or ():
        if hasattr(r, "penalty"):
            penalties.append(r)
        elif hasattr(r, "edit"):
            if int(r.every) < 1:
                raise ValueError(f"{type(r).__name__}.every must be >= 1, got {r.every}")
            edits.append(r)
        else:
            raise TypeError(
                f"{r!r} is not a regulariser: use L1, L2, TotalVariation, AlphaNorm, Blur, "
                "ClipNorm or ClipContribution from tfvis.featurevis.regularizers"
            )
    return penalties, edits
