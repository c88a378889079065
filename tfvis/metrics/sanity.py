"""Sanity checks for saliency maps (Adebayo et al. 2018): model-parameter randomisation.

A faithful explanation depends on the weights: randomising the network from the top layer down
should change the maps. `SanityCheck` explains the images with the original weights, then with
more and more layers randomised (``"cascading"``) or one layer at a time (``"independent"``),
and measures how similar each step's maps are to the original ones.

Every step runs on a **copy** of the model (``keras.models.clone_model`` + the user's weights);
the explainer factory only ever sees the copy, so the user's model and its weights stay bitwise
untouched, also when the factory or an explainer raises half-way.

Similarities (all numpy, no scipy; SSIM's blur uses OpenCV, imported when it runs):
  * ``values`` / ``spearman_abs``: Spearman rank correlation of the absolute maps (Pearson of
    ranks, average ranks for ties); a constant map has no ranking and scores 0.
  * ``spearman``: the same on the signed maps.
  * ``ssim``: structural similarity (Wang et al. 2004: Gaussian window sigma 1.5, truncated at
    radius 5, ``K1 = 0.01``, ``K2 = 0.03``) of the absolute maps, each min-max normalised to
    [0, 1].
  * ``hog``: Pearson correlation of HOG features of the normalised absolute maps (numpy:
    central-difference gradients, 9 unsigned orientation bins, cells of 8 px or less on small
    maps, each cell's histogram L2-normalised, no block normalisation).

Maps compared are the explainer's ``raw`` values at their own resolution: ``(N, H, W)`` as is;
pixel-space ``(N, H, W, C)`` gradients are reduced over channels by max ``|.|`` (the absolute
map, as `Explanation.maps`) and by the sum (the signed map).
"""

from __future__ import annotations

import zlib
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from tfvis.metrics.result import MetricResult

if TYPE_CHECKING:  # pragma: no cover
    import keras

MODES = ("cascading", "independent")
# weight name -> the layer attributes that may hold its initialiser, in order of preference
_INITIALIZER_ALIASES = {
    "kernel": ("kernel_initializer", "depthwise_initializer"),
    "depthwise_kernel": ("depthwise_initializer",),
    "pointwise_kernel": ("pointwise_initializer",),
    "embeddings": ("embeddings_initializer",),
}


# ----------------------------------------------------------------------------------- similarity
def rank(x: np.ndarray) -> np.ndarray:
    """Ranks (1-based) of the flattened ``x``, ties given their average rank."""
    _, inverse, counts = np.unique(np.ravel(x), return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.ravel()]


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    """Pearson correlation of the flattened arrays; 0.0 when either is constant."""
    a = np.ravel(a).astype(np.float64)
    b = np.ravel(b).astype(np.float64)
    a = a - a.mean()
    b = b - b.mean()
    den = np.sqrt(np.dot(a, a) * np.dot(b, b))
    return float(np.dot(a, b) / den) if den > 0 else 0.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman rank correlation: Pearson of average ranks; 0.0 when either is constant."""
    return pearson(rank(a), rank(b))


def _unit(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, np.float64)
    lo, hi = x.min(), x.max()
    return (x - lo) / (hi - lo) if hi > lo else np.zeros_like(x)


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    """Mean SSIM of two 2-D maps in [0, 1] (data range 1; Gaussian window, sigma 1.5)."""
    import cv2  # deferred: computation modules must not load OpenCV at import

    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    if a.shape != b.shape or a.ndim != 2:
        raise ValueError(f"ssim compares two 2-D maps of one shape, got {a.shape} and {b.shape}")

    def blur(x):
        return cv2.GaussianBlur(x, (11, 11), 1.5, borderType=cv2.BORDER_REFLECT)

    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a ** 2
    var_b = blur(b * b) - mu_b ** 2
    cov = blur(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
         / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
    return float(s.mean())


def hog(x: np.ndarray, cell: int = 8, bins: int = 9) -> np.ndarray:
    """HOG features of a 2-D map: per-cell histograms of unsigned gradient orientation.

    Cells are ``cell`` px (shrunk to fit at least 2x2 cells on small maps), weighted by the
    gradient magnitude; each cell's histogram is L2-normalised.
    """
    x = np.asarray(x, np.float64)
    h, w = x.shape
    cell = max(1, min(cell, h // 2, w // 2))
    gy, gx = np.gradient(x) if min(h, w) > 1 else (np.zeros_like(x), np.zeros_like(x))
    magnitude = np.hypot(gx, gy)
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    b = np.minimum((angle / np.pi * bins).astype(np.int64), bins - 1)
    ny, nx = h // cell, w // cell
    cy = np.minimum(np.arange(h) // cell, ny - 1)[:, None].repeat(w, 1)
    cx = np.minimum(np.arange(w) // cell, nx - 1)[None, :].repeat(h, 0)
    hist = np.zeros((ny, nx, bins))
    np.add.at(hist, (cy, cx, b), magnitude)
    norm = np.sqrt((hist ** 2).sum(axis=-1, keepdims=True) + 1e-12)
    return (hist / norm).ravel()


def _planes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(absolute, signed) ``(N, H, W)`` maps from an explainer's raw values."""
    raw = np.asarray(raw, np.float64)
    if raw.ndim == 4:
        return np.abs(raw).max(axis=-1), raw.sum(axis=-1)
    if raw.ndim == 3:
        return np.abs(raw), raw
    raise ValueError(f"explanations must be (N, H, W) or (N, H, W, C), got shape {raw.shape}")


def compare(original: np.ndarray, randomised: np.ndarray) -> dict[str, np.ndarray]:
    """Per-image similarities of two batches of raw maps (see the module docstring).

    Returns:
      ``{"spearman_abs", "spearman", "ssim", "hog"}`` -> float ``(N,)``.
    """
    if np.shape(original) != np.shape(randomised):
        raise ValueError(f"the randomised model's maps have shape {np.shape(randomised)}, the "
                         f"original ones {np.shape(original)}: the explainer must return maps "
                         "of one shape for both")
    a_abs, a_sig = _planes(original)
    b_abs, b_sig = _planes(randomised)
    out = {k: np.empty(len(a_abs)) for k in ("spearman_abs", "spearman", "ssim", "hog")}
    for i in range(len(a_abs)):
        ua, ub = _unit(a_abs[i]), _unit(b_abs[i])
        out["spearman_abs"][i] = spearman(a_abs[i], b_abs[i])
        out["spearman"][i] = spearman(a_sig[i], b_sig[i])
        out["ssim"][i] = ssim(ua, ub)
        out["hog"][i] = pearson(hog(ua), hog(ub))
    return out


# -------------------------------------------------------------------------------- randomisation
def weighted_layers(model: keras.Model) -> list[tuple[str, Any]]:
    """``(path, layer)`` of the layers holding weights, in call order (bottom first).

    Nested models are entered (their layers get ``"outer/inner"`` paths), so a transfer
    learning base is randomised layer by layer; a layer shared by several call sites is listed
    once.
    """
    out: list[tuple[str, Any]] = []
    seen: set[int] = set()

    def walk(m, prefix):
        for layer in m.layers:
            if id(layer) in seen:
                continue
            seen.add(id(layer))
            path = f"{prefix}{layer.name}"
            if hasattr(layer, "layers") and getattr(layer, "layers", None):
                walk(layer, path + "/")
            elif layer.weights:
                out.append((path, layer))

    walk(model, "")
    return out


def _seed_of(*parts: int) -> int:
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1)[0] & 0x7FFFFFFF)


def randomize_layer(layer: Any, seed: int) -> None:
    """Re-initialises every weight of ``layer`` (a layer of a **copy**), seeded.

    Each weight gets a fresh draw from the layer's own initialiser for it (``kernel`` ->
    ``kernel_initializer``, ...; a random initialiser is rebuilt with a seed derived from
    ``seed`` and the weight's position, so a constant initialiser such as a zero bias gives its
    constant back). A weight with no initialiser found gets a seeded normal with mean 0 and the
    weight's current standard deviation.
    """
    import keras

    for k, variable in enumerate(layer.weights):
        name = variable.name.split("/")[-1].split(":")[0]
        init = None
        for attr in (f"{name}_initializer",) + _INITIALIZER_ALIASES.get(name, ()):
            init = getattr(layer, attr, None)
            if init is not None:
                break
        shape = tuple(variable.shape)
        dtype = keras.backend.standardize_dtype(variable.dtype)
        s = _seed_of(seed, k)
        if isinstance(init, keras.initializers.Initializer):
            config = init.get_config()
            if "seed" in config:
                config["seed"] = s
            value = np.asarray(type(init).from_config(config)(shape, dtype=dtype))
        else:
            current = np.asarray(variable.numpy(), np.float64)
            value = np.random.default_rng(s).normal(0.0, current.std(), shape)
        variable.assign(np.asarray(value).astype(dtype))


def copy_model(model: keras.Model) -> keras.Model:
    """A structural copy of ``model`` holding copies of its weights (the model is only read)."""
    import keras

    try:
        copy = keras.models.clone_model(model)
    except Exception as err:  # noqa: BLE001 - Keras raises many types here
        raise ValueError(
            f"SanityCheck works on a copy of the model and keras.models.clone_model could not "
            f"copy {getattr(model, 'name', model)!r} ({type(err).__name__}: {err}); build the "
            "model as a functional or Sequential model, or give subclassed layers get_config"
        ) from err
    weights = model.get_weights()
    try:
        copy.set_weights(weights)
    except Exception as err:  # noqa: BLE001
        raise ValueError(
            f"the copy of {model.name!r} does not take its weights ({err}); build the model "
            "(call it on data or give it an Input) before the sanity check"
        ) from err
    return copy


# ------------------------------------------------------------------------------------ the metric
class SanityCheck:
    """Adebayo et al. 2018's model-parameter randomisation test.

    Example:
      >>> check = tfvis.metrics.SanityCheck(lambda m: tfvis.GradCAM(m, verbose=0), model)
      >>> result = check(images)
      >>> result.values          # mean rank correlation per step, top layer first
      >>> result.extras["layers"]
      >>> tfvis.plotting.sanity_curves(result)

    Args:
      explainer_factory: ``factory(model_copy)`` -> an explainer (anything called as
        ``explainer(images, targets=...)`` returning an `Explanation` or a raw map array). It is
        called once per step, always on the copy, never on ``model``.
      model: the Keras model to check; only read.
      mode: ``"cascading"`` (step k randomises the top k layers) or ``"independent"`` (step k
        randomises only the k-th layer from the top).
      seed: seeds the re-initialisation; None means 0 (reproducible by default, as every random
        tfvis method). A layer's random weights depend only on the seed and its path: the
        same in both modes and whatever ``layers`` selects.
      layers: None for every layer with weights; an int for the top that many; or the layer
        paths to randomise (``"outer/inner"`` inside nested models), in any order (they are run
        top first).
    """

    def __init__(self, explainer_factory: Callable[[Any], Any], model: keras.Model,
                 mode: str = "cascading", seed: int | None = None,
                 layers: int | Sequence[str] | None = None) -> None:
        if not callable(explainer_factory):
            raise TypeError(f"explainer_factory must be callable as factory(model) -> explainer, "
                            f"got {type(explainer_factory).__name__}")
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.factory = explainer_factory
        self.model = model
        self.mode = mode
        self.seed = 0 if seed is None else int(seed)
        self.layers = layers

    def __repr__(self) -> str:
        return f"SanityCheck(mode={self.mode!r}, seed={self.seed}, layers={self.layers!r})"

    def _order(self, copy: keras.Model) -> list[tuple[str, Any]]:
        """The copy's layers to randomise, top first."""
        found = weighted_layers(copy)[::-1]
        if not found:
            raise ValueError(f"model {self.model.name!r} has no layer with weights to randomise")
        chosen = self.layers
        if chosen is None:
            return found
        if isinstance(chosen, (int, np.integer)):
            if chosen < 1:
                raise ValueError(f"layers must be >= 1 (the top that many), got {chosen}")
            return found[:int(chosen)]
        names = [str(c) for c in chosen]
        paths = [p for p, _ in found]
        unknown = [n for n in names if n not in paths]
        if unknown:
            raise ValueError(f"layers {unknown} are not layers with weights of "
                             f"{self.model.name!r}; choose from {paths}")
        return [(p, layer) for p, layer in found if p in names]

    def __call__(self, images: Any, targets: Any = None) -> MetricResult:
        """Runs the randomisation steps on ``images``.

        Args:
          images: what the explainer takes (a batch of images).
          targets: what to explain; None explains the original model's top-1 class, and that
            same class is explained at every step (so randomisation does not change the target;
            an explainer returning a plain array instead of an `Explanation` has no resolved
            targets, and then None is passed at every step).

        Returns:
          `MetricResult` named ``"sanity_check"``: ``values`` (S,) the mean Spearman rank
          correlation of absolute maps per step (top layer first, the unrandomised start
          excluded); ``curves`` (N, S) the same per image; extras ``layers`` (the layer path
          randomised at each step), ``mode``, ``seed``, ``spearman`` / ``ssim`` / ``hog`` (S,)
          means and ``*_per_image`` (S, N) arrays for all four similarities.
        """
        copy = copy_model(self.model)
        try:
            start = copy.get_weights()
            order = self._order(copy)
            first = self._explain(copy, images, targets)
            fixed = targets if targets is not None else self._resolved(first, targets)
            original = self._raw(first)
            rows: list[dict[str, np.ndarray]] = []
            for k, (path, layer) in enumerate(order):
                if self.mode == "independent" and k:
                    copy.set_weights(start)  # cascading keeps the layers above randomised
                randomize_layer(layer, _seed_of(self.seed, zlib.crc32(path.encode())))
                rows.append(compare(original, self._raw(self._explain(copy, images, fixed))))
        finally:
            del copy
        per_image = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
        extras = {
            "layers": tuple(p for p, _ in order),
            "mode": self.mode,
            "seed": self.seed,
            **{k: v.mean(axis=1) for k, v in per_image.items() if k != "spearman_abs"},
            **{f"{k}_per_image": v for k, v in per_image.items()},
        }
        return MetricResult("sanity_check", per_image["spearman_abs"].mean(axis=1),
                            curves=per_image["spearman_abs"].T, extras=MappingProxyType(extras))

    def _explain(self, copy: keras.Model, images: Any, targets: Any) -> Any:
        explainer = self.factory(copy)
        return explainer(images, targets=targets)

    @staticmethod
    def _raw(result: Any) -> np.ndarray:
        raw = getattr(result, "raw", result)
        return np.asarray(raw, np.float64)

    @staticmethod
    def _resolved(result: Any, targets: Any) -> Any:
        resolved = getattr(result, "targets", None)
        return resolved if resolved is not None else targets
