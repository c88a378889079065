"""Time per PGD step as a ratio to a forward + backward floor measured in the same run.

Usage::

    python scripts/benchmark_adversarial.py --quick     # a minute: checks the script
    python scripts/benchmark_adversarial.py             # the measurement (minutes on a CPU)
    /tmp/benchvenv/bin/python scripts/benchmark_adversarial.py --others \\
        --out benchmarks/adversarial.md                 # + the Adversarial Robustness Toolbox

Workloads: untargeted L-inf PGD (eps 8/255, step 2.5 * eps / steps, random start, labels =
the model's predictions) of (i) the demo CNN (``tfvis.demo.build_model((64, 64, 3))``,
untrained: the cost does not depend on the weights), 64x64, 32 images, and (ii)
``keras.applications.VGG16(weights=None, input_shape=(128, 128, 3))`` (with its 1000-class
head), 128x128, 4 images. tfvis runs one `tfvis.featurevis.adversarial.Attack` (its step
compiled once, first call timed apart), images in [0, 1] fed as they are.

**Floor**: the least work any PGD implementation must do per step: the compiled forward of the
whole model plus the backward of the cross-entropy to the input, for the same batch
(``tf.function``: ``d sum CE(y, model(x)) / d x`` on a resident batch). A tfvis call of ``S``
steps also predicts the clean and the adversarial batch (two forwards), draws the random start
and projects every step; "per step" divides the whole call by ``S``.

``--others`` adds ART (``adversarial-robustness-toolbox``, installed by
``bash scripts/setup_bench.sh``): ``ProjectedGradientDescent`` (which dispatches to its
TensorFlow-2 implementation) on a ``TensorFlowV2Classifier(model, nb_classes, input_shape,
loss_object=SparseCategoricalCrossentropy(), clip_values=(0, 1))`` at the same eps, step
size, steps, random start (``num_random_init=1``) and batch, ``generate(x)`` without labels
(it predicts them).

Timing on a shared machine swings within seconds, so each round runs the floor and every
contender once (the order rotates every round) for the same number of steps; ratios are taken
within the round and the table quotes medians over rounds, also of the process CPU time. A
second tfvis call with other images and targets must not retrace (`Attack.traces`); the script
exits 1 when it does.
"""

from __future__ import annotations

import argparse
import os
import statistics

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvis.demo import build_model  # noqa: E402
from tfvis.featurevis.adversarial import Attack  # noqa: E402
from bench_common import environment, interleaved, ratio_cells, report, timed  # noqa: E402

EPS = 8 / 255


def workloads(args):
    if "demo" in args.workloads:
        yield ("demo CNN, 64x64", build_model((64, 64, 3), seed=0), 64, args.demo_images,
               args.rounds)
    if "vgg16" in args.workloads:
        yield ("VGG16 (weights=None), 128x128",
               keras.applications.VGG16(weights=None, input_shape=(128, 128, 3)), 128,
               args.vgg_images, args.vgg_rounds)


def floor_step(model, x, y):
    loss = keras.losses.SparseCategoricalCrossentropy(reduction="sum")

    @tf.function(autograph=False)
    def step(x, y):
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = loss(y, model(x, training=False))
        return tape.gradient(value, x)

    x, y = tf.constant(x), tf.constant(y)
    return lambda: step(x, y)


def art_contender(model, x, steps, classes):
    from art.attacks.evasion import ProjectedGradientDescent
    from art.estimators.classification import TensorFlowV2Classifier

    classifier = TensorFlowV2Classifier(
        model=model, nb_classes=classes, input_shape=x.shape[1:],
        loss_object=keras.losses.SparseCategoricalCrossentropy(), clip_values=(0.0, 1.0))
    attack = ProjectedGradientDescent(classifier, norm=np.inf, eps=EPS,
                                      eps_step=2.5 * EPS / steps, max_iter=steps,
                                      num_random_init=1, batch_size=len(x), verbose=False)
    return lambda: attack.generate(x)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo CNN only, 8 images, 3 steps, 2 rounds")
    parser.add_argument("--demo-images", type=int, default=32)
    parser.add_argument("--vgg-images", type=int, default=4)
    parser.add_argument("--steps", type=int, default=10, help="PGD steps per call")
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the demo CNN")
    parser.add_argument("--vgg-rounds", type=int, default=3, help="rounds of VGG16")
    parser.add_argument("--workloads", nargs="+", default=["demo", "vgg16"],
                        choices=["demo", "vgg16"])
    parser.add_argument("--others", action="store_true", help="also ART's PGD")
    parser.add_argument("--out", help="write the Markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.demo_images, args.steps, args.rounds, args.workloads = 8, 3, 2, ["demo"]
        args.vgg_rounds = 2
    steps = args.steps

    rows, notes, ok = [], [], True
    for title, model, side, n, rounds in workloads(args):
        rng = np.random.default_rng(0)
        x = rng.random((n, side, side, 3)).astype(np.float32)
        other = rng.random((n, side, side, 3)).astype(np.float32)
        classes = int(model.outputs[0].shape[-1])
        y = model.predict(x, verbose=0).argmax(1).astype(np.int32)
        contenders, first = {}, {}

        floor = floor_step(model, x, y)
        first["floor"] = timed(lambda: floor().numpy())[0]
        contenders["floor"] = lambda: [floor() for _ in range(steps)][-1].numpy()

        attack = Attack(model, batch_size=n)
        common = dict(eps=EPS, steps=steps, seed=0, verbose=0)
        first["tfvis PGD"] = timed(lambda: attack.run(x, **common))[0]
        traces = attack.traces
        attack.run(other, target=np.arange(n) % classes, **common)
        retraced = attack.traces - traces
        ok &= retraced == 0
        notes.append(f"{title}: traces after the first call {traces}; after a second call with "
                     f"other images and a targeted attack {attack.traces} "
                     f"({'no retrace' if retraced == 0 else 'RETRACED'})")
        contenders["tfvis PGD"] = lambda: attack.run(x, **common)
        # the marginal cost of a step: tfvis's compiled step alone, called like the floor
        step = attack._step("inf")
        args_ = [tf.constant(v) for v in (x, x, y, np.ones(n, np.float32), np.float32(EPS),
                                          np.float32(2.5 * EPS / steps))]
        first["tfvis PGD, step only"] = timed(lambda: step(*args_)[0].numpy())[0]
        contenders["tfvis PGD, step only"] = \
            lambda: [step(*args_) for _ in range(steps)][-1][0].numpy()
        if args.others:
            try:
                run = art_contender(model, x, steps, classes)
                first["ART 1.20.1 PGD"] = timed(run)[0]
                contenders["ART 1.20.1 PGD"] = run
            except Exception as error:  # noqa: BLE001 - report and go on
                notes.append(f"{title}: ART skipped ({type(error).__name__}: {error})")
                print(notes[-1], flush=True)
        times, cpus = interleaved(contenders, rounds, title, steps)
        for name in contenders:
            per_step = statistics.median(times[name]) / steps
            rows.append(
                f"| {title} | {n} | {name} | {per_step:.4f} | "
                + ("1 (floor) | - | -" if name == "floor" else
                   ratio_cells(times, cpus, name, "floor"))
                + f" | {first[name]:.2f} |")

    header = (f"L-inf PGD, eps 8/255, {steps} steps per call, {args.rounds} rounds (demo CNN) / "
              f"{args.vgg_rounds} (VGG16); {environment()}")
    table = "\n".join([
        "| workload | images | contender | s per step (median) | ratio to floor (median) | "
        "min / max ratio | CPU-time ratio (median) | first call s |",
        "|---|---:|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
    report(args.out, "benchmark_adversarial.py", argv, REPORT, header, table, notes)
    return 0 if ok else 1


REPORT = """# Adversarial attacks: time per PGD step

Command: `{command}` (`scripts/benchmark_adversarial.py`; its docstring states the method).

{header}

{table}

{notes}

"s per step" is a whole call (all steps, the clean and adversarial predictions, the random
start) divided by the steps. "step only" calls tfvis's compiled step (forward, backward, sign
step, projection) ``S`` times on a resident batch, like the floor: the marginal cost of a step.
"first call s" is the first whole call, tracing included (one step for the floor and "step
only"; ``S`` steps, and ART's set-up, otherwise). The floor is the compiled forward of the whole
model plus the backward of the cross-entropy to the input of the same batch, once per step. A
whole call also runs two forwards (the clean and the adversarial predictions), so its least
ratio is about ``1 + 2 * forward / (S * (forward + backward))``, 1.1x at 10 steps. Target: at
most 1.15x the floor, and no slower than ART (rows with ``--others``, run with the venv made by
`bash scripts/setup_bench.sh`).
"""

if __name__ == "__main__":
    raise SystemExit(main())
