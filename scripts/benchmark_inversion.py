"""Time per step of feature inversion and style transfer as a ratio to a floor, same run.

Usage::

    python scripts/benchmark_inversion.py --quick    # under a minute: checks the script
    python scripts/benchmark_inversion.py            # the measurement (a few minutes on a CPU)
    python scripts/benchmark_inversion.py --out benchmarks/inversion_style.md
    python scripts/benchmark_inversion.py --breakdown  # + inversion without priors

Workloads: (i) the demo CNN (``tfvis.demo.build_model((64, 64, 3))``, untrained: the cost does
not depend on the weights), 64x64, ``--images`` images (16); (ii)
``keras.applications.VGG16(weights=None, include_top=False, input_shape=(128, 128, 3))``,
128x128, ``--vgg-images`` images (1).

* **inversion**: `tfvis.featurevis.Inverter` at the last convolution (demo ``conv3b``, VGG16
  ``block5_conv3``) with its defaults (clipped pixels, alpha-norm and TV^2 priors, no
  transforms, Adam). Timed: the loop's ``Visualizer.run`` of the feature-match objective (the
  targets ``Phi_0`` computed once, outside the timing, as `Inverter.run` does once per call).
* **style transfer**: `tfvis.featurevis.StyleTransfer` from the content image; VGG16: Gatys et
  al.'s layers (content ``block4_conv2``, style ``block1_conv1`` .. ``block5_conv1``, the
  defaults); demo CNN: content ``conv3a``, style ``conv1a``, ``conv2a``, ``conv3a``. Timed: the
  loop's ``Visualizer.run`` of the content + Gram objective.

**Floor** of each: the compiled (``tf.function``) forward of the model up to the layers the
objective reads (a prefix `keras.Model` with those outputs) plus the gradient of the sum of
their outputs to the input, for the same batch, on a resident tensor: no parameterisation,
objective, regulariser or optimiser. For reference, ``floor + Gram matrices`` adds the style
layers' Gram matrices and a loss of them (forward and gradient: work the style loss itself
needs), and
``full-model floor`` times the whole model's forward + gradient to the input (through
``block5_pool`` / the softmax).

Each round runs every contender once for the same number of steps, the order rotating every
round; ratios are taken within a round and the table quotes medians over rounds, of wall time
and of process CPU time (less sensitive to other processes on a shared machine). A second
call with other images must not retrace (the objects' ``traces``); the script exits 1 when it
does.
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
from tfvis.engine.compiled import compile_step  # noqa: E402
from tfvis.featurevis import Inverter, StyleTransfer, Visualizer, objectives  # noqa: E402
from bench_common import (environment, interleaved, ratio_cells, ratios, report,  # noqa: E402
                          timed)


def floor_step(model, layers, x, grams=()):
    """Compiled forward to ``layers`` + gradient of their sum to the input (with ``grams``:
    plus a loss of those layers' Gram matrices, the sum of their squares: the Gram
    matrices' forward and gradient, which a plain sum would prune to the gradient only)."""
    prefix = keras.Model(model.inputs, [model.get_layer(name).output for name in layers])

    def step(t):
        with tf.GradientTape() as tape:
            tape.watch(t)
            out = prefix(t, training=False)
            out = out if isinstance(out, (list, tuple)) else [out]
            total = tf.add_n([tf.reduce_sum(o) for o in out])
            for name in grams:  # a loss of each Gram matrix: its forward is used too
                gram = objectives.gram_sums(out[layers.index(name)], symmetric=True)
                total = total + tf.reduce_sum(tf.square(gram))
        return tape.gradient(total, t)

    step = compile_step(step)  # a tf.function, as the loop's steps are
    return lambda: step(x)


def images(n, side, seed):
    """Smooth random colour images in [0, 1] (upsampled noise), a stand-in for photos."""
    rng = np.random.default_rng(seed)
    small = rng.random((n, side // 8, side // 8, 3)).astype(np.float32)
    return np.clip(np.asarray(tf.image.resize(small, (side, side), "bicubic")), 0, 1)


def workloads(args):
    if "demo" in args.workloads:
        yield ("demo CNN, 64x64", build_model((64, 64, 3), seed=0), 64, args.images,
               args.demo_steps, "conv3b", dict(content_layers=["conv3a"],
                                                style_layers=["conv1a", "conv2a", "conv3a"]))
    if "vgg16" in args.workloads:
        model = keras.applications.VGG16(weights=None, include_top=False,
                                         input_shape=(128, 128, 3))
        yield ("VGG16 (weights=None), 128x128", model, 128, args.vgg_images, args.vgg_steps,
               "block5_conv3", {})


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="demo CNN only, 4 images, 3 steps, 2 rounds")
    parser.add_argument("--images", type=int, default=16, help="demo CNN batch")
    parser.add_argument("--vgg-images", type=int, default=1, help="VGG16 batch")
    parser.add_argument("--demo-steps", type=int, default=20, help="timed steps per round")
    parser.add_argument("--vgg-steps", type=int, default=3, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--workloads", nargs="+", default=["demo", "vgg16"],
                        choices=["demo", "vgg16"])
    parser.add_argument("--breakdown", action="store_true",
                        help="also inversion without priors")
    parser.add_argument("--out", help="write the Markdown report here")
    args = parser.parse_args(argv)
    if args.quick:
        args.images, args.demo_steps, args.rounds, args.workloads = 4, 3, 2, ["demo"]

    rows, notes, ok = [], [], True
    for title, model, side, n, steps, last, style_layers in workloads(args):
        content = images(n, side, 0)
        other = images(n, side, 1)
        style = images(1, side, 2)
        contenders, first, floors = {}, {}, {}

        # inversion
        inverter = Inverter(model, last)
        vis = inverter.visualizer(content.shape[1:])
        targets = inverter.features(content)[last]
        objective = objectives.feature_match(last, targets)
        first["inversion"] = timed(lambda: vis.run(objective, steps=1, verbose=0))[0]
        contenders["inversion"] = lambda: vis.run(objective, steps=steps, verbose=0)
        x = tf.constant(content)
        floor = floor_step(model, [last], x)
        first["floor (inversion)"] = timed(lambda: floor().numpy())[0]
        contenders["floor (inversion)"] = lambda f=floor: [f() for _ in range(steps)][-1].numpy()
        floors["inversion"] = "floor (inversion)"
        if args.breakdown:
            name = "inversion, no priors"
            variant = Visualizer(model, image_shape=content.shape[1:], param=inverter.param,
                                 regularizers=[], transforms=())
            first[name] = timed(lambda: variant.run(objective, steps=1, verbose=0))[0]
            contenders[name] = lambda: variant.run(objective, steps=steps, verbose=0)
            floors[name] = "floor (inversion)"
        traces = inverter.traces
        again = timed(lambda: inverter.run(other, steps=1, verbose=0))[0]
        ok &= inverter.traces == traces
        notes.append(f"{title}: inversion traces {traces} after the first call, "
                     f"{inverter.traces} after `Inverter.run` on other images "
                     f"({'no retrace' if inverter.traces == traces else 'RETRACED'}); that "
                     f"whole call (targets, 1 step, feature error) {again:.2f} s")

        # style transfer
        transfer = StyleTransfer(model, **style_layers)
        svis = transfer.visualizer(content.shape[1:])
        content_obj, style_obj = transfer.objectives(content, style)
        sobjective = transfer.alpha * content_obj + transfer.beta * style_obj
        first["style transfer"] = timed(
            lambda: svis.run(sobjective, steps=1, start=content, verbose=0))[0]
        contenders["style transfer"] = lambda: svis.run(sobjective, steps=steps, start=content,
                                                        verbose=0)
        layers = list(dict.fromkeys(transfer.content_layers + transfer.style_layers))
        sfloor = floor_step(model, layers, x)
        first["floor (style)"] = timed(lambda: sfloor().numpy())[0]
        contenders["floor (style)"] = lambda f=sfloor: [f() for _ in range(steps)][-1].numpy()
        floors["style transfer"] = "floor (style)"
        gfloor = floor_step(model, layers, x, grams=transfer.style_layers)
        first["floor + Gram matrices"] = timed(lambda: gfloor().numpy())[0]
        contenders["floor + Gram matrices"] = lambda f=gfloor: [f() for _ in range(steps)][
            -1].numpy()
        traces = transfer.traces
        again = timed(lambda: transfer.run(other, style[:, ::-1], steps=1, verbose=0))[0]
        ok &= transfer.traces == traces
        notes.append(f"{title}: style-transfer traces {traces} after the first call, "
                     f"{transfer.traces} after `StyleTransfer.run` on other content and style "
                     f"({'no retrace' if transfer.traces == traces else 'RETRACED'}); that "
                     f"whole call (targets, 1 step, losses) {again:.2f} s")

        full = floor_step(model, [model.layers[-1].name], x)
        first["full-model floor"] = timed(lambda: full().numpy())[0]
        contenders["full-model floor"] = lambda f=full: [f() for _ in range(steps)][-1].numpy()

        walls, cpus = interleaved(contenders, args.rounds, title, steps)
        for name in contenders:
            per_step = statistics.median(walls[name]) / steps
            base = floors.get(name)
            if name == "floor + Gram matrices":
                cells = ratio_cells(walls, cpus, name, "floor (style)", bold=False)
                rows.append(f"| {title} | {name} (reference: vs floor (style)) | {per_step:.4f} | "
                            f"{cells} | {first[name]:.2f} |")
                notes.append(
                    f"{title}: style transfer / (floor + Gram matrices): "
                    f"{statistics.median(ratios(walls, 'style transfer', name)):.3f}x wall, "
                    f"{statistics.median(ratios(cpus, 'style transfer', name)):.3f}x CPU "
                    "(medians)")
                continue
            if base is None:
                rows.append(f"| {title} | {name} | {per_step:.4f} | - | - | - | "
                            f"{first[name]:.2f} |")
                continue
            rows.append(f"| {title} | {name} | {per_step:.4f} | "
                        f"{ratio_cells(walls, cpus, name, base)} | {first[name]:.2f} |")

    try:
        load = "load average " + " / ".join(f"{v:.1f}" for v in os.getloadavg())
    except OSError:
        load = "load average unknown"
    header = (f"demo CNN: {args.images} images, {args.demo_steps} timed steps per round; VGG16: "
              f"{args.vgg_images} image(s), {args.vgg_steps} timed steps per round; "
              f"{args.rounds} rounds; {environment()}, {load} at the end")
    table = "\n".join([
        "| workload | contender | s per step (median) | ratio to its floor (median) | "
        "min / max ratio | CPU-time ratio (median) | first call s |",
        "|---|---|---:|---:|---:|---:|---:|",
        *rows,
    ])
    report(args.out, "benchmark_inversion.py", argv, REPORT, header, table, notes)
    return 0 if ok else 1


REPORT = """# Feature inversion and style transfer: time per optimisation step

Command: `{command}` (`scripts/benchmark_inversion.py`; its docstring states the method).

{header}

{table}

{notes}

"s per step" is the wall time of one optimisation step of the whole batch (the loop's
`Visualizer.run`, per-call set-up included, divided by the steps); "first call s" is one step
including tracing. Each floor is the compiled forward up to the layers the objective reads
plus the gradient to the input, for the same batch; a step also reads the clipped-pixel
image, evaluates the objective (squared feature distance; Gram matrices), the priors
(alpha-norm and TV^2 for inversion), runs Adam and clips. Target: at most 1.15x the floor.
With ``--breakdown``: "inversion, no priors" is the loop with the feature term alone (so
its ratio is Adam, the clip and the objective over the floor; the priors' closed-form
gradients, `tfvis.featurevis.regularizers`, are the rest).
"""

if __name__ == "__main__":
    raise SystemExit(main())
