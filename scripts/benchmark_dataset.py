"""Throughput and memory of `tfvis.explain_dataset` (writes benchmarks/dataset.md).

Each case runs in its own process (peak RSS is per process): images are generated on the fly
by a `tf.data` pipeline (64x64, the demo CNN's input), so memory can only grow with the
dataset if the runner keeps something per image. Throughput is a ratio to the explainer's own
`explain` on one in-memory batch of the same images, in the same process (1.0: the runner adds
nothing), timed in interleaved rounds (medians). Usage: ``python scripts/benchmark_dataset.py
[--quick] [--cases 0,1]`` (about 8 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


#: Distinct images the pool source repeats.
POOL = 512


def images(n: int, source: str = "pool"):
    """``n`` 64x64x3 images in [0, 1) from a `tf.data` pipeline. ``"pool"``: slices of
    `POOL` random images, repeated (reading costs next to nothing, so the ratio measures the
    runner); ``"generated"``: each image drawn by ``stateless_uniform`` in the pipeline (a
    data source that costs CPU, like decoding)."""
    import tensorflow as tf

    if source == "pool":
        base = tf.random.stateless_uniform((min(n, POOL), 64, 64, 3), seed=[0, 7])
        return tf.data.Dataset.from_tensor_slices(base).repeat().take(n)

    def make(i):
        return tf.random.stateless_uniform((64, 64, 3), seed=tf.stack([i, 7]), dtype=tf.float32)

    return tf.data.Dataset.range(n).map(make, num_parallel_calls=tf.data.AUTOTUNE)


def case(name: str, n: int, method: str, options: dict, engine: str, devices: int,
         rounds: int, source: str) -> dict:
    import tensorflow as tf

    if devices > 1:
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * devices)
    import numpy as np

    import tfvis
    from tfvis.demo import build_model
    from tfvis.distributed import explain_dataset

    model = build_model((64, 64, 3))
    explainer = tfvis.get_explainer(method, model, **options)
    explainer.verbose = 0
    reference = min(n, 512)
    x = np.concatenate([b for b in images(reference, source).batch(reference)
                        .as_numpy_iterator()])
    explainer.explain(x, batch_size=64)  # trace and warm up: the reference is steady-state

    def timed(fn, images: int) -> tuple[float, float]:
        """Images/s of ``fn()`` in wall time and in this process's CPU time (all threads)."""
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        return images / (time.perf_counter() - wall), images / (time.process_time() - cpu)

    # The reference explains the batch again and again, a quarter of the dataset's images in
    # all (a longer sample of the machine's load than one batch: the runs are long).
    repeats = max(1, -(-n // (4 * reference)))

    def in_memory() -> tuple[float, float]:
        return timed(lambda: [explainer.explain(x, batch_size=64) for _ in range(repeats)],
                     reference * repeats)

    kwargs = dict(batch_size=64, shard_size=512, verbose=0)
    data = images(n, source)
    if engine == "ray":
        import ray

        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        data = np.concatenate([b for b in images(n, source).batch(512).as_numpy_iterator()])
        kwargs.update(engine="ray", num_workers=2)
    if devices > 1:
        kwargs["strategy"] = tf.distribute.MirroredStrategy(
            [f"/cpu:{i}" for i in range(devices)])

    def dataset() -> tuple[float, float]:
        with tempfile.TemporaryDirectory() as tmp:
            return timed(lambda: explain_dataset(model, data, {method: options},
                                                 Path(tmp) / "out", **kwargs), n)

    ratios, cpu_ratios, speeds, references = [], [], [], []
    for r in range(rounds):  # interleaved, the order alternating: the load drifts
        if r % 2:
            speed, ref = dataset(), in_memory()
        else:
            ref, speed = in_memory(), dataset()
        ratios.append(speed[0] / ref[0])
        cpu_ratios.append(speed[1] / ref[1])
        speeds.append(speed[0])
        references.append(ref[0])
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"case": name, "n": n, "method": method, "rounds": rounds,
            "images_per_s": float(np.median(speeds)),
            "in_memory_per_s": float(np.median(references)),
            "ratio": float(np.median(ratios)), "ratios": [round(v, 3) for v in ratios],
            # Ray's workers are other processes: their CPU time is not this process's
            "cpu_ratio": None if engine == "ray" else float(np.median(cpu_ratios)),
            "peak_rss_mb": rss}


CASES = [  # name, n, method, options, engine, devices, rounds, image source
    ("Grad-CAM, one device, 2,000 images", 2000, "gradcam", {}, "local", 1, 3, "pool"),
    ("Grad-CAM, one device, 20,000 images", 20000, "gradcam", {}, "local", 1, 3, "pool"),
    ("Grad-CAM, one device, 20,000 images generated in the pipeline", 20000, "gradcam", {},
     "local", 1, 2, "generated"),
    ("RISE (N=500), one device", 64, "rise", {"num_masks": 500}, "local", 1, 2, "pool"),
    ("Grad-CAM, 2 logical CPU devices (MirroredStrategy)", 2000, "gradcam", {}, "local", 2, 3,
     "pool"),
    ("Grad-CAM, 2 Ray workers (local cluster)", 2000, "gradcam", {}, "ray", 1, 1, "pool"),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10x fewer images")
    parser.add_argument("--case", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--cases", help="comma-separated case numbers (default: all; the "
                        "table is written only when all run)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "dataset.md"))
    args = parser.parse_args()
    scale = 10 if args.quick else 1
    if args.case is not None:
        name, n, *rest = CASES[args.case]
        print(json.dumps(case(name, max(n // scale, 32), *rest)))
        return
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    rows = []
    chosen = range(len(CASES)) if not args.cases else [int(c) for c in args.cases.split(",")]
    for i in chosen:
        cmd = [sys.executable, __file__, "--case", str(i)] + (["--quick"] if args.quick else [])
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode:
            print(done.stderr[-2000:], file=sys.stderr)
            raise SystemExit(f"case {CASES[i][0]!r} failed")
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], flush=True)
    if len(rows) < len(CASES):
        return
    small, large = rows[0], rows[1]
    lines = [
        "# explain_dataset: throughput and memory",
        "",
        f"`python scripts/benchmark_dataset.py{' --quick' if args.quick else ''}` on "
        f"{os.cpu_count()} CPU cores (shared), demo CNN (64x64x3), `batch_size=64`, "
        "`shard_size=512`, float16 maps. Images come from a `tf.data` pipeline: slices of a "
        f"pool of {POOL} random images (reading costs next to nothing, so the ratio measures "
        "the runner), or, in the row that says so, each drawn in the pipeline by "
        "`stateless_uniform` (a source that costs CPU, like decoding: on 2 cores that CPU is "
        "taken from the explainer, where a GPU run would overlap it). *ratio*: "
        "images/s of `explain_dataset` (reading, explaining, writing the store, index.csv) "
        "over the explainer's own `explain` on one in-memory batch of the same images "
        f"(at most 512, explained repeatedly: a quarter of the dataset's images in all; same "
        "process; warmed up, so steady state). Each `explain_dataset` call includes its "
        "fixed costs (building and tracing its explainers, the model fingerprint, creating the "
        "store, index.csv). The two are timed in interleaved rounds (order alternating); "
        "figures are medians over the rounds, *ratios* lists each round's. *CPU ratio*: the "
        "same ratio in CPU time of the process (all its threads): what the runner's reading, "
        "writing and bookkeeping cost, less sensitive than wall time to other work on a "
        "shared machine.",
        "",
        "| case | images | images/s | in-memory explain, images/s | ratio | ratios | "
        "CPU ratio | peak RSS MB |",
        "|---|---:|---:|---:|---:|---|---:|---:|",
    ]
    for r in rows:
        cpu = "-" if r["cpu_ratio"] is None else f"{r['cpu_ratio']:.2f}"
        lines.append(f"| {r['case']} | {r['n']:,} | {r['images_per_s']:.0f} | "
                     f"{r['in_memory_per_s']:.0f} | {r['ratio']:.2f} | "
                     f"{', '.join(f'{v:.2f}' for v in r['ratios'])} | {cpu} | "
                     f"{r['peak_rss_mb']:.0f} |")
    lines += ["", f"Peak RSS, {large['n']:,} vs {small['n']:,} images: "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}x (target <= 1.2x: memory is "
              "bounded by a shard, not the dataset).", ""]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
