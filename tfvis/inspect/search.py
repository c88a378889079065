"""The searchers behind `tfvis.inspect.FeatureIndex`: exact (the default, the reference) and
faiss (optional, for indexes beyond one machine's memory or speed).

Both take feature rows as they stream in (``add``), answer ``search(queries, k)`` with
distances ``1 - cos`` (cosine) or the plain, not squared, Euclidean distance (``"l2"``), and
turn into / come back from arrays for an ``.npz`` file (``state`` / ``restore``), so the index
built on them has one interface whichever is used.

* `ExactSearch` keeps the ``(N, D)`` float32 features on the host (in fixed 8 MiB blocks
  filled as the data streams, so the peak while indexing is about the features themselves:
  no growing array is ever copied or concatenated) and compares queries in blocks of
  queries x blocks of the index on the device, merging each block's top-k into a running
  top-k: no ``(Q, N)`` matrix exists at once. Ties keep the lower index.
* `FaissSearch` adds the rows to a faiss index made by ``faiss.index_factory`` (``"Flat"``:
  exact; ``"IVF256,Flat"``, ``"IVF1024,PQ16"``, ``"HNSW32"``: approximate). Cosine is the
  inner product of L2-normalised rows. An index that needs training (IVF, PQ) is trained on
  the first ``train_size`` rows (k-means seeded with ``seed``), then every row is added; the
  features themselves are not kept. ``Flat`` and IVF indexes are reproducible (same data and
  seed, same index); for other kinds see faiss (e.g. HNSW graphs built by several threads).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import tensorflow as tf

METRICS = ("cosine", "l2")
BACKENDS = ("exact", "faiss")
_EPS = 1e-12  # as tf.math.l2_normalize: a zero row stays zero
_STORE = 8 * 2**20  # bytes per storage block of the exact backend


def _normalized(x: np.ndarray) -> np.ndarray:
    return x / np.sqrt(np.maximum((x * x).sum(axis=1, keepdims=True), _EPS))


def import_faiss():
    """The faiss module, or an ImportError naming how to install it."""
    try:
        import faiss
    except ImportError as e:
        raise ImportError("backend='faiss' needs the faiss library: pip install tfvis[faiss] "
                          "(or pip install faiss-cpu)") from e
    return faiss


class ExactSearch:
    """Exact nearest neighbours over features kept on the host (module docstring)."""

    backend = "exact"

    def __init__(self, metric: str, block: int = 16384) -> None:
        self.metric = metric
        self.block = block
        self._blocks: list[np.ndarray] = []  # storage: full blocks, then the one being filled
        self._per = 0  # rows per storage block (about _STORE bytes)
        self._rows = 0
        self._done = False

    @property
    def features(self) -> np.ndarray | None:
        """The ``(N, D)`` float32 features (None before any row): one array, assembled from
        the storage blocks when there are several."""
        if not self._blocks:
            return None
        return self._window(0, self._rows)

    def __len__(self) -> int:
        return self._rows

    @property
    def dim(self) -> int | None:
        return self._blocks[0].shape[1] if self._blocks else None

    def add(self, rows: np.ndarray) -> None:
        """Appends feature rows into fixed-size storage blocks: nothing is ever reallocated
        or copied again, so the peak is the features plus at most one block."""
        if self._done:
            raise ValueError("this index is complete: build a new one to add rows")
        rows = np.asarray(rows, np.float32)
        if not self._per:
            self._per = max(1, _STORE // (4 * rows.shape[1]))
        put = 0
        while put < len(rows):
            at = self._rows % self._per
            if at == 0:
                self._blocks.append(np.empty((self._per, rows.shape[1]), np.float32))
            take = min(self._per - at, len(rows) - put)
            self._blocks[-1][at: at + take] = rows[put: put + take]
            put += take
            self._rows += take

    def done(self) -> None:
        """Trims the last storage block to its rows (a copy of at most one block)."""
        at = self._rows % self._per if self._per else 0
        if at:
            self._blocks[-1] = self._blocks[-1][:at].copy()
        self._done = True

    def _window(self, start: int, stop: int) -> np.ndarray:
        """Rows ``start:stop`` as one array (a view when they lie in one storage block)."""
        parts = []
        while start < stop:
            b, at = divmod(start, self._per)
            take = min(self._per - at, stop - start)
            parts.append(self._blocks[b][at: at + take])
            start += take
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """``(indices int64 (Q, k), distances float32 (Q, k))``, nearest first."""
        cosine = self.metric == "cosine"
        qt = tf.constant(q)
        if cosine:
            qt = tf.math.l2_normalize(qt, axis=1)
        else:
            qn = tf.reduce_sum(tf.square(qt), axis=1, keepdims=True)
        best_s = best_i = None
        for start in range(0, self._rows, self.block):
            d = tf.constant(self._window(start, min(start + self.block, self._rows)))
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

    def state(self) -> dict[str, np.ndarray]:
        return {"features": self.features}

    @classmethod
    def restore(cls, arrays: Any, meta: dict) -> ExactSearch:
        searcher = cls(meta["metric"], int(meta["block"]))
        searcher.add(np.asarray(arrays["features"], np.float32))
        searcher.done()
        return searcher


class FaissSearch:
    """Nearest neighbours with a faiss index (module docstring)."""

    backend = "faiss"

    def __init__(self, metric: str, factory: str = "Flat", *, nprobe: int = 1,
                 train_size: int = 65536, seed: int = 0) -> None:
        self.faiss = import_faiss()
        if not isinstance(factory, str) or not factory:
            raise ValueError(f"faiss_index must be a faiss.index_factory string such as "
                             f"'Flat' or 'IVF256,Flat', got {factory!r}")
        for name, value in (("nprobe", nprobe), ("train_size", train_size)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        self.metric = metric
        self.factory = factory
        self.nprobe = int(nprobe)
        self.train_size = int(train_size)
        self.seed = int(seed)
        self.index = None
        self._pending: list[np.ndarray] = []  # rows waiting for the training of the index
        self._pending_rows = 0

    features = None  # the rows live in the faiss index only

    def __len__(self) -> int:
        return (0 if self.index is None else self.index.ntotal) + self._pending_rows

    @property
    def dim(self) -> int | None:
        return None if self.index is None else self.index.d

    def _make(self, dim: int) -> None:
        faiss = self.faiss
        kind = faiss.METRIC_INNER_PRODUCT if self.metric == "cosine" else faiss.METRIC_L2
        try:
            self.index = faiss.index_factory(dim, self.factory, kind)
        except RuntimeError as e:
            raise ValueError(f"faiss cannot build index {self.factory!r} for {dim}-dimensional "
                             f"features: {str(e).strip().splitlines()[-1]}") from e
        self._configure()

    def _configure(self) -> None:
        try:
            ivf = self.faiss.extract_index_ivf(self.index)
        except RuntimeError:  # not an IVF index: nothing to set
            return
        ivf.nprobe = self.nprobe
        ivf.cp.seed = self.seed  # the k-means of the training

    def _rows(self, rows: np.ndarray) -> np.ndarray:
        rows = np.ascontiguousarray(rows, np.float32)
        return _normalized(rows) if self.metric == "cosine" else rows

    def add(self, rows: np.ndarray) -> None:
        """Adds feature rows; rows for an untrained index wait until ``train_size`` came."""
        if self.index is None:
            self._make(rows.shape[1])
        rows = self._rows(rows)
        if self.index.is_trained:
            self.index.add(rows)
            return
        self._pending.append(rows)
        self._pending_rows += len(rows)
        if self._pending_rows >= self.train_size:
            self._train()

    def _train(self) -> None:
        rows = np.concatenate(self._pending)
        self._pending, self._pending_rows = [], 0
        try:
            self.index.train(rows[: self.train_size])
        except RuntimeError as e:
            raise ValueError(f"faiss index {self.factory!r} could not be trained on "
                             f"{min(len(rows), self.train_size)} rows: "
                             f"{str(e).strip().splitlines()[-1]} (index more data, or fewer "
                             "IVF lists, e.g. 'IVF16,Flat')") from e
        self.index.add(rows)

    def done(self) -> None:
        """Trains on what came when the data was shorter than ``train_size``."""
        if self._pending:
            self._train()

    def search(self, q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """As `ExactSearch.search`; where an approximate index finds fewer than ``k`` rows
        (IVF with a small ``nprobe``), the missing places are index -1 at distance inf."""
        score, idx = self.index.search(self._rows(q), k)
        score = score.astype(np.float64)
        dist = 1.0 - score if self.metric == "cosine" else np.sqrt(np.maximum(score, 0.0))
        dist[idx < 0] = np.inf
        return idx.astype(np.int64), dist.astype(np.float32)

    def state(self) -> dict[str, np.ndarray]:
        return {"faiss": self.faiss.serialize_index(self.index)}

    @classmethod
    def restore(cls, arrays: Any, meta: dict) -> FaissSearch:
        searcher = cls(meta["metric"], meta["faiss_index"], nprobe=int(meta["nprobe"]),
                       train_size=int(meta["train_size"]), seed=int(meta["seed"]))
        searcher.index = searcher.faiss.deserialize_index(np.asarray(arrays["faiss"]))
        searcher._configure()
        return searcher

    def settings(self) -> dict:
        return {"faiss_index": self.factory, "nprobe": self.nprobe,
                "train_size": self.train_size, "seed": self.seed}
