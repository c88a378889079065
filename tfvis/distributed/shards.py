"""Shards: the unit of work and of resume, and how one shard is read and explained.

A reader turns what the user passed (a folder, a list of image paths, arrays, a
`tf.data.Dataset`) into rows with ids; `explain_shard` runs each explainer once over a shard's
rows through the one chunk loop (`tfvis.engine.runner`) and returns what `store.write_shard`
writes. Readers are picklable (except the `tf.data` one) so a Ray worker can read its shards
itself.
"""

from __future__ import annotations

import collections.abc
import hashlib
import inspect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

#: What ``methods`` may hold: registry names or titles, ``{name: options}``, factories.
MethodsLike = Any


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` covers rows ``start:stop``."""

    index: int
    start: int
    stop: int


def plan(n: int, shard_size: int) -> list[Shard]:
    """The shards of ``n`` rows, ``shard_size`` rows each (the last one fewer)."""
    return [Shard(i, s, min(s + shard_size, n)) for i, s in enumerate(range(0, n, shard_size))]


# -- methods ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MethodSpec:
    """One method: a registry name with options, or a factory ``model -> Explainer``."""

    name: str | None
    options: dict = field(default_factory=dict)
    factory: Callable | None = None

    def build(self, model, seed: int | None):
        """Builds the explainer (once per worker)."""
        from tfvis.explainers import explainer_class, get_explainer

        if self.factory is not None:
            return self.factory(model)
        options = dict(self.options)
        accepts = inspect.signature(explainer_class(self.name).__init__).parameters
        if seed is not None and "seed" in accepts and "seed" not in options:
            options["seed"] = seed
        return get_explainer(self.name, model, **options)

    def describe(self) -> dict:
        """What the manifest records (and a rerun must match)."""
        if self.factory is not None:
            return {"factory": f"{getattr(self.factory, '__module__', '?')}."
                               f"{getattr(self.factory, '__qualname__', repr(self.factory))}"}
        return {"name": self.name, "options": {k: repr(v) for k, v in self.options.items()}}


def method_specs(methods: MethodsLike) -> list[MethodSpec]:
    """``methods`` as a list of `MethodSpec` (names checked against the registry)."""
    from tfvis.explainers import Explainer, explainer_class

    if isinstance(methods, (str, dict)) or callable(methods):
        methods = [methods]
    specs = []
    for item in methods:
        if isinstance(item, dict):
            specs += [MethodSpec(explainer_class(k).name, dict(v or {})) for k, v in item.items()]
        elif isinstance(item, str):
            for name in filter(None, (s.strip() for s in item.split(","))):
                specs.append(MethodSpec(explainer_class(name).name))
        elif isinstance(item, Explainer):
            raise TypeError(f"methods holds an explainer object ({item!r}); give its registry "
                            f"name with options ({{{type(item).name!r}: {{...}}}}, recorded in "
                            "the manifest so a rerun can be checked) or a factory "
                            "model -> Explainer (built once per worker)")
        elif callable(item):
            specs.append(MethodSpec(None, {}, item))
        else:
            raise TypeError(f"methods must be registry names, {{name: options}} dicts or "
                            f"factories model -> Explainer, got {item!r}")
    if not specs:
        raise ValueError("methods is empty; give registry names, e.g. ['gradcam', 'rise']")
    return specs


def build_explainers(model, specs: list[MethodSpec], seed: int | None) -> dict[str, Any]:
    """Method key (registry name) -> explainer, each built once."""
    explainers: dict[str, Any] = {}
    for spec in specs:
        explainer = spec.build(model, seed)
        explainer.verbose = 0  # the run's own progress bar counts images, not chunks
        key = explainer.name or type(explainer).__name__.lower()
        if key in explainers:
            raise ValueError(f"method {key!r} is given twice; give each method once")
        explainers[key] = explainer
    return explainers


# -- readers ------------------------------------------------------------------------------------


def _failure(path: Path, err: Exception) -> str:
    return str(err).replace(str(path), path.name) or type(err).__name__


@dataclass
class FilesReader:
    """Image files in a fixed order; ids are their paths relative to ``root`` (folder input)
    or as given (a list). Unreadable files become zero rows listed as skipped."""

    files: list[str]
    ids: list[str]
    size: tuple[int, int]
    channels: int | None
    preprocess: str = "none"
    random_access: bool = True
    labels: None = None

    @property
    def n(self) -> int:
        return len(self.files)

    @property
    def image_size(self) -> tuple:
        return self.size

    def describe(self) -> dict:
        digest = hashlib.sha256("\n".join(self.ids).encode()).hexdigest()
        return {"kind": "files", "n": self.n, "ids_sha256": digest, "preprocess": self.preprocess}

    def _load(self, path: str) -> tuple[np.ndarray, str]:
        import cv2

        from tfvis.io import read_image

        height, width = self.size
        try:
            image = read_image(Path(path))
        except (ValueError, OSError) as err:
            return np.zeros((height, width, 3), np.uint8), _failure(Path(path), err)
        if image.shape[:2] != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        return image, ""

    def read(self, shard: Shard) -> tuple[np.ndarray, None, list[dict]]:
        """Rows of ``shard``: decoded and resized on a `tf.data` pipeline (parallel, prefetched),
        then preprocessed; returns ``(images, labels None, skipped [{id, reason}])``."""
        import tensorflow as tf

        from tfvis.io import preprocessor

        height, width = self.size

        def load(path):
            image, reason = self._load(path.decode())
            return image, np.bytes_(reason.encode())

        def mapped(path):
            image, reason = tf.numpy_function(load, [path], [tf.uint8, tf.string])
            image.set_shape((height, width, 3))
            return image, reason

        files = self.files[shard.start:shard.stop]
        ds = tf.data.Dataset.from_tensor_slices(files).map(
            mapped, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).batch(len(files))
        images, reasons = next(iter(ds.prefetch(1)))
        x = images.numpy().astype(np.float32)
        if self.channels == 1:
            x = x.mean(axis=-1, keepdims=True)
        skipped = [{"id": self.ids[shard.start + i], "reason": r.decode()}
                   for i, r in enumerate(reasons.numpy()) if r]
        return preprocessor(self.preprocess)(x), None, skipped

    def shards(self, shards: Sequence[Shard], wanted: set[int]) -> Iterator[tuple]:
        """Yields ``(shard, images, labels, skipped)`` for the shards in ``wanted``."""
        for shard in shards:
            if shard.index in wanted:
                yield (shard, *self.read(shard))


class RowIds(collections.abc.Sequence):
    """The ids of rows ``0..n-1`` (``"0"``, ``"1"``, ...) as a sequence of str, made as they
    are read (a slice costs its length, not ``n``)."""

    def __init__(self, n: int) -> None:
        self.n = int(n)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i):
        if isinstance(i, slice):
            return [str(j) for j in range(self.n)[i]]
        return str(range(self.n)[i])


@dataclass
class ArrayReader:
    """In-memory images (N, H, W, C) and optional labels; ids are the row indices."""

    images: np.ndarray
    labels: np.ndarray | None = None
    random_access: bool = True

    @property
    def n(self) -> int:
        return len(self.images)

    @property
    def image_size(self) -> tuple:
        return tuple(self.images.shape[1:3])

    @property
    def ids(self) -> RowIds:
        return RowIds(self.n)

    def describe(self) -> dict:
        digest = hashlib.sha256(np.ascontiguousarray(self.images[:64]).tobytes()).hexdigest()
        return {"kind": "arrays", "n": self.n, "head_sha256": digest}

    def read(self, shard: Shard) -> tuple[np.ndarray, np.ndarray | None, list[dict]]:
        labels = None if self.labels is None else self.labels[shard.start:shard.stop]
        return np.asarray(self.images[shard.start:shard.stop]), labels, []

    def shards(self, shards: Sequence[Shard], wanted: set[int]) -> Iterator[tuple]:
        for shard in shards:
            if shard.index in wanted:
                yield (shard, *self.read(shard))


#: Single images of a `tf.data.Dataset` are read in batches of this many rows.
READ_ROWS = 256


@dataclass
class DatasetReader:
    """A `tf.data.Dataset` of images or (images, labels), single or batched, read once in
    order (single images are batched in the pipeline, `READ_ROWS` at a time, and prefetched);
    ids are the row indices. Rows of complete shards are read and dropped (a dataset has no
    random access)."""

    dataset: Any
    n: int
    rank: int  # the model input's rank (4: batches of images)
    image_size: tuple = (None, None)
    random_access: bool = False
    labels: None = None

    @property
    def ids(self) -> RowIds:
        return RowIds(self.n)

    def describe(self) -> dict:
        return {"kind": "tf.data", "n": self.n}

    def _rows(self) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
        import tensorflow as tf

        dataset = self.dataset
        spec = tf.nest.flatten(dataset.element_spec)[0]
        if len(spec.shape) == self.rank - 1:  # single images: one Python step per batch
            dataset = dataset.batch(READ_ROWS)
        for element in dataset.prefetch(tf.data.AUTOTUNE).as_numpy_iterator():
            x, y = (element[0], element[1]) if isinstance(element, tuple) else (element, None)
            yield np.asarray(x), None if y is None else np.asarray(y)

    def shards(self, shards: Sequence[Shard], wanted: set[int]) -> Iterator[tuple]:
        todo = [s for s in shards if s.index in wanted]
        if not todo:
            return
        pos, xs, ys = 0, [], []
        it = iter(todo)
        shard = next(it)
        for x, y in self._rows():
            lo, hi = pos, pos + len(x)
            pos = hi
            a, b = max(lo, shard.start), min(hi, shard.stop)
            while shard is not None and a < b:
                xs.append(x[a - lo:b - lo])
                ys.append(None if y is None else y[a - lo:b - lo])
                if b == shard.stop:
                    labels = None if ys[0] is None else np.concatenate(ys)
                    yield shard, np.concatenate(xs), labels, []
                    xs, ys = [], []
                    shard = next(it, None)
                    if shard is None:
                        return
                    a, b = max(lo, shard.start), min(hi, shard.stop)
                else:
                    break
        if shard is not None:
            raise ValueError(f"the dataset ended after {pos} rows; it had {self.n} when the "
                             "run started: a dataset must yield the same rows every time")


def count_rows(dataset, rank: int) -> int:
    """Rows of a dataset of samples or batches (one pass, in the graph)."""
    import tensorflow as tf

    spec = dataset.element_spec
    first = spec[0] if isinstance(spec, tuple) else spec
    if len(first.shape) == rank - 1:
        card = int(dataset.cardinality())
        if card >= 0:
            return card
        return int(dataset.reduce(np.int64(0), lambda c, *_: c + 1))

    def add(count, *element):
        x = tf.nest.flatten(element)[0]
        return count + tf.cast(tf.shape(x)[0], tf.int64)

    return int(dataset.reduce(np.int64(0), add))


def reader_for(data: Any, input_shape: tuple, preprocess: str = "none", labels=None):
    """The reader of ``data`` for a model input of ``input_shape`` ``(None, H, W, C)``."""
    import tensorflow as tf

    from tfvis.io import IMAGE_SUFFIXES, read_image

    if len(input_shape) != 4:
        raise ValueError(f"explain_dataset explains image models; the model input is "
                         f"{input_shape}, not (N, H, W, C)")
    if isinstance(data, tf.data.Dataset):
        if labels is not None:
            raise ValueError("labels= goes with arrays; a dataset yields (images, labels)")
        spec = data.element_spec[0] if isinstance(data.element_spec, tuple) \
            else data.element_spec
        return DatasetReader(data, count_rows(data, 4), 4, image_size=tuple(spec.shape[-3:-1]))
    if isinstance(data, (str, os.PathLike)) and Path(data).is_dir():
        root = Path(data)
        files = sorted(p for p in root.iterdir() if p.is_file()
                       and p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise ValueError(f"{str(root)!r} holds no image files ({', '.join(IMAGE_SUFFIXES)})")
        ids = [p.relative_to(root).as_posix() for p in files]
    elif isinstance(data, (list, tuple)) and data and all(
            isinstance(p, (str, os.PathLike)) for p in data):
        files = [Path(p) for p in data]
        missing = [str(p) for p in files if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no image at {missing[:5]}")
        ids = [str(p) for p in data]
    else:
        if isinstance(data, tuple) and len(data) == 2 and labels is None:
            data, labels = data
        images = np.asarray(data)
        if images.ndim != 4:
            raise ValueError(f"arrays must be a batch (N, H, W, C), got shape {images.shape}; "
                             "or give a folder, a list of image paths or a tf.data.Dataset")
        if labels is not None and len(labels) != len(images):
            raise ValueError(f"{len(labels)} labels for {len(images)} images")
        return ArrayReader(images, None if labels is None else np.asarray(labels))
    height, width = input_shape[1:3]
    if height is None or width is None:
        for path in files:  # the model takes any size: the first readable image's
            try:
                first = read_image(path)
            except (ValueError, OSError):
                continue
            height, width = height or first.shape[0], width or first.shape[1]
            break
        else:
            raise ValueError("none of the image files is readable")
    return FilesReader([str(p) for p in files], ids, (int(height), int(width)), input_shape[3],
                       preprocess)


# -- explaining one shard -----------------------------------------------------------------------


def _explain(explainer, x: np.ndarray, targets: Any, batch_size: int, strategy: Any):
    """``explainer.explain(x, targets, batch_size)``, with each chunk split over the replicas
    of ``strategy`` (the chunk loop's seam) for methods computed by the one compiled step."""
    from tfvis.engine import runner
    from tfvis.explainers.base import Explainer
    from tfvis.inputs import as_source

    if strategy is None or type(explainer).explain is not Explainer.explain:
        return explainer.explain(x, targets, batch_size)
    source = as_source(x, explainer.inputs, explainer.input_index)
    resolved = explainer.resolve(source, targets)
    # One compiled distributed step per strategy and target kind, kept with the explainer's
    # steps: every shard and chunk reuses it (no retrace; `explainer.traces()` counts it).
    step = explainer._cached_step(("explain", strategy), resolved.kind,
                                  lambda: runner.distribute(explainer._step(resolved.kind),
                                                            strategy))
    chunks = runner.run(step, source, resolved.rows, batch_size=batch_size)
    raw, scores, used, *extra = runner.collect(chunks)
    resolved.check_count(source.n)
    return explainer._assemble(raw, scores, used, resolved, *extra)


def shard_targets(targets: Any, shard: Shard, labels: np.ndarray | None) -> Any:
    """The targets of a shard's rows for `Explainer.explain`."""
    if targets is None or (isinstance(targets, str) and targets == "top1"):
        return None
    if isinstance(targets, str) and targets == "labels":
        if labels is None:
            raise ValueError('targets="labels" needs labels: a dataset of (images, labels) '
                             "or arrays with labels=")
        return np.asarray(labels).astype(np.int64)
    if isinstance(targets, (int, np.integer)) or callable(targets):
        return targets
    array = np.asarray(targets)
    return array[shard.start:shard.stop]


def explain_shard(explainers: dict, images: np.ndarray, labels, targets: Any, shard: Shard,
                  skipped: list[dict], ids: Sequence[str], batch_size: int,
                  strategy: Any = None) -> dict[str, dict]:
    """Explains one shard with every method; rows of skipped files get zero maps, NaN scores
    and target -1. Returns method -> ``{"maps", "scores", "targets"}``."""
    wanted = shard_targets(targets, shard, labels)
    bad = np.isin(np.asarray(ids[shard.start:shard.stop]), [s["id"] for s in skipped])
    results = {}
    for key, explainer in explainers.items():
        result = _explain(explainer, images, wanted, batch_size, strategy)
        maps = np.asarray(result.maps, np.float32)
        scores = np.asarray(result.scores, np.float32).copy()
        found = np.asarray(result.targets) if not callable(result.targets) else None
        if found is None or found.ndim != 1 or not np.issubdtype(found.dtype, np.integer):
            found = np.full(len(images), -1, np.int64)
        found = found.astype(np.int64).copy()
        if bad.any():
            maps[bad], scores[bad], found[bad] = 0.0, np.nan, -1
        results[key] = {"maps": maps, "scores": scores, "targets": found}
    return results
