"""Throughput of deletion + insertion as a ratio to the forward floor, measured in one run.

Usage::

    python scripts/benchmark_metrics.py --quick     # seconds: checks the script
    python scripts/benchmark_metrics.py             # 64 images x 64 steps (a few minutes on CPU)
    python scripts/benchmark_metrics.py --out benchmarks/metrics.md
    python scripts/benchmark_metrics.py --others    # also xplique 2.0.2, timed and cross-checked
                                                    # (install it with scripts/setup_bench.sh)

Workload: the demo CNN (``tfvis.demo.build_model((64, 64, 3))``, untrained: the cost does
not depend on the weights), 64 random 64x64 images and random maps; `tfvis.metrics.Deletion`
(substrate ``"mean"``) and `tfvis.metrics.Insertion` (substrate ``"blur"``), 64 steps each, 128
perturbed images per model call. Deletion + insertion score ``2 * N * steps`` perturbed images
(plus one unperturbed pass of the N images each).

**Floor**: the model's own compiled forward (``tf.function(model(t, training=False))``) at the
same batch size, called on a resident batch as many times as the metrics' perturbed images
need (``2 * ceil(N * steps / batch)`` calls): the least work any implementation must do. It
has no rendering, blending, gathers, ranking, substrate or unperturbed pass.

``--others`` adds xplique 2.0.2's ``Deletion`` / ``Insertion`` on the same work (same model,
images, maps, targets, steps, batch size and substrates, passed as its ``baseline_mode``
functions), timed in the same rounds, and cross-checks the AUCs: xplique returns the mean over
images of the trapezoid AUC, computed on counts ``floor(i * H * W / steps)`` (tfvis: ``ceil``;
equal when ``steps`` divides ``H * W``, as for 64x64 and 64 steps) with ties broken in reverse
raster order (random maps have none).

Timing on a shared machine swings within seconds, so each round runs each metric back to back
with its own floor (alternating which goes first); the ratio is taken within the round and the
table quotes medians over rounds, also of the process CPU time (less sensitive to other
processes on the machine). The first calls (tracing included) are reported apart.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvis.demo import build_model  # noqa: E402
from tfvis.metrics.deletion import Deletion, Insertion  # noqa: E402
from bench_common import environment  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 images x 16 steps, 2 rounds")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=9)
    parser.add_argument("--out", help="write the Markdown table here")
    parser.add_argument("--others", action="store_true", help="also xplique (bench venv)")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.steps, args.rounds = 8, 16, 2

    model = build_model((64, 64, 3), seed=0)
    rng = np.random.default_rng(0)
    x = rng.random((args.images, 64, 64, 3)).astype(np.float32)
    maps = rng.random((args.images, 64, 64)).astype(np.float32)
    deletion = Deletion(model, steps=args.steps, batch_size=args.batch)
    insertion = Insertion(model, steps=args.steps, batch_size=args.batch)

    metrics = {"deletion": deletion, "insertion": insertion}
    model_calls = {}
    aucs = {}

    def run_metric(name):
        result = metrics[name](x, maps)
        model_calls[name] = result.extras["model_calls"]
        aucs[name] = result.mean

    others = xplique_metrics(model, x, args) if args.others else {}

    forward = tf.function(lambda t: model(t, training=False), autograph=False)
    batch = tf.constant(rng.random((args.batch, 64, 64, 3)).astype(np.float32))
    calls = math.ceil(args.images * args.steps / args.batch)  # per metric

    def floor():
        out = None
        for _ in range(calls):
            out = forward(batch)
        out.numpy()

    def timed(fn, *a):
        wall, cpu = time.perf_counter(), time.process_time()
        fn(*a)
        return time.perf_counter() - wall, time.process_time() - cpu

    start = time.perf_counter()
    for name in metrics:
        run_metric(name)
    first = time.perf_counter() - start
    floor()
    crosscheck = []
    for name, other in others.items():
        start = time.perf_counter()
        value = other(maps)
        crosscheck.append(f"| {name} | {aucs[name]:.6f} | {value:.6f} | "
                          f"{abs(aucs[name] - value):.2e} | {time.perf_counter() - start:.2f} |")
    other_s, other_ratios = [], []

    # one round = each metric once, each back to back with its floor (order alternating)
    ratios, cpu_ratios, metric_s, floor_s = [], [], [], []
    for r in range(args.rounds):
        c = f = cc = fc = 0.0
        for k, name in enumerate(metrics):
            if (r + k) % 2:
                (fw, fcpu), (cw, ccpu) = timed(floor), timed(run_metric, name)
            else:
                (cw, ccpu), (fw, fcpu) = timed(run_metric, name), timed(floor)
            c, f, cc, fc = c + cw, f + fw, cc + ccpu, fc + fcpu
        ratios.append(c / f)
        cpu_ratios.append(cc / fc)
        metric_s.append(c)
        floor_s.append(f)
        if others:
            (ow, _), (fw, _) = timed(lambda: [o(maps) for o in others.values()]), timed(
                lambda: [floor() for _ in others])
            other_s.append(ow)
            other_ratios.append(ow / fw)
        print(f"round {r + 1}: metrics {c:.3f} s, floor {f:.3f} s, ratio {c / f:.3f} "
              f"(CPU time ratio {cc / fc:.3f})", flush=True)
    model_calls = sum(model_calls.values())
    calls = 2 * calls

    perturbed = 2 * args.images * args.steps
    ratio = statistics.median(ratios)
    table = "\n".join([
        "| workload | perturbed images | model calls (floor) | metrics s (median) | "
        "floor s (median) | ratio to floor (median) | min / max ratio | CPU-time ratio "
        "(median) | first call s |",
        "|---|---|---|---|---|---|---|---|---|",
        f"| demo CNN 64x64, {args.images} images x {args.steps} steps, deletion + insertion, "
        f"batch {args.batch} | {perturbed} | {model_calls} ({calls}) | "
        f"{statistics.median(metric_s):.3f} | {statistics.median(floor_s):.3f} | "
        f"**{ratio:.3f}x** | {min(ratios):.3f} / {max(ratios):.3f} | "
        f"{statistics.median(cpu_ratios):.3f}x | {first:.3f} |",
    ])
    header = f"{args.rounds} rounds; {environment()}"
    if others:
        table += (f"\n| xplique 2.0.2, same work | {perturbed} | - | "
                  f"{statistics.median(other_s):.3f} | - | "
                  f"**{statistics.median(other_ratios):.3f}x** | {min(other_ratios):.3f} / "
                  f"{max(other_ratios):.3f} | - | - |")
        table += ("\n\nCross-check on the same maps (mean AUC over images; first call):\n\n"
                  "| metric | tfvis | xplique | abs. difference | xplique first call s |\n"
                  "|---|---:|---:|---:|---:|\n" + "\n".join(crosscheck))
    print(header)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(REPORT.format(header=header, table=table,
                                  command=" ".join(["python", "scripts/benchmark_metrics.py",
                                                    *(argv if argv is not None
                                                      else sys.argv[1:])])))
    return 0


REPORT = """# Deletion + insertion throughput

Command: `{command}` (`scripts/benchmark_metrics.py`; its docstring states the method).

{header}

{table}

The floor is the model's compiled forward on a resident batch, called as many times as the
perturbed images need; the metrics also rank the pixels, build the substrate (the image mean for
deletion, a Gaussian blur for insertion), gather and blend each chunk's images inside the
compiled step, and run one unperturbed pass of the images per metric (the "+ 2" model calls).
Target: at most 1.10x the floor and faster than xplique (its row, with ``--others``, runs in
the venv made by `bash scripts/setup_bench.sh`).
"""


def xplique_metrics(model, x, args) -> dict:
    """xplique's Deletion and Insertion on the same work, as ``maps -> mean AUC`` functions."""
    from xplique.metrics import Deletion as XDeletion
    from xplique.metrics import Insertion as XInsertion

    from tfvis.metrics._scoring import substrate_values

    probabilities = model(x, training=False).numpy()
    targets = np.eye(probabilities.shape[-1], dtype=np.float32)[probabilities.argmax(-1)]
    mean, blur = substrate_values("mean", x), substrate_values("blur", x)
    common = {"batch_size": args.batch, "steps": args.steps}
    deletion = XDeletion(model, x, targets, baseline_mode=lambda _: mean, **common)
    insertion = XInsertion(model, x, targets, baseline_mode=lambda _: blur, **common)
    return {"deletion": deletion.evaluate, "insertion": insertion.evaluate}

if __name__ == "__main__":
    raise SystemExit(main())
