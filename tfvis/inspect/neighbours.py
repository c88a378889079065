"""Nearest neighbours in a layer's feature space (seed 001's FC7 neighbours).

Features are streamed through the model once (spatial ones average- or max-pooled) into a
searcher (`tfvis.inspect.search`): exact by default (features kept as one ``(N, D)`` float32
array, queries compared in blocks on the device with a running top-k, ties keeping the lower
index), or faiss (``backend="faiss"``, optional: exact ``"Flat"`` or approximate indexes).
Distances: cosine ``1 - cos`` and plain (not squared) Euclidean.
"""

from __future__ import annotations

import json
import os
from typing import Any

import keras
import numpy as np
import tensorflow as tf

from tfvis.inspect.activations import (activation_chunks, activation_step, layer_source,
                                       resolve_layers)
from tfvis.inspect.search import BACKENDS, METRICS, ExactSearch, FaissSearch
from tfvis.surgery.layers import LayerSpec

_POOLS = ("avg", "max")


def _pooled(a: tf.Tensor, pool: str) -> tf.Tensor:
    if a.shape.rank > 2:
        axes = list(range(1, a.shape.rank - 1))
        a = tf.reduce_mean(a, axis=axes) if pool == "avg" else tf.reduce_max(a, axis=axes)
    return tf.reshape(a, (tf.shape(a)[0], -1))


def _searcher(metric: str, block: int, backend: str, faiss_index: str | None, nprobe: int,
              train_size: int, seed: int) -> ExactSearch | FaissSearch:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive int, got {block!r}")
    if backend == "exact":
        if faiss_index is not None:
            raise ValueError("faiss_index= is an option of backend='faiss'")
        return ExactSearch(metric, block)
    return FaissSearch(metric, "Flat" if faiss_index is None else faiss_index, nprobe=nprobe,
                       train_size=train_size, seed=seed)


class FeatureIndex:
    """A nearest-neighbour index over one layer's features of a dataset.

    Example:
      >>> index = tfvis.inspect.FeatureIndex(model, "gap", x_train, metric="cosine")
      >>> idx, dist = index.query(x_test[:5], k=5)
      >>> index.save("fc.npz"); index = FeatureIndex.load("fc.npz", model)
      >>> big = tfvis.inspect.FeatureIndex(model, "gap", dataset, backend="faiss",
      ...                                  faiss_index="IVF1024,Flat", nprobe=16)

    Args:
      model: a functional or Sequential model (nested models by path); None only for
        `from_features` / `load` indexes queried with features.
      layer: the feature layer (name, path, index, layer object).
      data: array, `tf.data.Dataset` (with or without labels) or generator; streamed.
      metric: ``"cosine"`` (``1 - cos``) or ``"l2"`` (Euclidean, not squared).
      pool: how spatial features are pooled, ``"avg"`` or ``"max"``.
      batch_size: images per compiled chunk.
      block: index rows compared per device step at query time (exact backend).
      input: the image input of a multi-input model.
      verbose: 1 shows a progress bar while indexing.
      backend: ``"exact"`` (the default: features on the host, exact search on the device)
        or ``"faiss"`` (needs ``pip install tfvis[faiss]``; the features are not kept).
      faiss_index: with ``backend="faiss"``, a ``faiss.index_factory`` string: ``"Flat"``
        (the default, exact), ``"IVF1024,Flat"`` (inverted lists: approximate, faster),
        ``"IVF1024,PQ16"`` (also compressed: ~16 bytes a row), ``"HNSW32"``.
      nprobe: inverted lists visited per query (IVF indexes; more: higher recall).
      train_size: rows an index that needs training (IVF, PQ) is trained on: the first
        ``train_size`` rows of the data (all of it when shorter).
      seed: seeds the k-means of that training.

    Attributes:
      features: the ``(N, D)`` float32 features (exact backend; None with faiss).
    """

    def __init__(self, model: keras.Model | None, layer: LayerSpec, data: Any, *,
                 metric: str = "cosine", pool: str = "avg", batch_size: int = 64,
                 block: int = 16384, input: int | str | None = None, verbose: int = 0,
                 backend: str = "exact", faiss_index: str | None = None, nprobe: int = 1,
                 train_size: int = 65536, seed: int = 0) -> None:
        if pool not in _POOLS:
            raise ValueError(f"pool must be one of {_POOLS}, got {pool!r}")
        self._search = _searcher(metric, block, backend, faiss_index, nprobe, train_size, seed)
        self.metric = metric
        self.pool = pool
        self.batch_size = int(batch_size)
        self.input = input
        self.verbose = verbose
        self.model = model
        self.layer = None if model is None else resolve_layers(model, [layer], "FeatureIndex")[0]
        self._step = None  # the compiled feature step: made once, serves building and queries
        if data is not None:
            for part in self._chunks(data, verbose):
                self._search.add(part)
            self._search.done()

    # -- building ----------------------------------------------------------------------------

    def _chunks(self, images: Any, verbose: int = 0):
        """The pooled, flattened float32 features of ``images``, one host chunk at a time."""
        if self.model is None:
            raise ValueError("this index has no model, so it cannot compute features of images; "
                             "pass model= to FeatureIndex.load, or query with features=")
        source = layer_source(self.model, images, self.input)
        if self._step is None:
            pool = self.pool
            self._step = activation_step(self.model, [self.layer],
                                         reduce=lambda a: (_pooled(a, pool),))
        for _, _, (part,) in activation_chunks(self.model, source, [self.layer],
                                               batch_size=self.batch_size, step=self._step,
                                               verbose=verbose):
            yield part.numpy()

    def featurize(self, images: Any, verbose: int = 0) -> np.ndarray:
        """The pooled, flattened ``(N, D)`` float32 features of ``images`` (streamed)."""
        return np.concatenate(list(self._chunks(images, verbose)))

    @classmethod
    def from_features(cls, features: Any, metric: str = "cosine", *, block: int = 16384,
                      backend: str = "exact", faiss_index: str | None = None, nprobe: int = 1,
                      train_size: int = 65536, seed: int = 0) -> FeatureIndex:
        """An index over given ``(N, D)`` features (queried with ``features=``)."""
        f = np.asarray(features, np.float32)
        if f.ndim != 2 or not len(f):
            raise ValueError(f"features must be a non-empty (N, D) array, got shape {f.shape}")
        index = cls(None, None, None, metric=metric, block=block, backend=backend,
                    faiss_index=faiss_index, nprobe=nprobe, train_size=train_size, seed=seed)
        index._search.add(f)
        index._search.done()
        return index

    @property
    def backend(self) -> str:
        """``"exact"`` or ``"faiss"``."""
        return self._search.backend

    @property
    def features(self) -> np.ndarray | None:
        return self._search.features

    @property
    def block(self) -> int:
        return getattr(self._search, "block", 0)

    @block.setter
    def block(self, value: int) -> None:
        if self.backend != "exact":
            raise ValueError("block is an option of the exact backend")
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"block must be a positive int, got {value!r}")
        self._search.block = value

    def __len__(self) -> int:
        return len(self._search)

    def traces(self) -> int:
        """How many times the compiled feature step was traced: once for building and the
        queries of the same chunk shape, once more (shape-relaxed) for any other size."""
        return 0 if self._step is None else int(self._step.experimental_get_tracing_count())

    # -- querying ----------------------------------------------------------------------------

    def query(self, images: Any = None, k: int = 5, *, features: Any = None,
              query_block: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """The ``k`` nearest indexed samples of each query.

        Args:
          images: query images (as for the data); or None with ``features``.
          k: neighbours per query (at most the index size).
          features: ``(Q, D)`` query features instead of images.
          query_block: queries compared per step.

        Returns:
          ``(indices int64 (Q, k), distances float32 (Q, k))``, nearest first (an
          approximate faiss index that finds fewer than ``k``: index -1, distance inf).
        """
        if (images is None) == (features is None):
            raise ValueError("give query images or features=, not both or neither")
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive int, got {k!r}")
        if not len(self):
            raise ValueError("the index is empty")
        q = self.featurize(images) if features is None else np.asarray(features, np.float32)
        if q.ndim != 2 or q.shape[1] != self._search.dim:
            raise ValueError(f"query features have shape {q.shape}; the index holds "
                             f"{self._search.dim}-dimensional features")
        k = min(int(k), len(self))
        out_i, out_d = [], []
        for s in range(0, len(q), query_block):
            i, d = self._search.search(q[s: s + query_block], k)
            out_i.append(i)
            out_d.append(d)
        return np.concatenate(out_i), np.concatenate(out_d)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> None:
        """Writes the index and its settings to one ``.npz`` file (no pickles): the features
        (exact backend) or the serialised faiss index."""
        meta = {"metric": self.metric, "pool": self.pool, "layer": self.layer,
                "batch_size": self.batch_size, "block": self.block, "backend": self.backend,
                **(self._search.settings() if self.backend == "faiss" else {})}
        with open(path, "wb") as f:
            np.savez(f, meta=np.array(json.dumps(meta)), **self._search.state())

    @classmethod
    def load(cls, path: str | os.PathLike, model: keras.Model | None = None) -> FeatureIndex:
        """Reads an index written by `save`; ``model`` (the same one) to query with images."""
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            kind = FaissSearch if meta.get("backend", "exact") == "faiss" else ExactSearch
            search = kind.restore(data, meta)
        index = cls(None, None, None, metric=meta["metric"], pool=meta["pool"],
                    batch_size=int(meta["batch_size"]))
        index._search = search
        if model is not None:
            index.model = model
            index.layer = resolve_layers(model, [meta["layer"]], "FeatureIndex")[0]
        return index

    def __repr__(self) -> str:
        dim = self._search.dim
        return (f"FeatureIndex(layer={self.layer!r}, metric={self.metric!r}, "
                f"backend={self.backend!r}, size={len(self)}, dim={dim})")
