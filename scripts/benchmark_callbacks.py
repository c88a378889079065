"""Overhead of `ExplanationLogger` on ``model.fit`` at its default cadence (every epoch).

Fits the demo CNN on built-in shapes with the callback (TensorBoard + NPZ writers, Grad-CAM of
8 probe images at every epoch) and reports, per round, the time spent inside the callback as a
share of the rest of ``fit`` in the same run (robust to this machine's load swings), plus the
A/B ratio against a plain ``fit`` run alternated with it (noisier). Medians over rounds.

    python scripts/benchmark_callbacks.py [--rounds 5] [--epochs 3] [--images 1000]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import keras

from tfvis.callbacks import ExplanationLogger
from tfvis.datasets import shapes
from tfvis.demo import build_model


class TimedLogger(ExplanationLogger):
    """`ExplanationLogger` that adds up the wall time of its own logging."""

    seconds = 0.0

    def log(self, step, kind="epoch"):
        start = time.perf_counter()
        super().log(step, kind)
        self.seconds += time.perf_counter() - start


def fit_seconds(data, epochs: int, callbacks) -> float:
    model = build_model(data.images.shape[1:])
    model.compile(keras.optimizers.Adam(2e-3), "sparse_categorical_crossentropy")
    start = time.perf_counter()
    model.fit(data.images, data.labels, batch_size=32, epochs=epochs, shuffle=False,
              verbose=0, callbacks=callbacks)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--size", type=int, default=48)
    args = parser.parse_args()
    data = shapes(args.images, args.size, seed=0)
    probe = shapes(8, args.size, seed=1)
    fit_seconds(data, 1, [])  # warm-up: TF start-up costs are nobody's overhead
    inside, ratios = [], []
    for r in range(args.rounds):
        with tempfile.TemporaryDirectory() as out:
            logger = TimedLogger("gradcam", probe.images, "labels", probe.labels,
                                 log_dir=f"{out}/tb", npz_dir=f"{out}/npz")
            order = [("plain", []), ("logger", [logger])]
            if r % 2:
                order.reverse()
            seconds = {name: fit_seconds(data, args.epochs, cbs) for name, cbs in order}
        inside.append(logger.seconds / (seconds["logger"] - logger.seconds))
        ratios.append(seconds["logger"] / seconds["plain"])
        print(f"round {r + 1}: plain fit {seconds['plain']:.2f}s, fit with logger "
              f"{seconds['logger']:.2f}s of which logging {logger.seconds:.2f}s "
              f"(first log traces once)", flush=True)
    print(f"median time inside ExplanationLogger: {100 * statistics.median(inside):.1f}% of fit "
          f"(A/B ratio median {statistics.median(ratios):.3f}); {args.epochs} epochs of "
          f"{args.images} {args.size}x{args.size} images, logging every epoch; target <= 5%")


if __name__ == "__main__":
    main()
