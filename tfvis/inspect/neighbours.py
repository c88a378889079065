"""Exact nearest neighbours in a layer's feature space (seed 001's FC7 neighbours).

Features are streamed through the model once (spatial ones average-pooled) and kept as one
``(N, D)`` float32 array. A query is answered in blocks of queries x blocks of the index on the
device, each block's top-k merged into a running top-k, so no ``(Q, N)`` matrix exists at once.
Distances: cosine ``1 - cos`` and plain (not squared) Euclidean. Ties keep the lower index.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvis.engine import runner
from tfvis.inspect.activations import activation_chunks, layer_source, resolve_layers
from tfvis.surgery.layers import LayerSpec

_METRICS = ("cosine", "l2")
_POOLS = ("avg", "max")


def _pooled(a: tf.Tensor, pool: str) -> tf.Tensor:
    if a.shape.rank > 2:
        axes = list(range(1, a.shape.rank - 1))
        a = tf.reduce_mean(a, axis=axes) if pool == "avg" else tf.reduce_max(a, axis=axes)
    return tf.reshape(a, (tf.shape(a)[0], -1))


class FeatureIndex:
    """An exact nearest-neighbour index over one layer's features of a dataset.

    Example:
      >>> index = tfvis.inspect.FeatureIndex(model, "gap", x_train, metric="cosine")
      >>> idx, dist = index.query(x_test[:5], k=5)
      >>> index.save("fc.npz"); index = FeatureIndex.load("fc.npz", model)

    Args:
      model: a functional or Sequential model (nested models by path); None only for
        `from_features` / `load` indexes queried with features.
      layer: the feature layer (name, path, index, layer object).
      data: array, `tf.data.Dataset` (with or without labels) or generator; streamed.
      metric: ``"cosine"`` (``1 - cos``) or ``"l2"`` (Euclidean).
      pool: how spatial features are pooled, ``"avg"`` or ``"max"``.
      batch_size: images per compiled chunk.
      block: index rows compared per device step at query time.
      input: the image input of a multi-input model.
      verbose: 1 shows a progress bar while indexing.
    """

    def __init__(self, model: keras.Model | None, layer: LayerSpec, data: Any, *,
                 metric: str = "cosine", pool: str = "avg", batch_size: int = 64,
                 block: int = 16384, input: int | str | None = None, verbose: int = 0) -> None:
        if metric not in _METRICS:
            raise ValueError(f"metric must be one of {_METRICS}, got {metric!r}")
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
        if isinstance(block, bool) or not isinstance(block, int) or block < 1:
            raise ValueError(f"block must be a positive int, got {block!r}")
        self.model = model
        self.metric = metric
        self.pool = pool
        self.batch_size = int(batch_size)
        self.block = block
        self.input = input
        self.verbose = verbose
        self.layer = None if model is None else resolve_layers(model, [layer], "FeatureIndex")[0]
        self.features = None if data is None else self.featurize(data, verbose=verbose)

    # -- building ----------------------------------------------------------------------------

    def featurize(self, images: Any, verbose: int = 0) -> np.ndarray:
        """The pooled, flattened ``(N, D)`` float32 features of ``images`` (streamed)."""
        if self.model is None:
            raise ValueError("this index has no model, so it cannot compute features of images; "
                             "pass model= to FeatureIndex.load, or query with features=")
        source = layer_source(self.model, images, self.input)
        chunks = activation_chunks(self.model, source, [self.layer], batch_size=self.batch_size,
                                   reduce=lambda a: (_pooled(a, self.pool),), verbose=verbose)
        return runner.collect(chunks)[0].astype(np.float32)

    @classmethod
    def from_features(cls, features: Any, metric: str = "cosine", *, block: int = 16384
                      ) -> FeatureIndex:
        """An index over given ``(N, D)`` features (queried with ``features=``)."""
        index = cls(None, None, None, metric=metric, block=block)
        f = np.asarray(features, np.float32)
        if f.ndim != 2 or not len(f):
            raise ValueError(f"features must be a non-empty (N, D) array, got shape {f.shape}")
        index.features = f
        return index

    def __len__(self) -> int:
        return 0 if self.features is None else len(self.features)

    # -- querying ----------------------------------------------------------------------------

    def query(self, images: Any = None, k: int = 5, *, features: Any = None,
              query_block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed samples of each query.

        Args:
          images: query images (as for the data); or None with ``features``.
          k: neighbours per query (at most the index size).
          features: ``(Q, D)`` query features instead of images.
          query_block: queries compared per device step.

        Returns:
          ``(indices int64 (Q, k), distances float32 (Q, k))``, nearest first.
        """
        if (images is None) == (features is None):
            raise ValueError("give query images or features=, not both or neither")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        q = self.featurize(images) if features is None else np.asarray(features, np.float32)
        if q.ndim != 2 or q.shape[1] != self.features.shape[1]:
            raise ValueError(f"query features have shape {q.shape}; the index holds "
                             f"{self.features.shape[1]}-dimensional features")
        k = min(int(k), len(self.features))
        out_i, out_d = [], []
        for s in range(0, len(q), query_block):
            i, d = self._query_block(q[s: s + query_block], k)
            out_i.append(i)
            out_d.append(d)
        return np.concatenate(out_i), np.concatenate(out_d)

    def _query_block(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        cosine = self.metric == "cosine"
        qt = tf.constant(q)
        if cosine:
            qt = tf.math.l2_normalize(qt, axis=1)
        else:
            qn = tf.reduce_sum(tf.square(qt), axis=1, keepdims=True)
        best_s = best_i = None
        for start in range(0, len(self.features), self.block):
            d = tf.constant(self.features[start: start + self.block])
            if cosine:
                score = tf.matmul(qt, tf.math.l2_normalize(d, axis=1), transpose_b=True)
            else:  # the negated squared distance: larger is nearer
                dn = tf.reduce_sum(tf.square(d), axis=1)[None]
                score = -tf.maximum(qn - 2.0 * tf.matmul(qt, d, transpose_b=True) + dn, 0.0)
            s, i = tf.math.top_k(score, k=min(k, score.shape[1]))  # stable: lower index first
            i = tf.cast(i, tf.int64) + start
            if best_s is not None:  # running entries come first: lower indices win ties
                s, i = tf.concat([best_s, s], 1), tf.concat([best_i, i], 1)
                s, pick = tf.math.top_k(s, k=min(k, s.shape[1]))
                i = tf.gather(i, pick, batch_dims=1)
            best_s, best_i = s, i
        s = best_s.numpy().astype(np.float64)
        dist = 1.0 - s if cosine else np.sqrt(np.maximum(-s, 0.0))
        return best_i.numpy(), dist.astype(np.float32)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes the features and settings to one ``.npz`` file (no pickles)."""
        meta = {"metric": self.metric, "pool": self.pool, "layer": self.layer,
                "batch_size": self.batch_size, "block": self.block}
        with open(path, "wb") as f:
            np.savez(f, features=self.features, meta=np.array(json.dumps(meta)))

    @classmethod
    def load(cls, path: str | os.PathLike, model: keras.Model | None = None) -> FeatureIndex:
        """Reads an index written by `save`; ``model`` (the same one) to query with images."""
        with np.load(path, allow_pickle=False) as data:
            features = data["features"]
            meta = json.loads(str(data["meta"]))
        index = cls.from_features(features, meta["metric"], block=int(meta["block"]))
        index.pool, index.batch_size = meta["pool"], int(meta["batch_size"])
        if model is not None:
            index.model = model
            index.layer = resolve_layers(model, [meta["layer"]], "FeatureIndex")[0]
        return index

    def __repr__(self) -> str:
        shape = None if self.features is None else self.features.shape
        return f"FeatureIndex(layer={self.layer!r}, metric={self.metric!r}, features={shape})"
