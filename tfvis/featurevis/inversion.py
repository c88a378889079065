"""Feature inversion by optimisation (Mahendran & Vedaldi, CVPR 2015).

What does a layer keep of an image? Find the image whose features at that layer are those of
the original, under a natural-image prior:

    x* = argmin_x ||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + lambda_alpha R_alpha(x)
                                                     + lambda_tv R_TV^beta(x)

with the paper's normalisation of the regularisers, so the same lambdas suit every layer:
``R_alpha(x) = sum |x - 1/2|^alpha / (H W B^alpha)`` and
``R_TV^beta(x) = TV^beta(x) / (H W V^beta)``, where ``B`` is the typical pixel deviation
from the mean (the paper's B = 80 for 8-bit pixels: 80 / 255 in display units) and
``V = B / 6.5`` the typical difference between neighbouring pixels.

Everything runs on the one optimisation loop (`loop.Visualizer`): the feature term is the
`objectives.feature_match` objective (its targets are step inputs, so other images of the
same shape reuse the compiled step), the regularisers are `regularizers.AlphaNorm` and
`regularizers.TotalVariation`, the parameterisation is plain pixels and there are no random
transforms. Images are optimised in display space [0, 1]; the model's input convention
(``input_range`` / ``preprocess``) is applied inside the graph. The two priors have
closed-form gradients (`regularizers`): by autodiff, op by op, they cost as much as a step of
a small CNN.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from tfvis.featurevis import objectives as obj_lib
from tfvis.featurevis import params as params_lib
from tfvis.featurevis import regularizers as reg_lib
from tfvis.featurevis.loop import ShapeVisualizers, Visualizer, image_seeds, score_images
from tfvis.featurevis.result import Visualization

#: Mahendran & Vedaldi's typical pixel deviation B = 80 (8-bit, mean subtracted), in [0, 1].
BOUND = 80.0 / 255.0
#: Their typical neighbour difference V = B / 6.5, as a fraction of B.
VARIATION_RATIO = 1.0 / 6.5


def prior(
    height: int,
    width: int,
    *,
    alpha: float = 6.0,
    beta: float = 2.0,
    lambda_alpha: float = 1e-5,
    lambda_tv: float = 1e-3,
    bound: float = BOUND,
) -> list[Any]:
    """The normalised regularisers ``lambda_alpha R_alpha + lambda_tv R_TV^beta``.

    Args:
      height, width: the image size (the regularisers are means over pixels).
      alpha: exponent of the alpha-norm (around grey, 0.5).
      beta: exponent of the total variation (2: smooth, 1: edge preserving).
      lambda_alpha, lambda_tv: their weights (0 drops a term).
      bound: ``B`` in display units; ``V = B / 6.5``.

    Returns:
      `regularizers.AlphaNorm` / `regularizers.TotalVariation` objects for a `Visualizer`.
    """
    for name, value in (("alpha", alpha), ("beta", beta), ("bound", bound)):
        if not float(value) > 0:
            raise ValueError(f"{name} must be > 0, got {value}")
    for name, value in (("lambda_alpha", lambda_alpha), ("lambda_tv", lambda_tv)):
        if not float(value) >= 0:
            raise ValueError(f"{name} must be >= 0, got {value}")
    pixels = float(height * width)
    variation = float(bound) * VARIATION_RATIO
    out: list[Any] = []
    if lambda_alpha:
        out.append(reg_lib.AlphaNorm(float(lambda_alpha) / (pixels * float(bound) ** alpha),
                                     float(alpha), 0.5))
    if lambda_tv:
        out.append(reg_lib.TotalVariation(float(lambda_tv) / (pixels * variation ** beta),
                                          float(beta)))
    return out


def check_images(images: Any, model, what: str = "images") -> np.ndarray:
    """``(N, H, W, C)`` float32 images in [0, 1] the model can take (one image gets a batch
    axis), or a ValueError naming the problem."""
    arr = np.array(images, np.float32)  # a copy: results never alias the caller's array
    if arr.ndim == 3:
        arr = arr[None]
    if arr.ndim != 4 or min(arr.shape) < 1:
        raise ValueError(f"{what} must be (H, W, C) or (N, H, W, C) images, got shape "
                         f"{np.shape(images)}")
    if not np.all(np.isfinite(arr)) or arr.min() < 0 or arr.max() > 1:
        raise ValueError(f"{what} must be finite and in [0, 1] (display space): scale them "
                         "(e.g. / 255.0) and give the model's range with input_range= or "
                         "preprocess=")
    want = tuple(model.inputs[0].shape[1:]) if model.inputs else ()
    if len(want) == 3:
        fits = all(w is None or int(w) == int(g) for w, g in zip(want, arr.shape[1:]))
        if not fits:
            raise ValueError(f"model {model.name!r} takes images of shape {want}, but {what} "
                             f"have shape {arr.shape[1:]}: resize them (e.g. "
                             "tfvis.engine.imageops.resize) or give them the model's channels")
    return arr


def layer_features(vis: Visualizer, images: np.ndarray, paths: Sequence[str],
                   batch_size: int = 64) -> dict[str, np.ndarray]:
    """Float32 activations at ``paths`` of ``images`` in [0, 1], under ``vis``'s input
    convention (range, preprocess), computed ``batch_size`` images at a time."""
    import tensorflow as tf

    from tfvis.surgery.graph import capture

    parts: dict[str, list[np.ndarray]] = {p: [] for p in paths}
    for i in range(0, len(images), int(batch_size)):
        x = vis._to_model(tf.constant(images[i:i + int(batch_size)]))
        got = capture(vis.model, x, list(parts))
        for p in parts:
            parts[p].append(np.asarray(tf.cast(got[p], tf.float32)))
    return {p: np.concatenate(v) for p, v in parts.items()}


@dataclass(frozen=True)
class Inversion:
    """Reconstructions of images from one or several layers' features.

    Attributes:
      images: float32 ``(L, N, H, W, C)`` in [0, 1]: layer ``l``'s reconstruction of
        image ``n``.
      originals: float32 ``(N, H, W, C)``: the inverted images.
      layers: the resolved layer paths, in order.
      values: float32 ``(L, steps, N)``: minus the relative squared feature error
        ``||Phi(x) - Phi_0||^2 / ||Phi_0||^2`` at each step.
      losses: float32 ``(L, steps, N)``: what was minimised (feature term plus priors).
      feature_error: float32 ``(L, N)``: ``||Phi(x*) - Phi_0|| / ||Phi_0||`` of the result.
      seeds: the start image's seed, per image.
    """

    images: np.ndarray
    originals: np.ndarray
    layers: tuple[str, ...]
    values: np.ndarray
    losses: np.ndarray
    feature_error: np.ndarray
    seeds: tuple[int, ...]

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, layer: str | int) -> np.ndarray:
        """The ``(N, H, W, C)`` reconstructions of one layer (its path, or its position)."""
        if isinstance(layer, (int, np.integer)) and not isinstance(layer, bool):
            return self.images[int(layer)]
        if layer in self.layers:
            return self.images[self.layers.index(layer)]
        raise KeyError(f"no reconstruction for layer {layer!r}; layers: {list(self.layers)}")

    def psnr(self) -> np.ndarray:
        """``(L, N)``: each reconstruction's PSNR in dB against its original (range 1)."""
        err = np.mean((self.images.astype(np.float64) - self.originals[None]) ** 2, (2, 3, 4))
        return (10.0 * np.log10(1.0 / np.maximum(err, 1e-12))).astype(np.float32)

    def figure(self, size: float = 1.6):
        """Images x layers: each row an original and its reconstruction from every layer
        (`tfvis.plotting.featurevis.reconstructions`)."""
        from tfvis.plotting.featurevis import reconstructions

        return reconstructions(self.originals, self.images, self.layers, size=size)


class Inverter:
    """Inverts images at one or several layers of a model, reusing compiled steps.

    One `Visualizer` per image size; each layer has its own compiled step, shared by every
    later call on images of that size (the targets are step inputs): inverting other images
    does not retrace (`traces`).

    Args:
      model: a functional or Sequential Keras model (nested models allowed). Never modified.
      layer: a layer (name, ``"outer/inner"`` path, index, layer object) or a list of them.
      alpha, beta, lambda_alpha, lambda_tv, bound: the prior (see `prior`).
      param: ``"pixel"`` (default: pixels clipped to [0, 1], the paper's projected
        gradient) or a `params` object (``params.Pixel("sigmoid")``, ``"fourier"``).
      learning_rate: the default Adam's.
      optimizer: a `keras.optimizers.Optimizer` (its config is copied); default Adam.
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
    """

    def __init__(
        self,
        model,
        layer: Any,
        *,
        alpha: float = 6.0,
        beta: float = 2.0,
        lambda_alpha: float = 1e-5,
        lambda_tv: float = 1e-3,
        bound: float = BOUND,
        param: Any = "pixel",
        learning_rate: float = 0.05,
        optimizer: Any = None,
        input_range: tuple[float, float] | None = None,
        preprocess: Callable[[Any], Any] | None = None,
    ) -> None:
        from tfvis.surgery.layers import require_built, require_graph, resolve_layer

        require_graph(model, "Feature inversion")
        require_built(model)
        specs = list(layer) if isinstance(layer, (list, tuple)) else [layer]
        if not specs:
            raise ValueError("layer is an empty list: give at least one layer to invert")
        self.model = model
        self.layers = tuple(dict.fromkeys(resolve_layer(model, s).path for s in specs))
        self.prior = dict(alpha=alpha, beta=beta, lambda_alpha=lambda_alpha,
                          lambda_tv=lambda_tv, bound=bound)
        prior(8, 8, **self.prior)  # validates now, not at the first call
        self.param = params_lib.Pixel("clip", 0.1) if param == "pixel" else params_lib.get(param)
        self.options = dict(learning_rate=learning_rate, optimizer=optimizer,
                            input_range=input_range, preprocess=preprocess)
        self._visualizers = ShapeVisualizers(self._make_visualizer)

    def _make_visualizer(self, shape: tuple[int, ...]) -> Visualizer:
        penalties = prior(shape[0], shape[1], **self.prior)
        return Visualizer(self.model, image_shape=shape, param=self.param,
                          regularizers=penalties,
                          transforms=(), **self.options)

    def visualizer(self, shape: Sequence[int]) -> Visualizer:
        """The `Visualizer` of images of ``shape`` ``(H, W, C)`` (made once)."""
        return self._visualizers.get(shape)

    @property
    def traces(self) -> int:
        """How many times compiled steps were traced (for retracing checks)."""
        return self._visualizers.traces

    def features(self, images: Any) -> dict[str, np.ndarray]:
        """``Phi_0``: each layer's activations (float32) for ``images`` in [0, 1]."""
        arr = check_images(images, self.model)
        return layer_features(self.visualizer(arr.shape[1:]), arr, self.layers)

    def run(
        self,
        images: Any,
        *,
        steps: int = 200,
        seed: int | Sequence[int] | None = None,
        verbose: int = 1,
    ) -> Inversion:
        """Reconstructs ``images`` from each layer's features.

        Args:
          images: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1].
          steps: optimisation steps per layer.
          seed: the start noise of image i uses ``seed + i`` (None means 0), or one seed per
            image; every layer starts from the same noise. Same seeds give bitwise identical
            reconstructions.
          verbose: 1 shows a progress bar per layer, 0 is quiet.

        Returns:
          An `Inversion`.
        """
        arr = check_images(images, self.model)
        seeds = image_seeds(seed, len(arr))
        vis = self.visualizer(arr.shape[1:])
        targets = self.features(arr)
        runs: list[Visualization] = []
        errors = []
        for path in self.layers:
            objective = obj_lib.feature_match(path, targets[path])
            run = vis.run(objective, steps=steps, batch=len(arr), seed=seeds, verbose=verbose)
            runs.append(run)
            rel = -score_images(self.model, objective, run.images,
                                input_range=self.options["input_range"],
                                preprocess=self.options["preprocess"])
            errors.append(np.sqrt(np.maximum(rel, 0.0)))
        return Inversion(
            np.stack([r.images for r in runs]), arr, self.layers,
            np.stack([r.values for r in runs]), np.stack([r.losses for r in runs]),
            np.stack(errors).astype(np.float32), seeds,
        )


def invert(
    model,
    layer: Any,
    images: Any,
    *,
    alpha: float = 6.0,
    beta: float = 2.0,
    lambda_alpha: float = 1e-5,
    lambda_tv: float = 1e-3,
    steps: int = 200,
    seed: int | Sequence[int] | None = None,
    bound: float = BOUND,
    param: Any = "pixel",
    learning_rate: float = 0.05,
    optimizer: Any = None,
    input_range: tuple[float, float] | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    verbose: int = 1,
) -> Inversion:
    """Reconstructs images from a layer's features (Mahendran & Vedaldi 2015).

    Minimises ``||Phi(x) - Phi_0||^2 / ||Phi_0||^2 + lambda_alpha R_alpha(x) +
    lambda_tv R_TV^beta(x)`` from seeded noise, with the regularisers normalised by the
    image's typical range and pixel count (`prior`), so the same lambdas suit every layer.

    Args:
      model: a functional or Sequential Keras model, nested models allowed; never modified.
      layer: a layer name, ``"outer/inner"`` path, index or layer object, or a list of them
        (one reconstruction per layer, in one call).
      images: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1].
      alpha: the alpha-norm's exponent (6: keeps pixels in range).
      beta: the total variation's exponent (2: smooth; 1: sharper edges).
      lambda_alpha, lambda_tv: the normalised regularisers' weights (0 turns one off).
      steps: optimisation steps per layer.
      seed: start noise of image i from ``seed + i`` (None means 0), or one seed per image.
      bound: the typical pixel deviation ``B`` in [0, 1] units (the paper's 80 / 255).
      param: ``"pixel"`` (clipped pixels) or a `tfvis.featurevis.params` object.
      learning_rate: the default Adam's.
      optimizer: a `keras.optimizers.Optimizer` (its config is copied); default Adam.
      input_range, preprocess: the model's input convention (see `tfvis.visualize`).
      verbose: 1 shows a progress bar per layer, 0 is quiet.

    Returns:
      An `Inversion`: ``images`` ``(L, N, H, W, C)`` in [0, 1], ``inversion[layer]``,
      per-step ``values`` / ``losses``, ``feature_error`` per image, ``psnr()`` and
      ``figure()`` (images x layers).

    Note:
      To invert more images without recompiling, keep an `Inverter` and call its ``run``.
    """
    inverter = Inverter(model, layer, alpha=alpha, beta=beta, lambda_alpha=lambda_alpha,
                        lambda_tv=lambda_tv, bound=bound, param=param,
                        learning_rate=learning_rate, optimizer=optimizer,
                        input_range=input_range, preprocess=preprocess)
    return inverter.run(images, steps=steps, seed=seed, verbose=verbose)
