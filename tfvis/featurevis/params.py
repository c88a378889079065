"""Parameterisations: free variables -> images in display space [0, 1].

* `Pixel`: one variable per pixel, squashed into [0, 1] by a sigmoid (``squash="sigmoid"``) or
  kept as it is and clipped to [0, 1] after every step (``squash="clip"``: projected gradient
  ascent, Simonyan's and DeepDream's setting).
* `Fourier`: lucid's 1/f-scaled spectrum with decorrelated colour: a real FFT spectrum per
  channel, scaled by ``1 / max(f, 1 / max(H, W))^decay``, inverse-transformed, mixed by a
  colour correlation matrix (ImageNet's by default, or `color_decorrelation` of your own
  images) and squashed by a sigmoid.

Each parameterisation also inverts itself (`Pixel.from_images`, `Fourier.from_images`), so
optimisation can start from given images (multifaceted starts, DeepDream). `renderer` is the
image function the compiled loop calls (XLA-compiled for Fourier images on a CPU).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

#: lucid's square root of ImageNet's colour covariance (columns: decorrelated components).
IMAGENET_COLOR_SQRT = np.asarray(
    [[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]], np.float32
)
_EPS = 1e-4


def color_decorrelation(images: Any) -> np.ndarray:
    """The colour mixing matrix for `Fourier`, computed from ``images`` ``(N, H, W, 3)``.

    The square root of the pixels' colour covariance (eigen-decomposition), normalised like
    lucid's ImageNet constant (its largest column norm is 1). Pass the result as
    ``Fourier(color=...)``.

    Raises:
      ValueError: not a batch of 3-channel images, or too few pixels to estimate it.
    """
    arr = np.asarray(images, np.float64)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise ValueError(f"color_decorrelation needs (N, H, W, 3) images, got {arr.shape}")
    flat = arr.reshape(-1, 3)
    if flat.shape[0] < 4:
        raise ValueError("color_decorrelation needs at least 4 pixels")
    cov = np.cov(flat, rowvar=False)
    vals, vecs = np.linalg.eigh(cov)
    sqrt = vecs @ np.diag(np.sqrt(np.maximum(vals, 0.0)))
    norm = np.max(np.linalg.norm(sqrt, axis=0))
    if norm <= 0:
        raise ValueError("the images have no colour variation; use the default matrix")
    return (sqrt / norm).astype(np.float32)


def _logit(x: np.ndarray) -> np.ndarray:
    x = np.clip(np.asarray(x, np.float64), _EPS, 1 - _EPS)
    return np.log(x / (1 - x))


@dataclass(frozen=True)
class Pixel:
    """Plain pixels.

    Attributes:
      squash: ``"sigmoid"`` (image = sigmoid(v), always in (0, 1)) or ``"clip"`` (image = v,
        clipped to [0, 1] after each step).
      init_std: standard deviation of the random start around grey (0.5).
    """

    squash: str = "sigmoid"
    init_std: float = 0.01

    def __post_init__(self):
        if self.squash not in ("sigmoid", "clip"):
            raise ValueError(f"Pixel squash must be 'sigmoid' or 'clip', got {self.squash!r}")

    name = "pixel"

    def variable_shape(self, batch: int, h: int, w: int, c: int) -> tuple[int, ...]:
        return (batch, h, w, c)

    def random(self, rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
        noise = rng.normal(0.0, self.init_std, (h, w, c))
        if self.squash == "sigmoid":
            return noise.astype(np.float32)
        return np.clip(0.5 + noise, 0, 1).astype(np.float32)

    def from_images(self, images: np.ndarray) -> np.ndarray:
        if self.squash == "sigmoid":
            return _logit(images).astype(np.float32)
        return np.clip(images, 0, 1).astype(np.float32)

    def image(self, v, h: int, w: int, c: int):
        import tensorflow as tf

        return tf.sigmoid(v) if self.squash == "sigmoid" else v

    def project(self, v):
        """Applied to the variable after every step."""
        import tensorflow as tf

        return tf.clip_by_value(v, 0.0, 1.0) if self.squash == "clip" else v

    def to_variable(self, images):
        """Inverse of `image` inside the graph (for regularisers that edit the image)."""
        import tensorflow as tf

        if self.squash == "sigmoid":
            x = tf.clip_by_value(images, _EPS, 1 - _EPS)
            return tf.math.log(x / (1 - x))
        return images


def _freqs(h: int, w: int) -> np.ndarray:
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    return np.sqrt(fx * fx + fy * fy)


@dataclass(frozen=True)
class Fourier:
    """lucid's Fourier parameterisation with decorrelated colour.

    Attributes:
      decay: the spectrum is scaled by ``1 / f^decay`` (1: natural-image statistics).
      color: a 3x3 colour mixing matrix (`color_decorrelation`), None for ImageNet's; only
        used for 3-channel images.
      init_std: standard deviation of the random spectrum.
    """

    decay: float = 1.0
    color: Any = None
    init_std: float = 0.01

    name = "fourier"

    def _scale(self, h: int, w: int) -> np.ndarray:
        scale = 1.0 / np.maximum(_freqs(h, w), 1.0 / max(h, w)) ** self.decay
        return (scale * np.sqrt(h * w)).astype(np.float32)

    def _color(self, c: int) -> np.ndarray | None:
        if c != 3:
            return None
        m = IMAGENET_COLOR_SQRT if self.color is None else np.asarray(self.color, np.float32)
        if m.shape != (3, 3):
            raise ValueError(f"Fourier color must be a 3x3 matrix, got shape {m.shape}")
        return m

    def variable_shape(self, batch: int, h: int, w: int, c: int) -> tuple[int, ...]:
        return (batch, 2, c, h, w // 2 + 1)

    def random(self, rng: np.random.Generator, h: int, w: int, c: int) -> np.ndarray:
        return rng.normal(0.0, self.init_std, (2, c, h, w // 2 + 1)).astype(np.float32)

    def image(self, v, h: int, w: int, c: int, phase=None):
        """The images of spectra ``v``; ``phase``, `Fourier.phase`'s ``(cos, sin)`` of a
        shift, shifts each image circularly: a phase ramp on the spectrum, exact and nearly
        free, since a Fourier image is periodic."""
        import tensorflow as tf

        scale = tf.constant(self._scale(h, w))
        re, im = v[:, 0] * scale, v[:, 1] * scale
        if phase is not None:
            cos, sin = phase
            re, im = re * cos - im * sin, re * sin + im * cos
        spectrum = tf.complex(re, im)  # (N, C, H, W//2+1)
        img = tf.signal.irfft2d(spectrum, fft_length=[h, w])
        img = tf.transpose(img, (0, 2, 3, 1)) / 4.0
        color = self._color(c)
        if color is not None:
            img = tf.einsum("nhwc,dc->nhwd", img, tf.constant(color))
        return tf.sigmoid(img)

    @staticmethod
    def phase(shift, h: int, w: int):
        """``(cos, sin)`` ``(N, 1, H, W//2+1)`` of the phase ramp ``exp(2 pi i (fy dy + fx
        dx))`` that shifts images by ``shift`` ``(N, 2)`` (integer rows, columns: ``out[y, x] =
        image[y + dy, x + dx]``, indices modulo the side): the product of a row and a column
        phase (sines of N (H + W//2+1) angles, not of N H (W//2+1))."""
        import tensorflow as tf

        fy = tf.constant(np.fft.fftfreq(h).astype(np.float32))[:, None]
        fx = tf.constant(np.fft.rfftfreq(w).astype(np.float32))[None, :]
        shift = tf.reshape(tf.cast(shift, tf.float32), [-1, 2, 1, 1])
        rows = (2 * np.pi) * fy * shift[:, 0]  # (N, H, 1)
        cols = (2 * np.pi) * fx * shift[:, 1]  # (N, 1, W//2+1)
        cy, sy, cx, sx = tf.cos(rows), tf.sin(rows), tf.cos(cols), tf.sin(cols)
        return (cy * cx - sy * sx)[:, None], (sy * cx + cy * sx)[:, None]

    def from_images(self, images: np.ndarray) -> np.ndarray:
        images = np.asarray(images, np.float64)
        _, h, w, c = images.shape
        t = _logit(images)
        color = self._color(c)
        if color is not None:
            t = np.einsum("nhwd,cd->nhwc", t, np.linalg.inv(color.astype(np.float64)))
        spectrum = np.fft.rfft2(np.transpose(t * 4.0, (0, 3, 1, 2)), s=(h, w))
        spectrum = spectrum / self._scale(h, w)
        return np.stack([spectrum.real, spectrum.imag], 1).astype(np.float32)

    def project(self, v):
        return v

    def to_variable(self, images):
        raise ValueError(
            "blur and clipping regularisers edit pixels between steps, which the Fourier "
            "parameterisation cannot do; use param='pixel' with them"
        )


#: Fourier images of at least this many pixels are rendered by XLA on a CPU (`renderer`).
XLA_MIN_PIXELS = 64 * 64


def renderer(param, h: int, w: int, c: int, device: str = "") -> "Renderer":
    """The image function the compiled steps call: ``render(v)``, and ``render(v, shift)``
    for `Fourier`'s circular shifts.

    On a CPU (``device``: the variable's device string), for Fourier images of at least
    `XLA_MIN_PIXELS` pixels, the rendering and its gradient run as one XLA cluster
    (``Renderer.xla``): the scale, a shift's phase ramp, inverse real FFT, colour mixing and
    sigmoid fused, 2-2.4x less CPU time than TensorFlow's kernels op by op (64 images,
    forward + backward: ~9 ms instead of ~22 ms at 64x64, ~42 ms instead of ~100 ms at
    128x128; see benchmarks/featurevis.md). Compiling costs ~0.5 s of CPU once per batch
    shape, which a batch of such images earns back within tens of steps; smaller images keep
    the plain kernels. The choice depends on the image size only, never on the batch, so an
    image does not depend on the batch it is optimised in; XLA on a CPU is deterministic, so
    the same seed still gives bitwise identical images. Elsewhere (GPU: cuFFT) and for `Pixel`
    (one sigmoid) it is the plain function.
    """
    import tensorflow as tf

    def image(v, phase=None):
        if phase is None:
            return param.image(v, h, w, c)
        return param.image(v, h, w, c, phase=phase)

    if isinstance(param, Fourier) and h * w >= XLA_MIN_PIXELS and "CPU" in device.upper():
        fn = tf.function(image, jit_compile=True, autograph=False, reduce_retracing=True)
        return Renderer(fn, param, h, w, xla=True)
    return Renderer(image, param, h, w, xla=False)


@dataclass(frozen=True)
class Renderer:
    """`renderer`'s ``(v, shift=None) -> images``.

    A shift's phase-ramp tables (`Fourier.phase`) are made before the rendering and passed
    in: inside an XLA cluster, XLA would fuse the sines into the spectrum's loop and
    recompute them for every element (~20 ms of CPU more for 64 images of 128x128).

    Attributes:
      fn: ``(v, phase=None) -> images``.
      xla: whether ``fn`` is XLA-compiled.
    """

    fn: Callable[..., Any]
    param: Any
    h: int
    w: int
    xla: bool

    def __call__(self, v, shift=None):
        if shift is None:
            return self.fn(v)
        return self.fn(v, self.param.phase(shift, self.h, self.w))


def get(param: Any):
    """``"pixel"``, ``"fourier"`` or a parameterisation object."""
    if isinstance(param, (Pixel, Fourier)):
        return param
    if param == "pixel":
        return Pixel()
    if param == "fourier":
        return Fourier()
    raise ValueError(
        f"unknown parameterisation {param!r}: use 'pixel', 'fourier', "
        "tfvis.featurevis.params.Pixel(...) or tfvis.featurevis.params.Fourier(...)"
    )
