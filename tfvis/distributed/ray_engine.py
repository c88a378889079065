"""The Ray engine: Ray Data maps the pending shards over an actor pool.

Each actor loads the model and builds the explainers once (its constructor), then takes
shards: it reads the shard's rows itself (files or arrays; the reader travels with the job),
explains them, writes the shard's own chunks of the store and marks the shard complete
(`Job.do`: the local engine's explain and write stages, one after the other). A worker that
dies is restarted and its shard retried by Ray (Ray Data's actor pools restart actors and
retry their tasks); a shard is only marked complete after its chunks are written, so a
retried shard simply rewrites them.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from tfvis.distributed.runner import Job, _progress
from tfvis.distributed.shards import Shard


def ray_module():
    """Imports Ray, or raises an error naming the extra to install."""
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError('engine="ray" needs Ray: pip install "tfvis[distributed]"') from None
    return ray


class ShardWorker:
    """A Ray Data actor: one model and one set of explainers, many shards."""

    def __init__(self, job: Job, model: Any) -> None:
        if isinstance(model, str):
            from tfvis.io import load_model

            model = load_model(model).model
        self.job = job
        self.by_index = {s.index: s for s in job.shards}
        self.explainers = job.explainers(model)

    def __call__(self, batch: dict) -> dict:
        rows = []
        for index in np.asarray(batch["shard"]).tolist():
            shard = self.by_index[int(index)]
            images, labels, skipped = self.job.reader.read(shard)
            self.job.do(self.explainers, shard, images, labels, skipped)
            rows.append(shard.stop - shard.start)
        return {"shard": np.asarray(batch["shard"]), "rows": np.asarray(rows, np.int64)}


def run_ray(job: Job, model: Any, pending: list[Shard], *, address: str | None = None,
            num_workers: int = 2, num_gpus: float = 0, num_cpus: float = 1,
            verbose: int = 1) -> None:
    """Explains ``pending`` shards on Ray (the initialised cluster, ``address``, or a local
    one), ``num_workers`` actors with ``num_gpus`` / ``num_cpus`` each.

    Raises:
      ValueError: the data cannot be read by workers (a `tf.data.Dataset`).
    """
    ray = ray_module()
    if not getattr(job.reader, "random_access", False):
        raise ValueError('engine="ray" reads shards on the workers: give a folder, a list of '
                         "image paths or arrays, not a tf.data.Dataset (or use the local "
                         "engine / a tf.distribute strategy)")
    if not ray.is_initialized():
        ray.init(address=address, log_to_driver=bool(verbose))
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = bool(verbose) and verbose > 1
    items = ray.data.from_items([{"shard": s.index} for s in pending],
                                override_num_blocks=len(pending))
    mapped = items.map_batches(
        ShardWorker, fn_constructor_kwargs={"job": job, "model": model}, batch_size=1,
        compute=ray.data.ActorPoolStrategy(size=num_workers), num_cpus=num_cpus,
        num_gpus=num_gpus)  # Ray Data restarts dead actors and retries their shards
    total = sum(s.stop - s.start for s in pending)
    bar, done, began = _progress(total, verbose), 0, time.perf_counter()
    for batch in mapped.iter_batches(batch_size=None):
        done += int(np.sum(batch["rows"]))
        if bar is not None:
            bar.update(done, [("images/s", done / (time.perf_counter() - began))])
