"""Speed of the gradient family (and Grad-CAM) as ratios to floors measured in the same run.

Usage::

    python scripts/benchmark_gradients.py --quick    # small CNN, 2 rounds: checks the script
    python scripts/benchmark_gradients.py            # ResNet50(weights=None), 224x224, batch 8

Methods: Saliency, GuidedBackprop, SmoothGrad, IntegratedGradients and Grad-CAM. Floors are
the model's own compiled computations (see ``scripts/benchmark.py``, whose measuring
machinery this script reuses): forward + backward to the input for the pixel-space methods,
times the number of samples (SmoothGrad) or steps (Integrated Gradients); for Grad-CAM the
forward plus the backward to the explained layer only. Contenders and floors run round-robin,
tables quote medians, the first (tracing) call is reported apart, and every explainer is
called once more with new targets to check that nothing retraces.

Targets: <= 1.10x the floor, <= 1.20x for guided backprop.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import benchmark as bench  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import tfvis  # noqa: E402

METHODS = ("saliency", "guided_backprop", "smoothgrad", "integrated_gradients", "gradcam")
TARGET = {"guided_backprop": 1.20}  # others: 1.10


def workload(quick: bool, samples: int) -> bench.Workload:
    if quick:
        from tfvis.demo import build_model

        model, size, count = build_model((64, 64, 3), seed=0), 64, 8
    else:
        model, size, count = keras.applications.ResNet50(weights=None), 224, 8
    images = np.random.default_rng(0).random((count, size, size, 3)).astype("float32")
    options = {"smoothgrad": {"num_samples": samples, "noise": 0.15, "seed": 0},
               "integrated_gradients": {"steps": samples}}
    return bench.Workload("cnn" if quick else "resnet50", model, images, count, options)


def retraces(explainer, images: np.ndarray, classes: int) -> int:
    """Traces added by a call with new targets (after the benchmark's calls): should be 0."""
    before = explainer.traces()
    targets = (np.arange(len(images)) * 7 + 3) % classes
    bench.force(explainer(images, targets=targets))
    return explainer.traces() - before


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small CNN, few rounds")
    parser.add_argument("--rounds", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument("--samples", type=int, default=None,
                        help="SmoothGrad samples and IG steps (default 50; quick 8)")
    parser.add_argument("--out", type=Path, default=None, help="write the table to this .md")
    args = parser.parse_args(argv)
    rounds = args.rounds or (2 if args.quick else 5)
    work = workload(args.quick, args.samples or (8 if args.quick else 50))
    print(f"tfvis {tfvis.__version__}, TensorFlow {tf.__version__}, Keras {keras.__version__}, "
          f"{'GPU' if bench.GPU else f'CPU ({os.cpu_count()} cores)'}; {rounds} rounds; "
          f"workload {work.name} {work.images.shape}")
    floors = bench.Floors(work)
    explainers, contenders = {}, []
    for name in METHODS:
        explainer = tfvis.get_explainer(name, work.model, verbose=0, batch_size=len(work.images),
                                        **work.options.get(name, {}))
        explainers[name] = explainer
        contenders.append(bench.Contender("tfvis", name,
                                          lambda e=explainer: bench.force(e(work.images)),
                                          floors.kinds(explainer)))
    bench.run_rounds(work, floors, contenders, rounds)
    classes = work.model.outputs[0].shape[-1]
    lines = [bench.table(work, contenders), "| method | x floor | target | verdict | retraces "
             "on new targets |", "|---|---:|---:|---|---:|"]
    failed = False
    for c in contenders:
        if c.error:
            lines.append(f"| {c.method} | failed | | FAIL | |")
            failed = True
            continue
        ratio = float(np.median(c.ratios))
        target = TARGET.get(c.method, 1.10)
        extra = retraces(explainers[c.method], work.images, classes)
        ok = ratio <= target and extra == 0
        failed |= not ok
        lines.append(f"| {c.method} | {ratio:.2f} | {target:.2f} | {'PASS' if ok else 'FAIL'} "
                     f"| {extra} |")
    report = "\n".join(lines)
    print(report)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("# tfvis gradient-family benchmark\n\n" + report + "\n")
    return 1 if failed and not args.quick else 0


if __name__ == "__main__":
    sys.exit(main())
