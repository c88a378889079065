"""Objectives: what feature visualisation maximises, composable like lucid's.

An `Objective` is a weighted sum of terms. Each term reads one layer's activations (or the
model's logits) and returns one score per batch image; the optimisation loop maximises the
sum over the batch. Terms carry their arguments (channel indices, class ids, direction
vectors, weights) as arrays with one row per image, which the compiled step receives as
tensors: optimising other channels or classes of the same kind does not retrace.

A term asking for several channels or classes (``channel("conv", range(64))``) sets the batch
size: image ``i`` is optimised for channel ``i``. Terms with one value apply to every image.

Objectives are immutable: ``a + b``, ``a - b``, ``2.0 * a`` and ``-a`` return new objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Iterable, Sequence

import numpy as np

#: Marker for terms that read the model's logits instead of a layer.
LOGITS = "<logits>"


@dataclass(frozen=True)
class Term:
    """One scored quantity. ``layer`` is a layer spec (name, path, index, layer object) or
    `LOGITS`; ``data`` holds per-image arrays (first axis 1 or the batch size)."""

    kind: str
    layer: Any
    data: tuple[tuple[str, np.ndarray], ...]
    weight: float
    batch: int | None
    text: str

    def arrays(self) -> dict[str, np.ndarray]:
        return dict(self.data)


@dataclass(frozen=True)
class Objective:
    """A weighted sum of `Term` s, maximised by `tfvis.visualize`.

    Attributes:
      terms: the terms, in order.
      batch: the number of images the objective asks for (None: any number).
    """

    terms: tuple[Term, ...] = field(default_factory=tuple)

    @property
    def batch(self) -> int | None:
        sizes = {t.batch for t in self.terms if t.batch is not None}
        if len(sizes) > 1:
            raise ValueError(
                f"the objective's terms ask for different batch sizes {sorted(sizes)}: "
                "give every term the same number of channels/classes, or one value"
            )
        return sizes.pop() if sizes else None

    @property
    def description(self) -> str:
        parts = []
        for t in self.terms:
            if t.weight == 1.0:
                parts.append(t.text)
            elif t.weight == -1.0:
                parts.append(f"-{t.text}")
            else:
                parts.append(f"{t.weight:g} * {t.text}")
        return " + ".join(parts).replace("+ -", "- ") or "0"

    def __repr__(self) -> str:
        return f"Objective({self.description})"

    def _scaled(self, factor: float) -> Objective:
        return Objective(tuple(
            Term(t.kind, t.layer, t.data, t.weight * factor, t.batch, t.text) for t in self.terms
        ))

    def __add__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        out = Objective(self.terms + other.terms)
        out.batch  # noqa: B018 -- validates the batch sizes now, not at run time
        return out

    def __sub__(self, other: Objective) -> Objective:
        if not isinstance(other, Objective):
            return NotImplemented
        return self + other._scaled(-1.0)

    def __neg__(self) -> Objective:
        return self._scaled(-1.0)

    def __mul__(self, factor: float) -> Objective:
        if isinstance(factor, Objective) or not np.isscalar(factor):
            return NotImplemented
        return self._scaled(float(factor))

    __rmul__ = __mul__

    def __truediv__(self, factor: float) -> Objective:
        return self._scaled(1.0 / float(factor))

    def signature(self, paths: Sequence[str]) -> tuple:
        """What the compiled step depends on (kinds, resolved layers, array ranks): two
        objectives with the same signature share a trace."""
        return tuple(
            (t.kind, p, tuple((k, a.dtype.str, a.shape[1:]) for k, a in t.data))
            for t, p in zip(self.terms, paths)
        )

    def feeds(self, batch: int) -> list[list[np.ndarray]]:
        """Per term, its arrays broadcast to ``batch`` rows, and its weight (float32)."""
        out = []
        for t in self.terms:
            arrays = [np.broadcast_to(a, (batch,) + a.shape[1:]).copy() for _, a in t.data]
            arrays.append(np.float32(t.weight))
            out.append(arrays)
        return out


def _indices(values: int | Iterable[int], what: str) -> np.ndarray:
    if isinstance(values, (bool, np.bool_)):
        raise TypeError(f"{what} must be an int or a sequence of ints, not {values!r}")
    if isinstance(values, (int, np.integer)):
        return np.asarray([int(values)], np.int32)
    try:
        arr = np.asarray(list(values))
    except TypeError:
        raise TypeError(f"{what} must be an int or a sequence of ints, not {values!r}") from None
    if arr.ndim != 1 or arr.size == 0 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{what} must be an int or a non-empty sequence of ints, got {values!r}")
    if np.any(arr < 0):
        raise ValueError(f"{what} must be >= 0, got {arr.tolist()}")
    return arr.astype(np.int32)


def _layer_text(layer: Any) -> str:
    return repr(layer if isinstance(layer, (str, int)) else getattr(layer, "name", layer))


def _term(kind, layer, data: dict[str, np.ndarray], text: str, batch_from: str | None = None):
    batch = None
    if batch_from is not None and data[batch_from].shape[0] > 1:
        batch = int(data[batch_from].shape[0])
    return Objective((Term(kind, layer, tuple(data.items()), 1.0, batch, text),))


def _listing(arr: np.ndarray) -> str:
    values = arr.tolist()
    if len(values) == 1:
        return str(values[0])
    if values == list(range(values[0], values[0] + len(values))):
        return f"{values[0]}..{values[-1]}"
    return str(values) if len(values) <= 8 else f"[{len(values)} values]"


def class_logit(k: int | Iterable[int]) -> Objective:
    """The logit of class ``k`` (a final softmax/sigmoid is bypassed, as in the explainers).

    Args:
      k: a class index, or one per image (``range(4)``: image i maximises class i).
    """
    idx = _indices(k, "class k")
    return _term("class_logit", LOGITS, {"index": idx}, f"class_logit({_listing(idx)})", "index")


def class_logprob(k: int | Iterable[int]) -> Objective:
    """The log-probability of class ``k``: its logit minus the log-sum-exp of all logits.

    Unlike `class_logit`, raising it also lowers the other classes, so the image is
    classified as ``k`` (the logit alone can grow together with another class's).
    """
    idx = _indices(k, "class k")
    return _term("class_logprob", LOGITS, {"index": idx},
                 f"class_logprob({_listing(idx)})", "index")


def channel(layer: Any, c: int | Iterable[int]) -> Objective:
    """The mean activation of channel ``c`` of ``layer`` (over all positions).

    Args:
      layer: a layer name, ``"outer/inner"`` path, index or layer object.
      c: a channel, or one per image (``range(64)`` optimises 64 images, image i for
        channel i, in one run).
    """
    idx = _indices(c, "channel c")
    return _term("channel", layer, {"index": idx},
                 f"channel({_layer_text(layer)}, {_listing(idx)})", "index")


def neuron(layer: Any, c: int | Iterable[int], y: int | None = None,
           x: int | None = None) -> Objective:
    """The activation of channel ``c`` at one position (the centre unit by default).

    Args:
      layer: the layer (see `channel`).
      c: a channel, or one per image.
      y, x: the position in the layer's output; None means the centre (``size // 2``).
    """
    idx = _indices(c, "channel c")
    pos = np.asarray([[-1 if y is None else int(y), -1 if x is None else int(x)]], np.int32)
    where = "centre" if y is None and x is None else f"y={y}, x={x}"
    return _term("neuron", layer, {"index": idx, "position": pos},
                 f"neuron({_layer_text(layer)}, {_listing(idx)}, {where})", "index")


def layer_norm(layer: Any) -> Objective:
    """The mean squared activation of ``layer`` (DeepDream's objective)."""
    return _term("layer_norm", layer, {}, f"layer_norm({_layer_text(layer)})")


def direction(layer: Any, vector: Any) -> Objective:
    """The mean over positions of the dot product of ``layer``'s activations with ``vector``.

    Args:
      layer: the layer.
      vector: ``(C,)`` for every image, or ``(N, C)``, one direction per image.
    """
    vec = np.asarray(vector, np.float32)
    if vec.ndim == 1:
        vec = vec[None]
    if vec.ndim != 2 or vec.shape[1] == 0:
        raise ValueError(f"vector must have shape (C,) or (N, C), got {np.shape(vector)}")
    return _term("direction", layer, {"vector": vec},
                 f"direction({_layer_text(layer)})", "vector")


def diversity(layer: Any) -> Objective:
    """Penalises similar images across the batch (lucid's diversity term).

    Each image scores minus the mean cosine similarity of its ``layer`` Gram matrix to those
    of the other images; add it, weighted, to a batched objective:
    ``channel("conv", [3] * 4) + 0.5 * diversity("conv")``.
    """
    return _term("diversity", layer, {}, f"diversity({_layer_text(layer)})")


def _per_image(values: Any, what: str, rank: int | None = None) -> np.ndarray:
    arr = np.asarray(values, np.float32)
    if rank is not None and arr.ndim == rank - 1:
        arr = arr[None]
    if arr.ndim < 2 or arr.shape[0] == 0 or (rank is not None and arr.ndim != rank):
        want = "one row per image" if rank is None else f"rank {rank - 1} or {rank}"
        raise ValueError(f"{what} must be per-image arrays ({want}), got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{what} contain NaN or infinite values")
    return arr


def feature_match(layer: Any, targets: Any, normalize: bool = True) -> Objective:
    """Minus the squared distance of ``layer``'s activations to ``targets`` (feature
    inversion, Mahendran & Vedaldi 2015; the content loss of style transfer).

    Image ``i`` scores ``-s_i * ||Phi(x_i) - Phi0_i||^2`` with ``s_i = 1 / ||Phi0_i||^2``
    (``normalize=True``: a relative error, the same for every layer's scale) or ``1 / 2``
    (Gatys et al.'s content loss). The targets are step inputs: matching other images'
    features of the same shape reuses the compiled step.

    Args:
      layer: the layer (see `channel`).
      targets: ``Phi0``, the layer's activations to match with their batch axis:
        ``(N, ...)`` one per image, or ``(1, ...)`` for every image.
      normalize: divide by ``||Phi0||^2`` (an all-zero target is divided by 1 instead).
    """
    arr = _per_image(targets, "feature_match targets")
    if normalize:
        norm = np.square(arr.astype(np.float64)).reshape(len(arr), -1).sum(1)
        scale = (1.0 / np.where(norm > 0, norm, 1.0)).astype(np.float32)
    else:
        scale = np.full(len(arr), 0.5, np.float32)
    batch = f"{len(arr)} targets" if len(arr) > 1 else "1 target"
    return _term("feature_match", layer, {"target": arr, "scale": scale},
                 f"feature_match({_layer_text(layer)}, {batch})", "target")


def gram_match(layer: Any, grams: Any) -> Objective:
    """Minus Gatys et al.'s style loss of one layer: ``-E = -sum (G / M - A)^2 / (4 C^2)``.

    ``G`` is the Gram matrix of ``layer``'s activations (C channels, M positions) and ``A``
    the target's Gram matrix divided by its own number of positions
    (`tfvis.featurevis.style.gram_matrix` with ``normalize=True``), so for images of one size
    this is exactly ``E_l = sum (G - A)^2 / (4 C^2 M^2)``, and a style image of another size
    is matched by its per-position statistics.

    Args:
      layer: the layer.
      grams: ``(N, C, C)`` one per image, or ``(C, C)`` for every image; symmetrised
        (``(A + A^T) / 2``: a Gram matrix is symmetric, and the loss's gradient then is too).
    """
    arr = _per_image(grams, "gram_match grams", rank=3)
    if arr.shape[1] != arr.shape[2]:
        raise ValueError(f"gram_match grams must be square (C, C) matrices, got {arr.shape}")
    arr = ((arr + np.swapaxes(arr, 1, 2)) / 2).astype(arr.dtype)
    return _term("gram_match", layer, {"gram": arr}, f"gram_match({_layer_text(layer)})", "gram")


def gram_sums(act, symmetric: bool = False):
    """``(N, C, C)``: ``sum_positions act_c * act_d`` of activations ``(N, ..., C)``.

    Its gradient is one matmul, ``F (dG + dG^T)`` (G is symmetric), where TensorFlow's
    matmul gradient takes two (~25% less time for a Gram matrix and its gradient on a CPU).
    ``symmetric=True`` promises that the incoming gradient ``dG`` is symmetric (a loss of
    ``G - A`` with a symmetric ``A``, as `gram_match` makes it) and takes ``2 F dG``: no
    transpose of ``dG`` (oneDNN's transpose of small matrices costs as much as a Gram matrix of
    a small layer).
    """
    import tensorflow as tf

    @tf.custom_gradient
    def gram(flat):
        def grad(dg):
            return tf.matmul(flat, 2.0 * dg if symmetric else dg + tf.transpose(dg, [0, 2, 1]))

        return tf.matmul(flat, flat, transpose_a=True), grad

    act = tf.cast(act, tf.float32)
    return gram(tf.reshape(act, [tf.shape(act)[0], -1, tf.shape(act)[-1]]))


# -- evaluation (inside the compiled step) -----------------------------------------------------


def evaluate(kind: str, act, arrays: Sequence[Any]):
    """Scores ``(N,)`` of one term on activations ``act`` (``(N, ..., C)``)."""
    import tensorflow as tf

    act = tf.cast(act, tf.float32)
    rank = act.shape.rank
    axes = list(range(1, rank - 1))
    if kind in ("class_logit", "channel"):
        onehot = tf.one_hot(arrays[0], tf.shape(act)[-1], dtype=tf.float32)
        pooled = tf.reduce_mean(act, axes) if axes else act
        return tf.reduce_sum(pooled * onehot, -1)
    if kind == "class_logprob":
        onehot = tf.one_hot(arrays[0], tf.shape(act)[-1], dtype=tf.float32)
        return tf.reduce_sum(tf.nn.log_softmax(act, -1) * onehot, -1)
    if kind == "direction":
        vec = tf.cast(arrays[0], tf.float32)
        pooled = tf.reduce_mean(act, axes) if axes else act
        return tf.reduce_sum(pooled * vec, -1)
    if kind == "neuron":
        onehot = tf.one_hot(arrays[0], tf.shape(act)[-1], dtype=tf.float32)
        if rank == 4:
            size = tf.shape(act)[1:3]
            pos = arrays[1]
            pos = tf.where(pos < 0, size[None] // 2, pos)
            unit = tf.gather_nd(act, pos, batch_dims=1)  # (N, C)
        elif rank == 2:
            unit = act
        else:
            raise ValueError(f"neuron needs a rank-2 or rank-4 layer output, got rank {rank}")
        return tf.reduce_sum(unit * onehot, -1)
    if kind == "layer_norm":
        return tf.reduce_mean(tf.square(act), list(range(1, rank)))
    if kind == "diversity":
        n = tf.shape(act)[0]
        flat = tf.reshape(act, [n, -1, tf.shape(act)[-1]])
        gram = tf.matmul(flat, flat, transpose_a=True)
        gram = tf.math.l2_normalize(tf.reshape(gram, [n, -1]), -1)
        sim = tf.matmul(gram, gram, transpose_b=True)
        others = tf.reduce_sum(sim, -1) - tf.linalg.diag_part(sim)
        return -others / tf.maximum(tf.cast(n - 1, tf.float32), 1.0)
    if kind == "feature_match":
        diff = act - tf.cast(arrays[0], tf.float32)
        return -arrays[1] * tf.reduce_sum(tf.square(diff), list(range(1, rank)))
    if kind == "gram_match":
        positions = tf.cast(tf.reduce_prod(tf.shape(act)[1:-1]), tf.float32)
        channels = tf.cast(tf.shape(act)[-1], tf.float32)
        # the targets are symmetric (`gram_match`), so d loss / d G is too
        diff = gram_sums(act, symmetric=True) / positions - tf.cast(arrays[0], tf.float32)
        return -tf.reduce_sum(tf.square(diff), [1, 2]) / (4.0 * channels * channels)
    raise ValueError(f"unknown objective term {kind!r}")
