"""Time per feature-visualisation step as a ratio to a floor measured in the same run.

Usage::

    python scripts/benchmark_featurevis.py --quick      # about a minute: checks the script
    python scripts/benchmark_featurevis.py              # the measurement (minutes on a CPU)
    python scripts/benchmark_featurevis.py --out benchmarks/featurevis.md
    /tmp/benchvenv/bin/python scripts/benchmark_featurevis.py --others   # + tf-keras-vis, xplique
    python scripts/benchmark_featurevis.py --breakdown  # + tfvis without transforms / Fourier
    python scripts/benchmark_featurevis.py --pieces     # CPU time of the step's own pieces
    python scripts/benchmark_featurevis.py --transforms jitter --others  # the target setting

Workloads: a 64-channel filter grid (``objectives.channel(layer, range(64))``: 64 images,
image i for channel i, one compiled step) of (i) ``keras.applications.VGG16(weights=None,
include_top=False, input_shape=(128, 128, 3))`` at ``block3_conv1``, 128x128, and (ii) the demo
CNN (``tfvis.demo.build_model((64, 64, 3))``, untrained: the cost does not depend on the
weights) at ``conv3b``, 64x64. tfvis runs with its defaults: Fourier parameterisation (decay 1,
decorrelated colour, sigmoid; on a CPU rendered by one XLA cluster from 64x64 up, see
`tfvis.featurevis.params.renderer`), the standard transforms (jitter +-side/32 px, scale
0.95-1.05, rotate +-5 degrees, one bilinear resampling per image), no regulariser, Adam(0.05),
images in [0, 1] fed as they are (no preprocessing), through one `tfvis.featurevis.Visualizer`.

``--transforms jitter`` gives every contender jitter only (the setting the issue's target
names: "jitter and Fourier parameterisation on"): tfvis ``Jitter(side/32)``, which for Fourier
images (periodic) is a circular shift done as a phase ramp on the spectrum inside the rendering
(no resampling); tf-keras-vis ``Jitter(side/32)``; xplique ``random_jitter(2 * side/32)`` (its
crop, then its resize back to ``side``).

**Floor**: the least work any implementation must do per step: the compiled forward of the
model up to the visualised layer plus the backward to the input, for the same 64 images
(``tf.function``: ``d sum(layer(x)) / d x`` on a resident batch). It has no parameterisation,
transforms, objective or optimiser. The whole model's forward + backward (through
``block5_pool`` for VGG16) is more work than any layer objective needs; ``--full-floor``
times it once for reference.

``--others`` adds, at the same steps, images, image size and (as far as each library allows)
settings: tf-keras-vis 0.8.7 ``ActivationMaximization`` (``ExtractIntermediateLayer(layer)``,
score = mean of channel i for image i; pixel parameterisation (it has no Fourier one), its
``Jitter(side/32)``, ``Rotate2D(5)``, ``Scale(0.95, 1.05)`` input modifiers, no regulariser,
Adam(0.05), input range (0, 1); it runs eagerly) and xplique 2.0.2
``features_visualizations`` (``Objective.channel(model, layer, range(64))``; ``use_fft``,
``fft_decay=1``, sigmoid, its ``random_jitter(2 * side/32)`` (a random crop) and
``random_scale((0.95, 1.05))`` composed (it has no rotation), no regulariser,
``custom_shape=(side, side)``, Adam(0.05)). xplique's ``optimize`` builds a new
``tf.function`` per call, so the timed run is what ``optimize`` does on a step built once: its
start (``fft_image``), its loop body (its compiled gradient step, then
``optimizer.apply_gradients``) and its final images (``image_param``), like a timed tfvis
``Visualizer.run`` (start spectrum, steps, final rendering); its first call is a full
``optimize(nb_steps=1)``, tracing included. What xplique does per step (its source,
``features_visualizations/optim.py``, ``transformations.py``, ``preconditioning.py``): the
same spectrum shape and 1/f scale, TensorFlow's ``irfft2d``, a 3x3 colour matmul, a sigmoid
and a per-image min-max rescaling; then one random crop of ``side - 2 * side/32`` and one
random bilinear resize by 0.95-1.05, each drawn once for the whole batch (unseeded, global
TensorFlow RNG), and a bilinear resize back to ``side``; no rotation; float32; Adam on the
spectrum. So xplique does two bilinear resizes (and their gradients) where tfvis does one
projective resampling per image (and its gradient), and no rotation: tfvis's resampling costs
the same with or without rotation (``--breakdown`` has a row with jitter + scale only, xplique's
set of transforms).

``--pieces`` times, alone, what a tfvis step adds to the floor, forward + backward for 64 images
at 64x64 and 128x128 (process CPU time in ms, the least over interleaved rounds): the Fourier
rendering with TensorFlow's kernels op by op and as the step runs it on a CPU (one XLA
cluster, `tfvis.featurevis.params.renderer`), that cluster with the jitter as a phase ramp,
the resampling (jitter + scale + rotate) and Adam on the spectrum (Keras's kernels, and
`tfvis.featurevis.adam`'s one fused kernel, the default); then whole runs of 1 and 11 steps
(default transforms, and jitter only) on a model that costs next to nothing (a strided 1x1
convolution with 64 channels; medians over rounds): their difference / 10 is what a step adds
beyond the model, the rest the set-up of a call. With ``--others`` xplique's run
(as timed in the table) is measured the same way. This does not depend on the model, so it
is far less noisy than the ratios on a shared machine.

Timing on a shared machine swings within seconds, so each round runs the floor and every
contender once (the order rotates every round), each for the same number of steps; ratios are
taken within the round and the table quotes medians over rounds, also of the process CPU time
(less sensitive to other processes on the machine). First calls (tracing included) are
reported apart. A second tfvis call with other channels must not retrace (the Visualizer's
trace count); the script exits 1 when it does.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from tfvis.demo import build_model  # noqa: E402
from tfvis.featurevis import Visualizer, objectives  # noqa: E402
from tfvis.featurevis import params as params_lib  # noqa: E402
from tfvis.featurevis.adam import Adam  # noqa: E402
from tfvis.featurevis import transforms as tf_lib  # noqa: E402
from bench_common import environment, interleaved, ratio_cells, report, timed  # noqa: E402


def describe(channels) -> str:
    """``"64..127"`` or ``"32..63, 0..31"``."""
    parts, start = [], channels[0]
    for a, b in zip(channels, channels[1:] + [None]):
        if b != a + 1:
            parts.append(f"{start}..{a}")
            start = b
    return ", ".join(parts)


def workloads(args):
    if "vgg16" in args.workloads:
        model = keras.applications.VGG16(weights=None, include_top=False,
                                         input_shape=(128, 128, 3))
        yield "VGG16 (weights=None) block3_conv1, 128x128", model, "block3_conv1", 128, \
            args.vgg_steps
    if "demo" in args.workloads:
        yield "demo CNN conv3b, 64x64", build_model((64, 64, 3), seed=0), "conv3b", 64, \
            args.demo_steps


def floor_step(model, layer, n, side, seed=0):
    prefix = keras.Model(model.inputs, model.get_layer(layer).output)

    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(prefix(x, training=False))
        return tape.gradient(y, x)

    x = tf.constant(np.random.default_rng(seed).random((n, side, side, 3)).astype(np.float32))
    return lambda: step(x)


def full_floor(model, n, side, floor):
    """The whole model's forward + backward once: seconds, and the ratio to the floor step
    timed right before and after it."""
    @tf.function(autograph=False)
    def step(x):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = tf.reduce_sum(model(x, training=False))
        return tape.gradient(y, x)

    x = tf.constant(np.random.default_rng(1).random((n, side, side, 3)).astype(np.float32))
    step(x).numpy()
    before = timed(lambda: floor().numpy())[0]
    full = timed(lambda: step(x).numpy())[0]
    after = timed(lambda: floor().numpy())[0]
    return full, 2 * full / (before + after)


def tkv_contender(model, layer, n, side, channels, jitter_only=False):
    from tf_keras_vis.activation_maximization import ActivationMaximization
    from tf_keras_vis.activation_maximization.input_modifiers import Jitter, Rotate2D, Scale
    from tf_keras_vis.utils.model_modifiers import ExtractIntermediateLayer

    am = ActivationMaximization(model, model_modifier=ExtractIntermediateLayer(layer))
    onehot = tf.constant(np.eye(model.get_layer(layer).output.shape[-1],
                                dtype=np.float32)[channels][:, None, None, :])
    seed = np.random.default_rng(0).random((n, side, side, 3)).astype(np.float32)

    def score(out):
        return tf.reduce_mean(tf.reduce_sum(out * onehot, -1), axis=(1, 2))

    def run(steps):
        am(score, seed_input=seed, input_range=(0.0, 1.0),
           input_modifiers=[Jitter(jitter=max(1, side // 32))] + (
               [] if jitter_only else [Rotate2D(degree=5.0), Scale(low=0.95, high=1.05)]),
           regularizers=[], steps=steps, optimizer=keras.optimizers.Adam(0.05))

    return run


def xplique_contender(model, layer, n, side, channels, jitter_only=False):
    from xplique.features_visualizations import (Objective, compose_transformations,
                                                 optimize, random_jitter, random_scale)
    from xplique.features_visualizations.optim import _get_optimisation_step
    from xplique.features_visualizations.preconditioning import (fft_image, fft_to_rgb,
                                                                 get_fft_scale, to_valid_rgb)

    transformations = compose_transformations(
        [random_jitter(2 * max(1, side // 32))] + ([] if jitter_only else
                                                   [random_scale((0.95, 1.05))]))
    objective = Objective.channel(model, layer, list(channels))
    settings = dict(use_fft=True, fft_decay=1.0, regularizers=None,
                    transformations=transformations, custom_shape=(side, side))

    def first():
        optimize(objective, optimizer=keras.optimizers.Adam(0.05), nb_steps=1, **settings)

    model_r, objective_function, _, input_shape = objective.compile()
    shape = (n, side, side, 3)
    inputs = tf.Variable(fft_image(shape, 0.01), trainable=True)
    scale = get_fft_scale(side, side, decay_power=1.0)

    def image_param(v):
        return to_valid_rgb(fft_to_rgb(shape, v, scale), "sigmoid", (0, 1))

    step = _get_optimisation_step(objective_function, len(model_r.outputs), image_param,
                                  input_shape, transformations, None)
    optimizer = keras.optimizers.Adam(0.05)

    def run(steps):  # what optimize does, without building a new tf.function per call
        inputs.assign(fft_image(shape, 0.01))  # its start
        for _ in range(steps):  # its loop body
            grads = step(model_r, inputs)
            optimizer.apply_gradients([(-grads, inputs)])
        image_param(inputs).numpy()  # its final images

    return first, run


def bare_steps(n: int, side: int, others: bool, rounds: int) -> dict:
    """CPU ms per step and per call of whole runs on a model that costs next to nothing (a
    strided 1x1 convolution): what each library adds to the floor, measured without it."""
    inp = keras.Input((side, side, 3))
    model = keras.Model(inp, keras.layers.Conv2D(n, 1, strides=16, name="c")(inp))
    vis = Visualizer(model)
    jitter = Visualizer(model, transforms=(tf_lib.Jitter(max(1, side // 32)),))
    runs = {"tfvis": lambda k: vis.run(objectives.channel("c", range(n)), steps=k, verbose=0),
            "tfvis, jitter only": lambda k: jitter.run(objectives.channel("c", range(n)),
                                                       steps=k, verbose=0)}
    if others:
        runs["xplique 2.0.2"] = xplique_contender(model, "c", n, side, list(range(n)))[1]
    times = {(name, k): [] for name in runs for k in (1, 11)}
    for run in runs.values():
        run(1)
    for _ in range(rounds):
        for name, run in runs.items():
            for k in (1, 11):
                times[(name, k)].append(timed(lambda: run(k))[1])
    out = {}
    for name in runs:
        one, eleven = (statistics.median(times[(name, k)]) for k in (1, 11))
        step = (eleven - one) / 10
        out[f"{name}: a whole step beyond the model"] = 1000 * step
        out[f"{name}: set-up per call (start, final images)"] = 1000 * (one - step)
    return out


def pieces(n: int, others: bool, sides=(64, 128), rounds: int = 9) -> str:
    """A Markdown table: CPU ms of each piece a step adds to the floor (forward + backward)."""
    cols = {}
    for side in sides:
        rng = np.random.default_rng(0)
        param = params_lib.Fourier()
        spectrum = tf.Variable(rng.normal(0.0, 0.3, param.variable_shape(n, side, side, 3))
                               .astype(np.float32))
        image = tf.Variable(rng.random((n, side, side, 3)).astype(np.float32))
        draws = tf.constant(rng.random((n, tf_lib.NUM_DRAWS)).astype(np.float32))
        transforms = tf_lib.standard(side)

        def backward(fn, var):
            @tf.function(autograph=False)
            def run():
                with tf.GradientTape() as tape:
                    total = tf.reduce_sum(tf.square(fn(var)))  # the backward needs the forward
                return tape.gradient(total, var)
            return run

        grad = tf.constant(rng.normal(size=spectrum.shape).astype(np.float32))

        def adam(opt):
            opt.build([spectrum])

            @tf.function(autograph=False)
            def run():
                opt.apply_gradients([(grad, spectrum)])
                return tf.constant(0)
            return run

        render = params_lib.renderer(param, side, side, 3, device="/device:CPU:0")
        shift = tf_lib.circular_shift(draws, (tf_lib.Jitter(max(1, side // 32)),), side, side)

        cases = {
            "Fourier rendering, TensorFlow kernels op by op":
                backward(lambda v: param.image(v, side, side, 3), spectrum),
            "Fourier rendering, one XLA cluster (the step on a CPU)": backward(render, spectrum),
            "Fourier rendering + jitter as a phase ramp, one XLA cluster":
                backward(lambda v: render(v, shift), spectrum),
            "resampling, jitter + scale + rotate (ImageProjectiveTransformV3)":
                backward(lambda x: tf_lib.apply(x, draws, transforms), image),
            "Adam on the spectrum, Keras's kernels": adam(keras.optimizers.Adam(0.05)),
            "Adam on the spectrum, one fused kernel (tfvis's default)": adam(Adam(0.05)),
        }
        best = {name: float("inf") for name in cases}
        for fn in cases.values():
            fn().numpy()
        for _ in range(rounds):
            for name, fn in cases.items():
                cpu = time.process_time()
                for _ in range(3):
                    fn()
                fn().numpy()
                best[name] = min(best[name], (time.process_time() - cpu) / 4 * 1000)
        cols[side] = {**best, **bare_steps(n, side, others, max(3, rounds // 2))}
    names = list(cols[sides[0]])
    head = "| piece (64 images, forward + backward) | " + " | ".join(
        f"{s}x{s}: CPU ms" for s in sides) + " |"
    return "\n".join([head, "|---|" + "---:|" * len(sides)] + [
        f"| {name} | " + " | ".join(f"{cols[s][name]:.1f}" for s in sides) + " |"
        for name in names])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo CNN only, 8 images, 2 steps, 2 rounds")
    parser.add_argument("--images", type=int, default=64)
    parser.add_argument("--vgg-steps", type=int, default=2, help="timed steps per round")
    parser.add_argument("--demo-steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", default=["vgg16", "demo"],
                        choices=["vgg16", "demo"])
    parser.add_argument("--others", action="store_true", help="also tf-keras-vis and xplique")
    parser.add_argument("--transforms", choices=["standard", "jitter"], default="standard",
                        help="every contender's transforms: jitter + scale + rotate (tfvis's "
                             "default), or jitter only (the issue's target setting)")
    parser.add_argument("--breakdown", action="store_true",
                        help="also tfvis without transforms, and with pixels, no transforms")
    parser.add_argument("--full-floor", action="store_true",
                        help="time the whole model's forward + backward once, for reference")
    parser.add_argument("--pieces", action="store_true",
                        help="only time the pieces a step adds to the floor (CPU ms)")
    parser.add_argument("--out", help="write the Markdown report here")
    args = parser.parse_args(argv)
    if args.pieces:
        print(pieces(args.images, args.others))
        return 0
    if args.quick:
        args.images, args.demo_steps, args.rounds, args.workloads = 8, 2, 2, ["demo"]
    n = args.images

    rows, notes, ok = [], [], True
    for title, model, layer, side, steps in workloads(args):
        count = model.get_layer(layer).output.shape[-1]
        channels = list(range(n))
        second = [(c + n // 2) % count for c in range(n)] if count < 2 * n else \
            list(range(n, 2 * n))
        contenders, first = {}, {}

        floor = floor_step(model, layer, n, side)
        first["floor"] = timed(lambda: floor().numpy())[0]
        contenders["floor"] = lambda: [floor() for _ in range(steps)][-1].numpy()

        def tfvis_variant(name, **options):
            vis = Visualizer(model, **options)
            first[name] = timed(lambda: vis.run(objectives.channel(layer, channels), steps=1,
                                                verbose=0))[0]
            contenders[name] = lambda: vis.run(objectives.channel(layer, channels),
                                               steps=steps, verbose=0)
            return vis

        jitter = args.transforms == "jitter"
        vis = tfvis_variant("tfvis", **({"transforms": (tf_lib.Jitter(max(1, side // 32)),)}
                                        if jitter else {}))
        traces = vis.traces
        again = timed(lambda: vis.run(objectives.channel(layer, second), steps=1, verbose=0))[0]
        retraced = vis.traces - traces
        ok &= retraced == 0
        notes.append(f"{title}: traces after the first call {traces}, after a second call with "
                     f"channels {describe(second)}: {vis.traces} "
                     f"({'no retrace' if retraced == 0 else 'RETRACED'}); second call "
                     f"(1 step) {again:.2f} s vs first {first['tfvis']:.2f} s")
        if args.breakdown:
            tfvis_variant("tfvis, no transforms", transforms=())
            tfvis_variant("tfvis, pixels, no transforms", transforms=(), param="pixel")
            tfvis_variant("tfvis, jitter only", transforms=(tf_lib.Jitter(max(1, side // 32)),))
            tfvis_variant("tfvis, jitter + scale (xplique's transforms)",
                          transforms=(tf_lib.Jitter(max(1, side // 32)), tf_lib.Scale(0.95, 1.05)))
        if args.others:
            for name, make in (("tf-keras-vis 0.8.7", tkv_contender),
                               ("xplique 2.0.2", xplique_contender)):
                try:
                    if make is xplique_contender:
                        start, run = make(model, layer, n, side, channels, jitter)
                        first[name] = timed(start)[0]
                        timed(lambda: run(1))
                    else:
                        run = make(model, layer, n, side, channels, jitter)
                        first[name] = timed(lambda: run(1))[0]
                    contenders[name] = lambda run=run: run(steps)
                except Exception as error:  # noqa: BLE001 - report and go on
                    notes.append(f"{title}: {name} skipped ({type(error).__name__}: {error})")
                    print(notes[-1], flush=True)
        full = full_floor(model, n, side, floor) if args.full_floor else None

        times, cpus = interleaved(contenders, args.rounds, title, steps)
        for name in contenders:
            per_step = statistics.median(times[name]) / steps
            rows.append(
                f"| {title} | {name} | {per_step:.3f} | {1000 * per_step / n:.2f} | "
                + ("1 (floor)" if name == "floor" else ratio_cells(times, cpus, name, "floor"))
                + (" | - | -" if name == "floor" else "")
                + f" | {first[name]:.2f} |")
        if full is not None:
            notes.append(f"{title}: the whole model's forward + backward of {n} images: "
                         f"{full[0]:.3f} s once ({full[1]:.2f}x the floor timed around it)")

    settings = ("jitter only (+-side/32 px), Fourier parameterisation, no regulariser"
                if args.transforms == "jitter" else "jitter + scale + rotate (xplique: jitter "
                "+ scale), Fourier parameterisation (tf-keras-vis: pixels), no regulariser")
    header = (f"{n} images (channels 0..{n - 1}), {args.vgg_steps} (VGG16) / {args.demo_steps} "
              f"(demo CNN) timed steps per round, {args.rounds} rounds; {settings}; "
              f"{environment()}")
    table = "\n".join([
        "| workload | contender | s per step (median) | ms per image-step | ratio to floor "
        "(median) | min / max ratio | CPU-time ratio (median) | first call s |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
        *rows,
    ])
    report(args.out, "benchmark_featurevis.py", argv, REPORT, header, table, notes)
    return 0 if ok else 1


REPORT = """# Feature visualisation: time per optimisation step

Command: `{command}` (`scripts/benchmark_featurevis.py`; its docstring states the method).

{header}

{table}

{notes}

"s per step" is the wall time of one optimisation step of the whole 64-image batch; "first
call s" is one step including tracing (tf-keras-vis has none; xplique's is a full
`optimize(nb_steps=1)`). The floor is the compiled forward up to the visualised layer plus the
backward to the input of the same 64 images; a step also renders the images from the Fourier
spectrum (inverse real FFT, colour mixing, sigmoid: one XLA cluster on a CPU) and
back-propagates through it, transforms them (jitter + scale + rotate: one resampling; jitter
alone: a phase ramp inside the rendering), evaluates the objective and runs Adam on the
spectrum. tfvis and xplique rows time whole runs (start
spectrum, steps, final images); the script's docstring lists what each library does per step.
Target: at most 1.15x the floor with jitter and the Fourier parameterisation on, and faster per
image-step than tf-keras-vis and xplique (rows with ``--others``, run with the venv made by
`bash scripts/setup_bench.sh`).
"""

if __name__ == "__main__":
    raise SystemExit(main())
