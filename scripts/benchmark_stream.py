"""Peak memory of explaining a streamed dataset, as a function of its length.

A `tf.data.Dataset` of N generated 32x32 images (made on the fly, never held in memory) is
explained with Grad-CAM through `Explainer.stream` (one chunk of inputs and maps alive at a
time; the maps are reduced to a running sum), and through `explain` (which returns every map,
so only the N x 32 x 32 result may grow). Each measurement runs in a fresh process: peak RSS
above the level after building the model and explainer and tracing the step once. Reported:
medians over rounds, and the ratio of N=10,000 to N=2,500 (flat memory: ~1.0).

Usage::

    python scripts/benchmark_stream.py [--rounds 3] [--out benchmarks/stream.md]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

SIZES = (2500, 10000)


def child(n: int, mode: str) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import tensorflow as tf
    from benchmark import PeakMemory  # scripts/benchmark.py: RSS (or GPU allocator) peak

    import tfvis
    from tfvis.demo import build_model

    model = build_model((32, 32, 3), seed=0)
    explainer = tfvis.GradCAM(model, verbose=0)

    def images(count):
        def make(i):
            return tf.random.stateless_uniform((32, 32, 3), seed=tf.stack([i, i]))
        return tf.data.Dataset.range(count).map(make)

    explainer.explain(images(64), batch_size=64)  # trace once, warm the allocator
    start = time.perf_counter()
    with PeakMemory() as peak:
        if mode == "stream":
            total = 0.0
            for part in explainer.stream(images(n), batch_size=64):
                total += float(part.maps.sum())
        else:
            result = explainer.explain(images(n), batch_size=64)
            assert len(result) == n
    seconds = time.perf_counter() - start
    print(json.dumps({"mib": peak.mib, "seconds": seconds}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(int(args.child[0]), args.child[1])
        return
    results: dict[tuple[str, int], list[float]] = {}
    for _ in range(args.rounds):
        for mode in ("stream", "explain"):
            for n in SIZES:
                out = subprocess.run([sys.executable, __file__, "--child", str(n), mode],
                                     capture_output=True, text=True, check=True)
                results.setdefault((mode, n), []).append(json.loads(out.stdout.splitlines()[-1])["mib"])
    lines = ["# Streamed dataset: peak memory vs length", "",
             "Grad-CAM, demo CNN at 32x32, batch 64, CPU; peak RSS above the warmed level "
             f"(MiB, median of {args.rounds} fresh processes). Command: "
             "`python scripts/benchmark_stream.py" + (f" --rounds {args.rounds}" if args.rounds != 3 else "")
             + "`.", "",
             "| mode | N=2,500 | N=10,000 | ratio | maps kept (N=10,000) |", "|---|---:|---:|---:|---:|"]
    for mode in ("stream", "explain"):
        small, large = (statistics.median(results[(mode, n)]) for n in SIZES)
        kept = "none (running sum)" if mode == "stream" else f"{2 * 10000 * 32 * 32 * 4 / 2**20:.0f} MiB (maps + raw)"
        lines.append(f"| {mode} | {small:.1f} | {large:.1f} | {large / max(small, 1.0):.2f} | {kept} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
