"""Host-side cost of `explain` around its compiled step, on the demo CNN (64x64, batch 32).

For each method: the median time of ``explainer(x)`` (input checks, target resolution, the
chunk loop, the host copy, normalisation) and of the bare compiled step on the same chunk; the
difference is what tfvis adds around the model work.

Usage::

    python scripts/profile_overhead.py [gradcam gradcampp saliency ...]
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvis  # noqa: E402
from tfvis.demo import build_model  # noqa: E402
from tfvis.inputs import as_source  # noqa: E402


def median_ms(fn, calls: int = 30) -> float:
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e3


def main(names: list[str]) -> None:
    model = build_model((64, 64, 3), seed=0)
    x = np.random.default_rng(0).random((32, 64, 64, 3)).astype("float32")
    print("| method | explain ms | compiled step ms | host overhead ms |\n|---|---:|---:|---:|")
    for name in names:
        explainer = tfvis.get_explainer(name, model, verbose=0)
        explainer(x)
        resolved = explainer.resolve(as_source(x, explainer.inputs, 0), None)
        step = explainer._step(resolved.kind)
        args = [tf.constant(x), *map(tf.constant, resolved.rows(0, len(x)))]
        full = median_ms(lambda: explainer(x).maps)
        bare = median_ms(lambda: [o.numpy() for o in step(*args)])
        print(f"| {name} | {full:.2f} | {bare:.2f} | {full - bare:.2f} |")


if __name__ == "__main__":
    main(sys.argv[1:] or ["gradcam", "gradcampp", "saliency"])
