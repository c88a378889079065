"""`evaluate_store`: metrics over a whole `tfvis.explain_dataset` run, without recomputing maps.

The store holds the maps, the explained class of each image and the ids, not the images: the
user passes the same data again, read by the same reader as the run (same order, same
preprocessing; folder ids are checked block by block). Images and the stored maps are
streamed in blocks of ``block_size`` rows (the next block read on a background thread), each
block scored by every metric and method, and the per-image results joined, so memory is one
block of images and maps whatever the dataset's size. No explainer is built or called.

Only metrics computed per image from ``(images, maps, targets)`` can be streamed this way
(`STREAMABLE`); their per-image values do not depend on how the images are blocked, so the
result equals the metric on all images at once (up to float rounding of the model's batches).
Images the run skipped (unreadable files) or explained for a non-class target are left out
and counted in the notes.

Example:
  >>> run = tfvis.explain_dataset(model, "photos/", ["gradcam", "rise"], "runs/photos")
  >>> ev = tfvis.metrics.evaluate_store(model, "photos/", "runs/photos")
  >>> print(ev.to_markdown())
"""

from __future__ import annotations

import contextlib
import os
import time
from types import MappingProxyType
from typing import Any, Sequence

import numpy as np

from tfvis.metrics.evaluate import LEVEL, Evaluation, build_metric, metric_key
from tfvis.metrics.result import MetricResult

#: The metrics `evaluate_store` takes: per image, from images, maps and targets.
STREAMABLE = ("deletion", "insertion", "average_drop", "increase_in_confidence", "mu_fidelity")


def join_results(parts: Sequence[MetricResult], per_image: Sequence[str] = ()) -> MetricResult:
    """One `MetricResult` from the results of consecutive blocks of images.

    ``values`` and ``curves`` are concatenated, as are the ``per_image`` extras;
    ``model_calls`` is summed; other extras (the curves' x axis...) are the first block's.
    """
    first = parts[0]
    curves = None if first.curves is None else np.concatenate([p.curves for p in parts])
    extras = {}
    for key, value in first.extras.items():
        if key in per_image:
            extras[key] = np.concatenate([p.extras[key] for p in parts])
        elif key == "model_calls":
            extras[key] = sum(p.extras[key] for p in parts)
        else:
            extras[key] = value
    return MetricResult(first.name, np.concatenate([p.values for p in parts]), curves,
                        MappingProxyType(extras))


def _metrics(metrics: Any, model: Any, seed: int, batch_size: int | None) -> list[tuple]:
    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    built = []
    for metric in metrics:
        if isinstance(metric, str):  # an unknown name: ValueError with close matches
            metric = build_metric(metric, model, seed=seed, batch_size=batch_size)
        key = metric_key(metric)
        if key not in STREAMABLE:
            raise ValueError(f"{key} cannot be computed over a store: it needs object masks or "
                             f"boxes, not only images and maps. evaluate_store takes "
                             f"{', '.join(STREAMABLE)}; run tfvis.metrics.evaluate on a batch "
                             "with masks= or boxes= for the others")
        if any(k == key for k, _ in built):
            raise ValueError(f"metric {key!r} is listed twice")
        built.append((key, metric))
    if not built:
        raise ValueError("metrics is empty: name at least one, e.g. ['deletion', 'insertion']")
    return built


def _open(model: Any, data: Any, out: Any, methods: Sequence[str] | None):
    """The run in ``out`` (checked complete and of ``model``), the reader of ``data`` (checked
    to be the run's data) and the methods to score."""
    from tfvis.distributed.runner import model_fingerprint
    from tfvis.distributed.shards import reader_for
    from tfvis.distributed.store import DatasetExplanation
    from tfvis.inputs import input_shape

    run = out if isinstance(out, DatasetExplanation) else DatasetExplanation(out)
    manifest = run.manifest
    if not manifest.get("complete", False):
        raise ValueError(f"the run in {str(run.out)!r} is not finished: rerun explain_dataset "
                         "with the same arguments to complete it, then evaluate it")
    if model_fingerprint(model) != manifest["model"]["fingerprint"]:
        raise ValueError(f"model is not the model the run in {str(run.out)!r} explained (its "
                         "weights or layers differ); pass that model")
    described = manifest["arguments"]["data"]
    reader = reader_for(data, input_shape(model), described.get("preprocess", "none"))
    if reader.describe() != described:
        raise ValueError(f"data is not the data the run in {str(run.out)!r} explained (it has "
                         f"{described}, this is {reader.describe()}); pass the same folder, "
                         "paths, arrays or dataset, in the same order")
    names = list(run.methods) if methods is None else [methods] if isinstance(
        methods, str) else list(methods)
    for name in names:
        run._check(name)  # KeyError naming the run's methods
    if not names:
        raise ValueError(f"methods is empty; the run has {run.methods}")
    return run, reader, names


def evaluate_store(
    model: Any,
    data: Any,
    out: str | os.PathLike | Any,
    metrics: Sequence[Any] | Any = ("deletion", "insertion"),
    *,
    methods: Sequence[str] | None = None,
    block_size: int = 256,
    batch_size: int | None = None,
    seed: int = 0,
    verbose: int = 1,
) -> Evaluation:
    """Scores the maps of an `explain_dataset` run with ``metrics``, streamed from its store.

    Args:
      model: the model the run explained (checked against the run's fingerprint).
      data: the data given to `explain_dataset` (a folder, image paths, arrays or a
        `tf.data.Dataset`), read again in the same order with the run's preprocessing.
      out: the run's folder, or its `DatasetExplanation` (`tfvis.open_explanations`).
      metrics: names from `STREAMABLE` or `tfvis.metrics` instances of those (e.g.
        ``Deletion(model, steps=32)``).
      methods: the run's methods to score (default: all of them).
      block_size: images per block; one block of images and maps is in memory at a time.
      batch_size: perturbed images per model call for metrics built from their names.
      seed: MuFidelity's seed when built from its name.
      verbose: 1 shows a progress bar over the images, 0 is quiet.

    Returns:
      An `Evaluation` (one row per method): ``results[method][metric]`` holds one value per
      scored image, in dataset order, for the images the run explained with a class target
      (the store's ``targets``); ``maps`` is empty (the maps stay in the store);
      ``settings["rows"]`` lists the dataset rows scored.

    Raises:
      ValueError: an unfinished run, another model or other data than the run's, a metric
        that needs object masks or boxes, or a run with no image of a class target.
    """
    from tfvis.distributed.pipeline import read_ahead
    from tfvis.distributed.shards import plan

    if isinstance(block_size, bool) or not isinstance(block_size, (int, np.integer)) \
            or block_size < 1:
        raise ValueError(f"block_size must be a positive int, got {block_size!r}")
    built = _metrics(metrics, model, seed, batch_size)
    run, reader, names = _open(model, data, out, methods)
    targets, ids, reader_ids = run.targets, run.ids, reader.ids
    rows = np.flatnonzero(targets >= 0)
    skipped = len(run.manifest.get("skipped", []))
    if not len(rows):
        raise ValueError("no image of the run has a class target (a callable or task target, "
                         "or every file was unreadable), so there is nothing to score; explain "
                         "the dataset with class targets")
    bar = None
    if verbose:
        import keras

        bar = keras.utils.Progbar(len(run), unit_name="image")
    parts: dict[str, dict[str, list[MetricResult]]] = {m: {k: [] for k, _ in built}
                                                       for m in names}
    seconds = {m: {k: 0.0 for k, _ in built} for m in names}
    blocks = read_ahead(reader.shards(plan(len(run), int(block_size)),
                                      set(range(-(-len(run) // int(block_size))))))
    with contextlib.closing(blocks):
        for block, images, _, _ in blocks:
            start, stop = block.start, block.stop
            if list(reader_ids[start:stop]) != ids[start:stop].tolist():
                raise ValueError(f"data rows {start}:{stop} are not the run's (ids differ); "
                                 "pass the data the run explained, in the same order")
            keep = targets[start:stop] >= 0
            if keep.any():
                x, wanted = images[keep], targets[start:stop][keep]
                for method in names:
                    maps = np.asarray(run.maps(method)[start:stop], np.float32)[keep]
                    for key, metric in built:
                        began = time.perf_counter()
                        parts[method][key].append(metric(x, maps, wanted))
                        seconds[method][key] += time.perf_counter() - began
            if bar is not None:
                bar.update(stop)
    results = {m: {key: join_results(parts[m][key], getattr(metric, "per_image_extras", ()))
                   for key, metric in built} for m in names}
    notes = []
    if len(rows) < len(run):
        notes.append(f"{len(run) - len(rows)} of {len(run)} images not scored: {skipped} "
                     "skipped by the run (unreadable), the others explained for a non-class "
                     "target")
    settings = {
        "images": int(len(rows)), "seed": seed, "level": LEVEL, "store": str(run.out),
        "rows": rows,
        "metrics": {key: repr(metric) for key, metric in built},
        "methods": {m: run.manifest["methods"][m].get("class", m) for m in names},
    }
    return Evaluation(names, [k for k, _ in built], results, {}, notes, settings, seconds)


__all__ = ["STREAMABLE", "evaluate_store", "join_results"]
