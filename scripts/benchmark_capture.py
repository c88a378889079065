"""Speed of `tfvis.surgery.capture` on an early layer against a full forward pass.

Usage::

    python scripts/benchmark_capture.py --quick   # 64x64 input, 2 rounds: checks the script
    python scripts/benchmark_capture.py --out benchmarks/capture_resnet50.md

Workload: ``keras.applications.ResNet50(weights=None)``, 224x224, batch 8, capturing
``conv2_block1_out`` (the first residual block). Contenders, each a `tf.function` traced once
before timing and then called in interleaved rounds (medians reported, the first, tracing
call apart):

* ``forward``: the model's own forward pass, ``model(x, training=False)`` (the reference);
* ``run_graph + hook``: the user's graph executed in full, the layer kept by a hook (how
  activations were captured before `capture`; TensorFlow may prune the unused tail of the
  compiled graph itself, so this row shows what pruning at trace time adds on top);
* ``capture``: `capture(model, x, [layer])`, which runs only the layers the capture needs;
* the last two again without `tf.function` (eager), where nothing prunes the hooked run.

The captured activations are checked against the hooked ones before timing.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvis  # noqa: E402
from tfvis.surgery import capture, layer_table, run_graph  # noqa: E402
from bench_common import environment  # noqa: E402


def contenders(model, layer: str) -> dict:
    """name -> function of a batch (compiled unless its name says eager)."""

    def hooked(x):
        kept = {}

        def keep(a):
            kept["a"] = a
            return a

        run_graph(model, x, hooks={layer: keep})
        return kept["a"]

    def captured(x):
        return capture(model, x, [layer])[layer]

    return {
        "forward": tf.function(lambda x: model(x, training=False), autograph=False),
        "run_graph + hook": tf.function(hooked, autograph=False),
        "capture": tf.function(captured, autograph=False),
        "run_graph + hook, eager": hooked,
        "capture, eager": captured,
    }


def timed(fn, x) -> float:
    start = time.perf_counter()
    keras.tree.map_structure(lambda t: t.numpy(), fn(x))
    return time.perf_counter() - start


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="64x64 input, 2 rounds")
    parser.add_argument("--rounds", type=int, default=None, help="timed rounds (default 5)")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--layer", default="conv2_block1_out")
    parser.add_argument("--out", type=Path, default=None, help="write the table to this .md")
    args = parser.parse_args(argv)
    size = 64 if args.quick else 224
    rounds = args.rounds or (2 if args.quick else 5)
    model = keras.applications.ResNet50(weights=None, input_shape=(size, size, 3))
    x = tf.constant(np.random.default_rng(0).random((args.batch, size, size, 3)), tf.float32)
    paths = [i.path for i in layer_table(model)]
    position = paths.index(args.layer) + 1
    fns = contenders(model, args.layer)

    first = {name: timed(fn, x) for name, fn in fns.items()}  # traces
    np.testing.assert_allclose(fns["capture"](x).numpy(), fns["run_graph + hook"](x).numpy(),
                               rtol=1e-5, atol=1e-5)
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timed(fn, x))
    median = {name: statistics.median(t) for name, t in times.items()}

    command = "python scripts/benchmark_capture.py " + shlex.join(sys.argv[1:] if argv is None
                                                                  else argv)
    lines = [
        "# tfvis capture benchmark",
        "",
        f"ResNet50(weights=None), {size}x{size}, batch {args.batch}, capturing "
        f"`{args.layer}` (call site {position} of {len(paths)}); tfvis {tfvis.__version__}, "
        f"{environment()}; "
        f"{rounds} interleaved rounds, medians.",
        "",
        "| contender | ms / batch (median) | x forward | first call s (trace if compiled) |",
        "|---|---:|---:|---:|",
    ]
    for name in fns:
        lines.append(f"| {name} | {1000 * median[name]:.1f} | "
                     f"{median[name] / median['forward']:.3f} | {first[name]:.2f} |")
    lines += [
        "",
        f"capture / forward = **{median['capture'] / median['forward']:.3f}** (compiled); "
        f"capture / (run_graph + hook) = {median['capture'] / median['run_graph + hook']:.3f} "
        f"compiled, {median['capture, eager'] / median['run_graph + hook, eager']:.3f} eager.",
        "",
        "In compiled form TensorFlow already drops the unused tail of the hooked full run, so "
        "there `capture` saves mostly tracing time; eagerly, nothing else prunes. Absolute "
        "times move with the load of a shared machine (medians of interleaved rounds: read "
        "the ratios).",
        "",
        f"Command: `{command.strip()}`",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
