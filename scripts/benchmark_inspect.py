"""Throughput and peak memory of `top_activations` and `FeatureIndex` over a streamed dataset.

A `tf.data.Dataset` of N generated 64x64 RGB images (each batch of 64 drawn on the fly with
``tf.random.stateless_uniform``; never a whole array in memory) goes through the demo CNN
(`tfvis.demo.build_model`, untrained: speed and memory do not depend on the weights) in
three ways:

* ``forward``: the floor, the model's plain compiled forward pass over the same batches of
  the same dataset (iterated as `tf.data` tensors, prefetched);
* ``top``: ``tfvis.inspect.top_activations(model, data, "conv3b", k=9)`` (all 64 channels);
* ``index``: ``tfvis.inspect.FeatureIndex(model, "gap", data)`` (building the index). After
  each build, 100 exact queries (k=10, cosine) of fresh images are timed against it, next
  to their floor: the plain forward pass of those 100 images.

Each size runs in its own process (so peaks of one size never mix with the other's). In it,
the model is built and every contender runs once on two batches (tracing, warming the
allocator); then ``rounds`` rounds each run every contender once over the whole dataset, the
order rotating from round to round. Per run: wall seconds, process CPU seconds
(`time.process_time`, less sensitive to other work on a shared machine) and the peak RSS above
the level at the start of that run, sampled every 2 ms (`benchmark.PeakMemory`). Ratios are
taken to the forward run of the same round and the table quotes medians over rounds; the
process's own peak (``ru_maxrss``, read after the last round) above its level after warming
is reported too. Then, when faiss is installed, the search alone (the queries' features) is
timed with ``backend="faiss"`` indexes (``Flat``; ``IVF256,Flat`` with ``nprobe=16``) built
from the last round's features, next to the exact backend, with their recall.

Usage::

    python scripts/benchmark_inspect.py                       # 10,000 (3 rounds), 100,000 (1)
    python scripts/benchmark_inspect.py --sizes 2000 --rounds 2 --out /tmp/inspect.md  # check
    python scripts/benchmark_inspect.py --raw raw.json    # keep the measurements;
    python scripts/benchmark_inspect.py --render raw.json # their table again
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path

BATCH = 64
SIZE = 64
QUERIES = 100
MODES = ("forward", "top", "index")


def dataset(n: int, seed: int = 0):
    """N generated images as a `tf.data.Dataset` of batches (made on the fly)."""
    import tensorflow as tf

    def batch(i):
        rows = tf.minimum(BATCH, n - tf.cast(i, tf.int32) * BATCH)
        return tf.random.stateless_uniform((rows, SIZE, SIZE, 3),
                                           seed=tf.stack([tf.cast(i, tf.int32), seed]))

    return tf.data.Dataset.range(-(-n // BATCH)).map(batch)


def child(n: int, rounds: int) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import gc
    import resource

    import numpy as np
    import tensorflow as tf
    from benchmark import PeakMemory, rss  # scripts/benchmark.py: sampled RSS peak

    from tfvis import inspect
    from tfvis.demo import build_model

    model = build_model((SIZE, SIZE, 3), seed=0)
    forward = tf.function(lambda x: tf.reduce_sum(model(x, training=False)), autograph=False)
    queries = np.random.default_rng(1).random((QUERIES, SIZE, SIZE, 3)).astype("float32")

    def run(mode: str, count: int):
        data = dataset(count)
        if mode == "forward":
            total = 0.0
            for x in data.prefetch(tf.data.AUTOTUNE):
                total += float(forward(x))
            return None
        if mode == "top":
            top = inspect.top_activations(model, data, "conv3b", k=9, batch_size=BATCH)
            assert top.index.max() < count and top.value.shape == (64, 9)
            return None
        index = inspect.FeatureIndex(model, "gap", data, batch_size=BATCH)
        assert len(index) == count
        return index

    def clock():
        return time.perf_counter(), time.process_time()

    def since(start):
        now = clock()
        return now[0] - start[0], now[1] - start[1]

    def queries_of(index) -> dict:
        """Query timings against a built index (outside its memory window)."""
        start = clock()
        idx, _ = index.query(queries, k=10)
        out = {"query": since(start)}
        assert idx.shape == (QUERIES, 10) and idx.max() < len(index)
        start = clock()
        float(forward(tf.constant(queries)))  # the queries' floor: their plain forward pass
        out["query_floor"] = since(start)
        feats = index.featurize(queries)
        start = clock()
        want, want_d = index.query(features=feats, k=10)
        out["search_exact"] = since(start)
        out["d10"] = float(np.median(want_d[:, -1]))  # the 10th neighbour's distance
        return out

    def faiss_of(index) -> dict:
        """The search alone with faiss indexes over the same features, next to exact."""
        out = {}
        if importlib.util.find_spec("faiss") is None:
            return out
        feats = index.featurize(queries)
        want, want_d = index.query(features=feats, k=10)
        data = index.features
        lists = max(1, min(256, len(data) // 39))  # faiss wants 39 rows a list; 256 from 9,984
        for name, opts in (("faiss_flat", {}),
                           ("faiss_ivf", {"faiss_index": f"IVF{lists},Flat", "nprobe": 16})):
            other = inspect.FeatureIndex.from_features(data, backend="faiss", **opts)
            start = clock()
            got, got_d = other.query(features=feats, k=10)
            out[f"search_{name}"] = since(start)
            out[f"recall_{name}"] = float(np.mean([len(set(a) & set(b)) / 10
                                                   for a, b in zip(got, want)]))
            out[f"gap_{name}"] = float(np.abs(got_d - want_d).max())  # rank by rank
            out[f"factory_{name}"] = other._search.factory
        return out

    for mode in MODES:  # trace every step once, warm the allocator
        built = run(mode, 2 * BATCH)
        if built is not None:
            queries_of(built)
            faiss_of(built)
    del built
    gc.collect()
    warm = rss()
    results = []
    for r in range(rounds):
        order = MODES[r % 3:] + MODES[: r % 3]
        row = {}
        for mode in order:
            gc.collect()
            start = clock()
            with PeakMemory() as peak:
                built = run(mode, n)
            wall, cpu = since(start)
            row[mode] = {"wall": wall, "cpu": cpu, "mib": peak.mib,
                         "rss_mib": peak.start / 2**20 + peak.mib}
            if built is not None:
                row[mode].update(queries_of(built))
                last = built  # for the faiss comparison, after the memory is read
            del built
            print(f"# n={n} round {r} {mode}: {row[mode]}", file=sys.stderr, flush=True)
        results.append(row)
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    results[-1]["index"].update(faiss_of(last))
    print(json.dumps({"n": n, "rounds": results, "warm_mib": warm / 2**20,
                      "process_peak_mib": max(0.0, (maxrss - warm) / 2**20)}))


def _median(values):
    import statistics

    return statistics.median(values)


def table(results: dict, command: str) -> str:
    sizes = sorted(results)
    small, large = sizes[0], sizes[-1]
    names = {"forward": "forward (floor)", "top": "`top_activations` conv3b, k=9, 64 channels",
             "index": "`FeatureIndex` gap, build"}

    def ratio(n, mode, key):
        return _median([r[mode][key] / r["forward"][key] for r in results[n]["rounds"]])

    def speed(n, mode):
        return n / _median([r[mode]["wall"] for r in results[n]["rounds"]])

    def peak(n, mode):
        return max(r[mode]["mib"] for r in results[n]["rounds"])

    head = "| contender |" + "".join(
        f" images/s N={n:,} | x floor wall | x floor CPU |" for n in sizes)
    lines = [
        "# tfvis.inspect over a streamed dataset: throughput and peak memory", "",
        f"Demo CNN (untrained) at {SIZE}x{SIZE}, generated images streamed from `tf.data` "
        f"(batches of {BATCH} drawn on the fly), batch {BATCH}, CPU ({os.cpu_count()} cores, "
        "shared with other work). Each size runs in its own process; "
        + ", ".join(f"N={n:,}: {len(results[n]['rounds'])} round(s)" for n in sizes)
        + ", every contender once per round over the whole dataset, the order rotating. "
        "x floor: the contender's time / the plain compiled forward pass over the same batches "
        "in the same round (median over rounds); CPU: process CPU time, less sensitive to the "
        f"other work on the machine than wall time. Command: `{command}`.", "",
        head, "|---|" + "---:|" * (3 * len(sizes)),
    ]
    for mode in MODES:
        cells = "".join(f" {speed(n, mode):,.0f} | {ratio(n, mode, 'wall'):.2f} | "
                        f"{ratio(n, mode, 'cpu'):.2f} |" for n in sizes)
        lines.append(f"| {names[mode]} |{cells}")
    lines += ["", "Peak memory of each run: its process's peak RSS while it ran (MiB), and in "
              "brackets the rise above the RSS at its start (sampled every 2 ms; max over "
              "rounds)" + (f"; ratio: peak RSS at N={large:,} / at N={small:,}." if len(sizes) > 1
                           else "."), "",
              "| contender |" + "".join(f" peak RSS N={n:,} |" for n in sizes)
              + (" ratio |" if len(sizes) > 1 else ""),
              "|---|" + "---:|" * (len(sizes) + (len(sizes) > 1))]

    def rss(n, mode):
        return max(r[mode]["rss_mib"] for r in results[n]["rounds"])

    for mode in MODES:
        cells = "".join(f" {rss(n, mode):,.0f} (+{peak(n, mode):.1f}) |" for n in sizes)
        if len(sizes) > 1:
            cells += f" {rss(large, mode) / rss(small, mode):.3f} |"
        lines.append(f"| {names[mode]} |{cells}")
    lines += ["", "Each size's whole process (`ru_maxrss`) peaked " + ", ".join(
                  f"{results[n]['process_peak_mib']:.1f} MiB above its level after warming "
                  f"({results[n]['warm_mib']:.0f} MiB) at N={n:,}" for n in sizes) + ". The "
              "exact index holds its N x 64 float32 features by design (" + ", ".join(
                  f"{n * 64 * 4 / 2**20:.1f} MiB at N={n:,}" for n in sizes) + ").", ""]
    for n in sizes:
        rounds = results[n]["rounds"]
        q = _median([r["index"]["query"][0] for r in rounds])
        f = [_median([r["index"]["query"][i] / r["index"]["query_floor"][i] for r in rounds])
             for i in (0, 1)]
        lines.append(f"{QUERIES} exact queries (k=10, cosine) against the N={n:,} index: "
                     f"{q * 1000:.0f} ms in all, {f[0]:.2f}x (wall) and {f[1]:.2f}x (CPU) the "
                     f"plain forward pass of the {QUERIES} query images in one batch (the "
                     f"query's forward runs in chunks of {BATCH}: {-(-QUERIES // BATCH) * BATCH} "
                     "rows).")
    if "search_faiss_flat" in results[large]["rounds"][-1]["index"]:
        lines += ["", f"The search alone ({QUERIES} queries given as features, k=10, cosine): "
                  "ms of wall time (last round), recall@10 of the exact backend's "
                  "neighbours and the largest difference of the distances rank by rank. "
                  "This untrained CNN maps noise images to nearly parallel GAP features "
                  "(median cosine distance of the 10th neighbour " + ", ".join(
                      f"{_median([r['index']['d10'] for r in results[n]['rounds']]):.1e} at "
                      f"N={n:,}" for n in sizes) + "), so float32 rounding alone reorders "
                  "near-ties; a gap at that rounding level means the same neighbours up to "
                  "such ties.", "",
                  "| backend |" + "".join(f" N={n:,}: ms | recall | distance gap |"
                                         for n in sizes),
                  "|---|" + "---:|" * (3 * len(sizes))]
        for key in ("exact", "faiss_flat", "faiss_ivf"):
            if key == "exact":
                name = "exact (the default: TensorFlow, blocks of 16,384 rows)"
            else:
                lists = sorted({results[n]["rounds"][-1]["index"][f"factory_{key}"]
                                for n in sizes})
                name = f"`backend=\"faiss\"`, `{'` / `'.join(lists)}`" + (
                    ", `nprobe=16`" if key == "faiss_ivf" else "")
            cells = ""
            for n in sizes:
                rounds = results[n]["rounds"][-1:]
                ms = _median([r["index"][f"search_{key}"][0] for r in rounds]) * 1000
                if key == "exact":
                    cells += f" {ms:.1f} | 1 | 0 |"
                else:
                    recall = _median([r["index"][f"recall_{key}"] for r in rounds])
                    gap = max(r["index"][f"gap_{key}"] for r in rounds)
                    cells += f" {ms:.1f} | {recall:.3f} | {gap:.1e} |"
            lines.append(f"| {name} |{cells}")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10000, 100000])
    parser.add_argument("--rounds", type=int, nargs="+", default=[3, 1],
                        help="rounds per size (the last value repeats)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--raw", type=Path, default=None,
                        help="also write the raw measurements (JSON) here")
    parser.add_argument("--render", type=Path, default=None,
                        help="only print the table of raw measurements written by --raw")
    parser.add_argument("--child", nargs=2, type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    command = "python scripts/benchmark_inspect.py" + (
        "" if args.sizes == [10000, 100000] and args.rounds == [3, 1] else
        f" --sizes {' '.join(map(str, args.sizes))} --rounds {' '.join(map(str, args.rounds))}")
    if args.render:
        raw = json.loads(args.render.read_text())
        print(table({int(n): r for n, r in raw["results"].items()}, raw["command"]))
        return
    results = {}
    for i, n in enumerate(args.sizes):
        rounds = args.rounds[min(i, len(args.rounds) - 1)]
        out = subprocess.run([sys.executable, __file__, "--child", str(n), str(rounds)],
                             stdout=subprocess.PIPE, text=True, check=True)
        results[n] = json.loads(out.stdout.splitlines()[-1])
    if args.raw:
        args.raw.write_text(json.dumps({"command": command, "results": results}))
    text = table(results, command)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
