"""Throughput and peak memory of `top_activations` and `FeatureIndex` over a streamed dataset.

A `tf.data.Dataset` of N generated 64x64 images (made on the fly, never held in memory) goes
through the demo CNN three ways, each in a fresh process:

* ``forward``: the floor, the model's plain compiled forward pass over the same batches;
* ``top``: ``tfvis.inspect.top_activations(model, data, "conv3b", k=9)`` (every channel);
* ``index``: ``tfvis.inspect.FeatureIndex(model, "gap", data)`` (building the index), then
  100 exact queries against it (timed apart).

Reported: images/s, the ratio of each time to the forward floor's (same run), and peak RSS
above the warmed level (MiB) for N = 2,500 and 10,000 (flat memory: ratio ~1.0; the index
holds its N x 64 float32 features by design, 2.4 MiB at 10,000).

Usage::

    python scripts/benchmark_inspect.py [--sizes 2500 10000] [--out benchmarks/inspect.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BATCH = 64


def child(n: int, mode: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import numpy as np
    import tensorflow as tf
    from benchmark import PeakMemory  # scripts/benchmark.py: RSS (or GPU allocator) peak

    from tfvis import inspect
    from tfvis.demo import build_model

    model = build_model((64, 64, 3), seed=0)

    def images(count):
        def make(i):
            return tf.random.stateless_uniform((64, 64, 3), seed=tf.stack([i, i]))
        return tf.data.Dataset.range(count).map(make).batch(BATCH)

    forward = tf.function(lambda x: tf.reduce_sum(model(x, training=False)), autograph=False)

    def run():
        if mode == "forward":
            total = 0.0
            for x in images(n).prefetch(tf.data.AUTOTUNE):  # as the runner streams
                total += float(forward(x))
            return {}
        if mode == "top":
            top = inspect.top_activations(model, images(n), "conv3b", k=9, batch_size=BATCH)
            assert top.index.max() < n
            return {}
        index = inspect.FeatureIndex(model, "gap", images(n), batch_size=BATCH)
        assert len(index) == n
        queries = np.random.default_rng(0).random((100, 64, 64, 3)).astype("float32")
        start = time.perf_counter()
        index.query(queries, k=10)
        return {"query_s": time.perf_counter() - start}

    n_real = n
    n = 2 * BATCH
    run()  # trace once, warm the allocator
    n = n_real
    start = time.perf_counter()
    with PeakMemory() as peak:
        extra = run()
    seconds = time.perf_counter() - start - extra.get("query_s", 0.0)
    print(json.dumps({"mib": peak.mib, "seconds": seconds, **extra}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2500, 10000])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    results = {}
    for n in args.sizes:
        for mode in ("forward", "top", "index"):
            out = subprocess.run([sys.executable, __file__, "--child", str(n), mode],
                                 capture_output=True, text=True, check=True)
            results[(mode, n)] = json.loads(out.stdout.splitlines()[-1])
            print(mode, n, results[(mode, n)], flush=True)
    small, large = args.sizes[0], args.sizes[-1]
    lines = [
        "# tfvis.inspect over a streamed dataset: throughput and peak memory", "",
        f"Demo CNN at 64x64, generated images streamed from `tf.data`, batch {BATCH}, CPU "
        f"({os.cpu_count()} cores, shared). Each row runs in a fresh process; peak RSS above the "
        "warmed level (MiB). Ratio: time / the plain compiled forward pass over the same "
        "batches (the floor). Command: `python scripts/benchmark_inspect.py`.", "",
        f"| mode | images/s (N={large:,}) | x floor | peak MiB N={small:,} | "
        f"peak MiB N={large:,} | memory ratio |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    floor = results[("forward", large)]["seconds"]
    names = {"forward": "forward (floor)", "top": "`top_activations` conv3b, k=9, 64 ch",
             "index": "`FeatureIndex` gap (build)"}
    for mode in ("forward", "top", "index"):
        r_small, r_large = results[(mode, small)], results[(mode, large)]
        lines.append(
            f"| {names[mode]} | {large / r_large['seconds']:,.0f} | "
            f"{r_large['seconds'] / floor:.2f} | {r_small['mib']:.1f} | {r_large['mib']:.1f} | "
            f"{r_large['mib'] / max(r_small['mib'], 1.0):.2f} |")
    q = results[("index", large)]["query_s"]
    lines += ["", f"100 exact queries (k=10, cosine) against the N={large:,} index: "
              f"{q * 1000:.0f} ms in all, including the queries' forward pass.", ""]
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
