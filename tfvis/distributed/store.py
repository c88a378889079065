"""The on-disk layout of a dataset run: a zarr store, the manifest, shard markers, index.csv.

``out/`` holds exactly::

    explanations.zarr/     maps/<method> (N, H, W) float16|float32, scores/<method> (N,),
                           targets (N,) int64 (-1: not a class), ids (N,) str
    shards/<i>.json        written (atomically) after shard i's chunks: the shard is complete
    manifest.json          model fingerprint, methods and options, arguments, skipped files
    index.csv              one row per image: id, target, score per method (at the end)

Every shard writes only its own chunks of every array (the chunk rows divide the shard size),
so workers writing different shards never touch the same file. Files other than zarr chunks
are written to a temporary name in the same folder and renamed (`atomic_write`).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator, TextIO

import numpy as np

STORE = "explanations.zarr"
MANIFEST = "manifest.json"
INDEX = "index.csv"
SHARDS = "shards"
#: Every name `explain_dataset` may create in ``out`` (anything else there is the user's).
OWNED = frozenset({STORE, MANIFEST, INDEX, SHARDS})
FORMAT = "tfvis.explanations/1"
#: Bytes per chunk of a map array, at most (chunks stay a divisor of the shard size).
CHUNK_BYTES = 32 * 2**20


def zarr_module():
    """Imports zarr (version 3), or raises an error naming the extra to install."""
    try:
        import zarr
    except ImportError:
        raise ImportError('explaining a dataset writes a zarr store: pip install '
                          '"tfvis[dataset]" (zarr>=3)') from None
    if int(zarr.__version__.split(".")[0]) < 3:
        raise ImportError(f"tfvis needs zarr>=3, found {zarr.__version__}: pip install "
                          '"tfvis[dataset]"')
    return zarr


@contextlib.contextmanager
def atomic_open(path: Path) -> Iterator[TextIO]:
    """A text file that becomes ``path`` when the block ends without an error: written to a
    temporary name in the same folder, flushed to disk, then renamed, so a reader (or a rerun
    after a kill) sees the old file or the new one, never a part."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write(path: Path, text: str) -> None:
    """Writes ``text`` to ``path`` atomically (`atomic_open`)."""
    with atomic_open(path) as f:
        f.write(text)


def chunk_rows(shard_size: int, map_shape: tuple, itemsize: int) -> int:
    """Rows per chunk: the largest divisor of ``shard_size`` whose chunk fits `CHUNK_BYTES`."""
    per_row = max(1, int(np.prod(map_shape)) * itemsize)
    best = 1
    for rows in range(1, shard_size + 1):
        if shard_size % rows == 0 and rows * per_row <= CHUNK_BYTES:
            best = rows
    return best


def check_out(out: Path, overwrite: bool) -> dict | None:
    """Checks ``out`` before a run; returns its manifest when it holds an earlier run.

    Raises:
      FileExistsError: ``out`` is a file, or holds files that are not a tfvis run.
    """
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out={str(out)!r} is a file; give a directory")
    if not out.exists():
        return None
    foreign = sorted(p.name for p in out.iterdir()
                     if p.name not in OWNED and not p.name.startswith(f".{MANIFEST}."))
    if foreign:
        raise FileExistsError(
            f"out={str(out)!r} exists and holds other files ({', '.join(foreign[:5])}"
            f"{', ...' if len(foreign) > 5 else ''}); give an empty or new directory (nothing "
            "there is ever deleted except an earlier explain_dataset run)")
    path = out / MANIFEST
    if not path.exists():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def clear(out: Path) -> None:
    """Removes an earlier run (only the names `explain_dataset` creates)."""
    for name in OWNED:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def create(out: Path, methods: list[str], n: int, map_shape: tuple, dtype: str,
           shard_size: int) -> None:
    """Creates the empty arrays of the store (chunked so each shard owns its chunks)."""
    zarr = zarr_module()
    rows = chunk_rows(shard_size, map_shape, np.dtype(dtype).itemsize)
    group = zarr.open_group(str(out / STORE), mode="w")
    for method in methods:
        group.create_array(f"maps/{method}", shape=(n, *map_shape), chunks=(rows, *map_shape),
                           dtype=dtype, fill_value=0)
        group.create_array(f"scores/{method}", shape=(n,), chunks=(shard_size,),
                           dtype="float32", fill_value=float("nan"))
    group.create_array("targets", shape=(n,), chunks=(shard_size,), dtype="int64",
                       fill_value=-1)
    group.create_array("ids", shape=(n,), chunks=(shard_size,), dtype=str)
    (out / SHARDS).mkdir(exist_ok=True)


def as_dtype(array: Any, dtype: Any) -> np.ndarray:
    """``array`` as ``dtype``; float32 -> float16 by TensorFlow's cast (the same bits as
    numpy's round-to-nearest-even, at a fifth of its CPU time: it runs on the writer thread
    beside the explainers)."""
    array, dtype = np.asarray(array), np.dtype(dtype)
    if dtype == np.float16 and array.dtype == np.float32:
        import tensorflow as tf

        return tf.cast(array, tf.float16).numpy()
    return array.astype(dtype)


def write_shard(out: Path, start: int, ids: list[str], results: dict[str, dict]) -> None:
    """Writes rows ``start:start + len(ids)`` of every array (the chunks of one shard).

    Args:
      out: the run's folder.
      start: the shard's first row.
      ids: the shard's ids.
      results: method -> ``{"maps", "scores", "targets"}`` arrays of the shard.
    """
    zarr = zarr_module()
    group = zarr.open_group(str(out / STORE), mode="r+")
    stop = start + len(ids)
    targets = None
    for method, result in results.items():
        maps = group[f"maps/{method}"]
        maps[start:stop] = as_dtype(result["maps"], maps.dtype)
        group[f"scores/{method}"][start:stop] = np.asarray(result["scores"], np.float32)
        if targets is None:
            targets = result["targets"]
    group["targets"][start:stop] = np.asarray(targets, np.int64)
    group["ids"][start:stop] = np.asarray(ids, dtype=object).astype(str)


def mark_done(out: Path, shard: int, info: dict) -> None:
    """Records shard ``shard`` as complete (after `write_shard` returned)."""
    atomic_write(out / SHARDS / f"{shard}.json", json.dumps(info))


def done_shards(out: Path) -> dict[int, dict]:
    """Complete shards -> what they recorded (skipped files, rows)."""
    folder = out / SHARDS
    done = {}
    if folder.is_dir():
        for path in folder.glob("*.json"):
            if path.stem.isdigit():
                done[int(path.stem)] = json.loads(path.read_text(encoding="utf-8"))
    return done


class DatasetExplanation:
    """A finished (or partly finished) `explain_dataset` run, read lazily from its store.

    ``maps(method)`` is a lazy zarr array (``numpy.asarray`` or slicing reads it); the other
    arrays are small and read whole. Opened by `tfvis.open_explanations(out)`.
    """

    def __init__(self, out: str | os.PathLike) -> None:
        zarr = zarr_module()
        self.out = Path(out)
        path = self.out / MANIFEST
        if not path.exists() or not (self.out / STORE).exists():
            raise FileNotFoundError(f"{str(self.out)!r} holds no explain_dataset run "
                                    f"({MANIFEST} and {STORE} are missing)")
        #: The run's manifest (dict).
        self.manifest: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
        self._group = zarr.open_group(str(self.out / STORE), mode="r")
        #: The explained methods (registry names), in the order given.
        self.methods: list[str] = list(self.manifest["methods"])

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def __repr__(self) -> str:
        return (f"DatasetExplanation({str(self.out)!r}, n={len(self)}, methods={self.methods}, "
                f"complete={self.manifest.get('complete', False)})")

    def _check(self, method: str) -> None:
        if method not in self.methods:
            raise KeyError(f"no method {method!r} in this run; it has {self.methods}")

    def maps(self, method: str):
        """The (N, H, W) maps of ``method``, as a lazy zarr array."""
        self._check(method)
        return self._group[f"maps/{method}"]

    def scores(self, method: str) -> np.ndarray:
        """The (N,) explained scores of ``method`` (NaN for skipped images)."""
        self._check(method)
        return self._group[f"scores/{method}"][:]

    @property
    def targets(self) -> np.ndarray:
        """The (N,) explained class per image (-1 for a skipped image or a non-class target)."""
        return self._group["targets"][:]

    @property
    def ids(self) -> np.ndarray:
        """The (N,) ids: file paths relative to the folder, or dataset indices as strings."""
        return np.array(self._group["ids"][:].tolist(), dtype=str)

    def batches(self, size: int = 256) -> Iterator[tuple[int, dict[str, np.ndarray]]]:
        """Yields ``(start, {method: maps})`` in blocks of ``size`` rows (memory bounded):
        the seam for metrics over the whole store without recomputing maps."""
        for start in range(0, len(self), size):
            yield start, {m: np.asarray(self.maps(m)[start:start + size], np.float32)
                          for m in self.methods}


def open_explanations(out: str | os.PathLike) -> DatasetExplanation:
    """Opens the `explain_dataset` run in ``out`` (see `DatasetExplanation`)."""
    return DatasetExplanation(out)
