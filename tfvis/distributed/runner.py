"""`explain_dataset`: explain a whole dataset into a chunked store, resumably.

The driver plans the shards, writes (or checks) the manifest and creates the store; an engine
decides which worker runs which pending shard (this process, optionally over the replicas of a
`tf.distribute` strategy, or Ray actors); every worker explains a shard with explainers it built
once, writes the shard's own chunks, then marks the shard complete. The driver then writes
``index.csv`` and marks the manifest complete.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from tfvis.distributed import store
from tfvis.distributed.pipeline import WriteBehind, read_ahead
from tfvis.distributed.shards import (MethodSpec, Shard, build_explainers, explain_shard,
                                      method_specs, plan, reader_for)

DTYPES = ("float16", "float32")


def model_fingerprint(model) -> str:
    """sha256 of what identifies a model: every weight (shape and values, in order) and each
    layer's class and config. Names Keras generates (``input_layer_3``) are left out, so the
    same model built in another process has the same fingerprint."""
    import keras

    digest = hashlib.sha256()
    for weight in model.weights:
        value = np.ascontiguousarray(weight.numpy())
        digest.update(repr((value.shape, str(value.dtype))).encode())
        digest.update(value.tobytes())
    for layer in model._flatten_layers(include_self=False, recursive=True):
        config = {}
        if not isinstance(layer, keras.Model):  # a nested model: its layers are listed
            try:
                config = {k: v for k, v in layer.get_config().items() if k != "name"}
            except (NotImplementedError, TypeError):
                pass
        digest.update(type(layer).__name__.encode())
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def _describe_targets(targets: Any) -> Any:
    if targets is None or isinstance(targets, (str, int, np.integer)):
        return "top1" if targets is None else (targets if isinstance(targets, str)
                                               else int(targets))
    if callable(targets):
        return f"callable {getattr(targets, '__module__', '?')}." \
               f"{getattr(targets, '__qualname__', repr(targets))}"
    array = np.ascontiguousarray(np.asarray(targets))
    return {"array_sha256": hashlib.sha256(array.tobytes()).hexdigest(),
            "shape": list(array.shape)}


@dataclass
class Job:
    """Everything a worker needs to explain shards (picklable when the reader is)."""

    out: str
    reader: Any
    specs: list[MethodSpec]
    seed: int | None
    targets: Any
    batch_size: int
    shards: list[Shard]

    def explainers(self, model) -> dict:
        """The run's explainers for ``model``, built once per worker."""
        return build_explainers(model, self.specs, self.seed)

    def do(self, explainers: dict, shard: Shard, images, labels, skipped,
           strategy: Any = None) -> dict:
        """Explains and writes one shard; returns what its marker records."""
        results = explain_shard(explainers, images, labels, self.targets, shard, skipped,
                                self.reader.ids, self.batch_size, strategy)
        return self.write(shard, results, skipped)

    def write(self, shard: Shard, results: dict, skipped: list[dict]) -> dict:
        """Writes a shard's chunks, then (only then) its completion marker."""
        out = Path(self.out)
        store.write_shard(out, shard.start, self.reader.ids[shard.start:shard.stop], results)
        info = {"start": shard.start, "stop": shard.stop, "skipped": skipped}
        store.mark_done(out, shard.index, info)
        return info


def _progress(total: int, verbose: int):
    if not verbose or not total:
        return None
    import keras

    return keras.utils.Progbar(total, unit_name="image", stateful_metrics=["images/s"])


def _resolve_strategy(strategy: Any):
    if strategy is None or strategy != "auto":
        return strategy
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    return tf.distribute.MirroredStrategy() if len(gpus) > 1 else None


def run_local(job: Job, explainers: dict, pending: list[Shard], strategy: Any,
              verbose: int) -> None:
    """Explains the pending shards in this process with ``explainers``, in three overlapped
    stages (`tfvis.distributed.pipeline`): the next shard is read on one thread while this
    one is explained, and the previous one written on another. At most a shard is read
    ahead and a shard waits to be written, so memory is bounded by a few shards; an error in
    either thread is raised here."""
    total = sum(s.stop - s.start for s in pending)
    bar, done, began = _progress(total, verbose), 0, time.perf_counter()
    wanted = {s.index for s in pending}
    shards = read_ahead(job.reader.shards(job.shards, wanted))
    with WriteBehind(job.write) as writer, contextlib.closing(shards):
        for shard, images, labels, skipped in shards:
            results = explain_shard(explainers, images, labels, job.targets, shard, skipped,
                                    job.reader.ids, job.batch_size, strategy)
            writer.submit(shard, results, skipped)
            done += shard.stop - shard.start
            if bar is not None:
                bar.update(done, [("images/s", done / (time.perf_counter() - began))])


def _write_index(out: Path, methods: list[str], n: int, size: int) -> None:
    """index.csv: id, target, then the score of each method; streamed by shard into the
    file (memory does not grow with the dataset)."""
    zarr = store.zarr_module()
    group = zarr.open_group(str(out / store.STORE), mode="r")
    with store.atomic_open(out / store.INDEX) as f:
        writer = csv.writer(f)
        writer.writerow(["id", "target", *(f"score_{m}" for m in methods)])
        for start in range(0, n, size):
            ids = group["ids"][start:start + size]
            targets = group["targets"][start:start + size]
            scores = [group[f"scores/{m}"][start:start + size] for m in methods]
            writer.writerows([ids[i], int(targets[i]), *(f"{float(s[i]):.6g}" for s in scores)]
                             for i in range(len(ids)))


def explain_dataset(
    model: Any,
    data: Any,
    methods: Any,
    out: str | Path,
    *,
    targets: Any = "top1",
    labels: Any = None,
    batch_size: int = 32,
    shard_size: int = 1024,
    strategy: Any = None,
    engine: str = "local",
    dtype: str = "float16",
    preprocess: str = "none",
    seed: int | None = 0,
    overwrite: bool = False,
    verbose: int = 1,
    ray_address: str | None = None,
    num_workers: int = 2,
    num_gpus: float = 0,
):
    """Explains every image of ``data`` with ``methods`` into ``out/explanations.zarr``.

    Resumable: shards (``shard_size`` images) are the unit of work; a shard is recorded
    complete only after its chunks are written, so a rerun with the same arguments skips the
    complete shards and finishes the others (a killed run loses at most the shards in flight).

    Args:
      model: a Keras model (never modified), or for ``engine="ray"`` also a model path.
      data: a folder of images (sorted; ids are paths relative to it), a list of image paths,
        an array (N, H, W, C) or ``(images, labels)``, or a `tf.data.Dataset` of images or
        ``(images, labels)``, single or batched (ids are row indices).
      methods: registry names or titles (a list, or one comma-separated string),
        ``{name: options}`` dicts, or factories ``model -> Explainer``.
      out: the run's directory: new, empty, or an earlier run of the same arguments.
      targets: ``"top1"`` (the model's prediction), ``"labels"`` (from ``data``), a class id,
        one class per image, or a callable ``outputs -> (N,)`` scores.
      labels: labels for array ``data`` (for ``targets="labels"``).
      batch_size: images per compiled chunk.
      shard_size: images per shard (unit of resume; bounds memory: the local engine holds
        about three shards' images and maps: one read ahead, one explained, one written).
      strategy: None, a `tf.distribute.Strategy` (each chunk split over its replicas), or
        ``"auto"`` (MirroredStrategy over all GPUs when there are several).
      engine: ``"local"`` (this process) or ``"ray"`` (`explain_dataset_ray`).
      dtype: ``"float16"`` or ``"float32"`` maps in the store.
      preprocess: for image files: ``none`` (0..255), ``scale`` (0..1) or a
        ``keras.applications`` module name.
      seed: passed as ``seed=`` to seeded methods (RISE, SmoothGrad...) not given one.
      overwrite: replace an earlier run with other arguments in ``out``.
      verbose: 1 shows a progress bar (images/s, ETA); 0 is silent.
      ray_address, num_workers, num_gpus: for ``engine="ray"``.

    Returns:
      The `DatasetExplanation` of ``out``.

    Raises:
      FileExistsError: ``out`` holds other files, or a run with other arguments (pass
        ``overwrite=True`` to replace that run).
    """
    import tfvis
    from tfvis.inputs import input_shape

    store.zarr_module()
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {DTYPES}, got {dtype!r}")
    if engine not in ("local", "ray"):
        raise ValueError(f"engine must be 'local' or 'ray', got {engine!r}")
    for name, value in (("batch_size", batch_size), ("shard_size", shard_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive int, got {value!r}")
    model_path = None
    if isinstance(model, (str, Path)):
        from tfvis.io import load_model

        model_path = str(model)
        model = load_model(model_path).model
    out = Path(out)
    specs = method_specs(methods)
    shape = input_shape(model)
    reader = reader_for(data, shape, preprocess, labels)
    if isinstance(targets, str) and targets not in ("top1", "labels"):
        raise ValueError(f"targets must be 'top1', 'labels', a class id, one class per image or "
                         f"a callable, got {targets!r}")
    if not isinstance(targets, (str, int, np.integer, type(None))) and not callable(targets):
        if len(np.asarray(targets)) != reader.n:
            raise ValueError(f"{len(np.asarray(targets))} targets for {reader.n} images")
    map_shape = tuple(reader.image_size)
    if None in map_shape:
        map_shape = tuple(shape[1:3])
    if None in map_shape:
        raise ValueError("the image size is unknown: give images of a fixed size (resize them "
                         "in the dataset) or a model with a fixed input size")
    shards = plan(reader.n, int(shard_size))
    arguments = {
        "model_fingerprint": model_fingerprint(model),
        "methods": [s.describe() for s in specs],
        "targets": _describe_targets(targets),
        "data": reader.describe(),
        "n": reader.n,
        "map_shape": list(map_shape),
        "dtype": dtype,
        "shard_size": int(shard_size),
        "seed": seed,
    }
    previous = store.check_out(out, overwrite)
    if previous is not None and previous.get("arguments") != arguments:
        if not overwrite:
            changed = sorted(k for k in arguments
                             if previous.get("arguments", {}).get(k) != arguments[k])
            raise FileExistsError(
                f"out={str(out)!r} holds a run with other arguments (changed: "
                f"{', '.join(changed)}); pass overwrite=True to replace it, or another out")
        store.clear(out)
        previous = None
    elif previous is None and out.exists() and any(out.iterdir()):
        if not overwrite:
            raise FileExistsError(f"out={str(out)!r} holds an unfinished run without a "
                                  "manifest; pass overwrite=True to replace it")
        store.clear(out)
    out.mkdir(parents=True, exist_ok=True)
    # The explainers are built here once (names resolved, options checked) before any
    # writing; workers build their own.
    explainers = build_explainers(model, specs, seed)
    keys = list(explainers)
    if previous is None:
        manifest = {
            "format": store.FORMAT,
            "tfvis_version": tfvis.__version__,
            "model": {"name": model.name, "fingerprint": arguments["model_fingerprint"],
                      "path": model_path},
            "methods": {k: {**s.describe(), "class": type(e).__name__,
                            "title": getattr(e, "title", "")}
                        for (k, e), s in zip(explainers.items(), specs)},
            "input_size": [int(d) if d is not None else None for d in shape[1:]],
            "n": reader.n,
            "seed": seed,
            "arguments": arguments,
            "complete": False,
            "skipped": [],
        }
        store.create(out, keys, reader.n, map_shape, dtype, int(shard_size))
        store.atomic_write(out / store.MANIFEST, json.dumps(manifest, indent=1))
    else:
        manifest = previous
    done = store.done_shards(out)
    pending = [s for s in shards if s.index not in done]
    job = Job(str(out), reader, specs, seed, targets, int(batch_size), shards)
    if pending:
        if engine == "ray":
            from tfvis.distributed.ray_engine import run_ray

            run_ray(job, model_path or model, pending, address=ray_address,
                    num_workers=num_workers, num_gpus=num_gpus, verbose=verbose)
        else:
            run_local(job, explainers, pending, _resolve_strategy(strategy), verbose)
    done = store.done_shards(out)
    missing = [s.index for s in shards if s.index not in done]
    if missing:
        raise RuntimeError(f"shards {missing[:10]} were not completed; rerun to finish them")
    _write_index(out, keys, reader.n, int(shard_size))
    manifest["skipped"] = [item for i in sorted(done) for item in done[i]["skipped"]]
    manifest["complete"] = True
    store.atomic_write(out / store.MANIFEST, json.dumps(manifest, indent=1))
    return store.DatasetExplanation(out)


def explain_dataset_ray(model: Any, data: Any, methods: Any, out: str | Path, *,
                        address: str | None = None, num_workers: int = 2, num_gpus: float = 0,
                        **kwargs: Any):
    """`explain_dataset` on a Ray cluster: Ray Data maps pending shards over an actor pool
    (``num_workers`` actors, ``num_gpus`` each; one set of explainers per actor). ``address``:
    an existing cluster (``"auto"``, ``"ray://host:10001"``) or None (the initialised one, or a
    local one). ``out`` must be on storage every worker can write (a shared file system)."""
    return explain_dataset(model, data, methods, out, engine="ray", ray_address=address,
                           num_workers=num_workers, num_gpus=num_gpus, **kwargs)
