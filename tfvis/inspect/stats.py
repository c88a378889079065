"""Per-layer, per-channel statistics of activations and their gradients over a dataset.

Streamed with constant memory: each chunk's compiled step reduces every image to per-channel
``(min, max, mean, M2, zeros, positives, saturated)`` (so padded rows are trimmed by the runner
like any per-sample output) and the host merges them with Chan et al.'s parallel variance
formula in float64. Dead channels are never positive on the data; saturated units sit at a
bound of a bounded activation (sigmoid, tanh, hard sigmoid, softsign, ReLU6).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvis.inspect.activations import (
    activation_chunks,
    gradient_chunks,
    layer_source,
    resolve_layers,
)
from tfvis.surgery import layer_table

_STATS = ("min", "max", "mean", "std", "zeros")
#: activation name -> (low, high) bounds of its output
_BOUNDS = {"sigmoid": (0.0, 1.0), "hard_sigmoid": (0.0, 1.0), "tanh": (-1.0, 1.0),
           "softsign": (-1.0, 1.0), "relu6": (0.0, 6.0)}


def _bounds(op: Any) -> tuple[float, float] | None:
    act = getattr(op, "activation", None)
    name = getattr(act, "__name__", None) or (act if isinstance(act, str) else None)
    if name is None and isinstance(op, keras.layers.ReLU) and op.max_value is not None:
        return (0.0, float(op.max_value))
    return _BOUNDS.get(name)


class _Running:
    """Per-channel running statistics of one tensor (float64 merge)."""

    def __init__(self) -> None:
        self.n = 0
        self.min = self.max = self.mean = self.m2 = self.zeros = self.positive = None
        self.saturated = None

    def add(self, mn, mx, mean, m2, zeros, positive, saturated, units: int) -> None:
        """Merges per-image reductions ``(B, C)`` (each image has ``units`` values per channel)."""
        mn, mx = mn.min(0), mx.max(0)
        b = len(mean) * units
        c_mean = mean.mean(0)  # equal counts per image
        c_m2 = m2.sum(0) + units * ((mean - c_mean) ** 2).sum(0)
        if self.n == 0:
            self.min, self.max, self.mean, self.m2 = mn, mx, c_mean, c_m2
            self.zeros, self.positive = zeros.sum(0), positive.sum(0)
            self.saturated = saturated.sum(0)
        else:
            total = self.n + b
            delta = c_mean - self.mean
            self.mean = self.mean + delta * b / total
            self.m2 = self.m2 + c_m2 + delta ** 2 * self.n * b / total
            self.min, self.max = np.minimum(self.min, mn), np.maximum(self.max, mx)
            self.zeros = self.zeros + zeros.sum(0)
            self.positive = self.positive + positive.sum(0)
            self.saturated = self.saturated + saturated.sum(0)
        self.n += b

    def result(self) -> dict[str, np.ndarray]:
        return {"min": self.min, "max": self.max, "mean": self.mean,
                "std": np.sqrt(np.maximum(self.m2 / max(self.n, 1), 0.0)),
                "zeros": self.zeros / max(self.n, 1), "positive": self.positive,
                "saturated": self.saturated / max(self.n, 1)}


def _reductions(a: tf.Tensor, bounds: tuple[float, float] | None, tol: float) -> list:
    """Per image and channel: min, max, mean, M2, zeros, positives, saturated counts."""
    a = tf.reshape(a, (tf.shape(a)[0], -1, a.shape[-1]))  # (B, units, C)
    mean = tf.reduce_mean(a, axis=1)
    m2 = tf.reduce_sum(tf.square(a - mean[:, None]), axis=1)
    zeros = tf.reduce_sum(tf.cast(tf.equal(a, 0.0), tf.float32), axis=1)
    positive = tf.reduce_sum(tf.cast(a > 0.0, tf.float32), axis=1)
    if bounds is None:
        saturated = tf.zeros_like(mean)
    else:
        low, high = bounds
        span = (high - low) * tol
        saturated = tf.reduce_sum(tf.cast((a <= low + span) | (a >= high - span), tf.float32),
                                  axis=1)
    return [tf.reduce_min(a, axis=1), tf.reduce_max(a, axis=1), mean, m2, zeros, positive,
            saturated]


@dataclass(frozen=True)
class LayerStats:
    """Statistics of activations (and gradients) per layer and channel.

    Attributes:
      layers: the layer paths, in call order.
      channels: ``{path: {stat: (C,) array}}`` for activations: ``min``, ``max``, ``mean``,
        ``std``, ``zeros`` (fraction of exact zeros), ``positive`` (count of positive values),
        ``saturated`` (fraction at a bound; 0 for unbounded activations).
      gradients: the same (``min``, ``max``, ``mean``, ``std``, ``zeros``) for d score /
        d activation, or None when gradients were not computed.
      dead: ``{path: channel indices never positive on the data}``.
      flags: ``{path: "exploding" | "vanishing"}`` for layers whose gradient (or, without
        gradients, activation) RMS is over ``ratio`` times or under ``1 / ratio`` times the
        geometric mean of its neighbours'.
      samples: the number of images seen.
    """

    layers: list[str]
    channels: dict[str, dict[str, np.ndarray]]
    gradients: dict[str, dict[str, np.ndarray]] | None
    dead: dict[str, np.ndarray]
    flags: dict[str, str]
    samples: int
    rms: dict[str, float] = field(default_factory=dict)

    @property
    def rows(self) -> list[dict[str, Any]]:
        """One row per layer: aggregate statistics, dead and saturated counts, the flag."""
        out = []
        for path in self.layers:
            s = self.channels[path]
            row: dict[str, Any] = {
                "layer": path, "channels": len(s["mean"]), "min": float(s["min"].min()),
                "max": float(s["max"].max()), "mean": float(s["mean"].mean()),
                "std": float(np.sqrt(np.mean(s["std"] ** 2 + s["mean"] ** 2)
                                     - s["mean"].mean() ** 2).clip(0)),
                "zeros": float(s["zeros"].mean()), "dead": int(len(self.dead[path])),
                "saturated": float(s["saturated"].mean()),
            }
            if self.gradients is not None:
                g = self.gradients[path]
                row.update({"grad_min": float(g["min"].min()), "grad_max": float(g["max"].max()),
                            "grad_rms": self.rms.get(path, float("nan"))})
            row["flag"] = self.flags.get(path, "")
            out.append(row)
        return out

    def channel_rows(self) -> list[dict[str, Any]]:
        """One row per (layer, channel) with every statistic (gradients prefixed ``grad_``)."""
        out = []
        for path in self.layers:
            s = self.channels[path]
            for c in range(len(s["mean"])):
                row = {"layer": path, "channel": c, **{k: float(s[k][c]) for k in _STATS},
                       "saturated": float(s["saturated"][c]),
                       "dead": bool(c in set(self.dead[path].tolist()))}
                if self.gradients is not None:
                    g = self.gradients[path]
                    row.update({f"grad_{k}": float(g[k][c]) for k in _STATS})
                out.append(row)
        return out

    def to_pandas(self, per_channel: bool = False) -> Any:
        """The table as a pandas DataFrame (needs pandas, which tfvis does not require)."""
        try:
            import pandas as pd
        except ImportError as err:
            raise ImportError("LayerStats.to_pandas needs pandas (pip install pandas); "
                              "`rows` / `channel_rows()` give the same table as dicts") from err
        return pd.DataFrame(self.channel_rows() if per_channel else self.rows)

    def figure(self, ax: Any = None) -> Any:
        """Per-layer bars: activation range, fraction of zeros / dead channels, gradient RMS."""
        from tfvis.plotting.inspect import layer_stats_figure

        return layer_stats_figure(self, ax=ax)


def _default_layers(model: keras.Model) -> list[str]:
    """Every layer with weights that computes features (Conv, Dense, ...) in call order."""
    from tfvis.surgery import graph_of

    return [i.path for i in layer_table(model)
            if graph_of(i.layer) is None and getattr(i.layer, "weights", None)
            and isinstance(i.shape, tuple) and len(i.shape) in (2, 4)]


def _flags(rms: dict[str, float], ratio: float) -> dict[str, str]:
    paths = list(rms)
    flags = {}
    for i, path in enumerate(paths):
        neigh = [rms[p] for p in paths[max(0, i - 1): i] + paths[i + 1: i + 2] if rms[p] > 0]
        if not neigh or not np.isfinite(rms[path]):
            continue
        ref = float(np.exp(np.mean(np.log(neigh))))
        if rms[path] > ratio * ref:
            flags[path] = "exploding"
        elif rms[path] < ref / ratio:
            flags[path] = "vanishing"
    return flags


def layer_stats(
    model: keras.Model,
    data: Any,
    layers: Any = None,
    targets: Any = None,
    *,
    gradients: bool = True,
    ratio: float = 10.0,
    saturation: float = 0.01,
    batch_size: int = 32,
    input: int | str | None = None,
    verbose: int = 0,
) -> LayerStats:
    """Streams ``data`` through the model and summarises each layer's activations per channel.

    Example:
      >>> stats = tfvis.inspect.layer_stats(model, x_val)
      >>> stats.dead["conv2a"]        # channels never positive on x_val
      >>> stats.rows                  # one dict per layer; stats.to_pandas() with pandas

    Args:
      model: a functional or Sequential model (nested models by path).
      data: array, `tf.data.Dataset` (with or without labels) or generator; streamed.
      layers: layer specs; None: every layer with weights and a rank-2 or rank-4 output.
      targets: the score whose gradients are summarised (explainer forms; None: top-1 class).
      gradients: also summarise d score / d activation (a backward pass per chunk).
      ratio: a layer is flagged "exploding" / "vanishing" when its RMS is over ``ratio`` times
        (under ``1 / ratio`` times) the geometric mean of its neighbours'.
      saturation: a unit of a bounded activation is saturated within ``saturation * range``
        of a bound.
      batch_size, input, verbose: as for `tfvis.inspect.activations`.

    Returns:
      `LayerStats` (``rows``, ``channel_rows()``, ``dead``, ``flags``, ``figure()``).
    """
    if layers is None:
        from tfvis.surgery.layers import require_built, require_graph

        require_built(model)
        require_graph(model, "layer_stats")
        paths = _default_layers(model)
        if not paths:
            raise ValueError(f"model {model.name!r} has no layer with weights; pass layers=")
    else:
        paths = resolve_layers(model, layers, "layer_stats")
    table = {i.path: i.layer for i in layer_table(model)}
    bounds = [_bounds(table[p]) for p in paths]
    source = layer_source(model, data, input)
    acts_stats = {p: _Running() for p in paths}
    grad_stats = {p: _Running() for p in paths} if gradients else None
    units: dict[str, int] = {}

    def reduce_acts(*acts):
        for p, a in zip(paths, acts):
            units[p] = int(np.prod(a.shape[1:-1])) if a.shape.rank > 2 else 1
        return [r for a, b in zip(acts, bounds) for r in _reductions(a, b, saturation)]

    if gradients:
        resolved, chunks = gradient_chunks(
            model, source, paths, targets, batch_size=batch_size, verbose=verbose,
            reduce=lambda acts, grads: reduce_acts(*acts) + [
                r for g in grads for r in _reductions(g, None, saturation)])
    else:
        resolved, chunks = None, activation_chunks(model, source, paths, batch_size=batch_size,
                                                   reduce=reduce_acts, verbose=verbose)
    for _, _, outputs in chunks:
        values = [o.numpy().astype(np.float64) for o in outputs]
        for i, p in enumerate(paths):
            acts_stats[p].add(*values[7 * i: 7 * i + 7], units[p])
            if grad_stats is not None:
                j = 7 * (len(paths) + i)
                grad_stats[p].add(*values[j: j + 7], units[p])
    if resolved is not None:
        resolved.check_count(source.n)
    channels = {p: acts_stats[p].result() for p in paths}
    grads = None if grad_stats is None else {p: grad_stats[p].result() for p in paths}
    dead = {p: np.flatnonzero(channels[p]["positive"] == 0) for p in paths}
    chosen = grads if grads is not None else channels
    rms = {p: float(np.sqrt(np.mean(chosen[p]["std"] ** 2 + chosen[p]["mean"] ** 2)))
           for p in paths}
    samples = int(source.n or 0)
    return LayerStats(paths, channels, grads, dead, _flags(rms, float(ratio)), samples, rms)
