"""Reference numbers: every registered method (+ the random and centre baselines) x every
metric of `tfvis.metrics.evaluate`, on the demo CNN's held-out shapes.

    python scripts/evaluate_demo.py                      # writes benchmarks/evaluate_demo.md

The demo CNN is trained as `tfvis demo` trains it (`tfvis.demo.train` on
`tfvis.datasets.shapes`, same seed, sizes and epochs); methods run with their demo settings
(``quick_options``) and explain the true class. The shapes data carries one box per image
(no masks), so the pointing games and the localisation error use the boxes.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/evaluate_demo.md")
    parser.add_argument("--images", type=int, default=32, help="held-out images (default 32)")
    parser.add_argument("--steps", type=int, default=32,
                        help="deletion / insertion steps (default 32)")
    parser.add_argument("--subsets", type=int, default=128,
                        help="MuFidelity subsets per image (default 128)")
    parser.add_argument("--train-images", type=int, default=1200)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=2.0,
                        help="pointing-game tolerance in px (default 2, the demo's)")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    import tfvis
    from tfvis.datasets import shapes
    from tfvis.demo import train
    from tfvis.metrics import (AverageDrop, Deletion, IncreaseInConfidence, Insertion,
                               LocalizationError, MuFidelity, PointingGame, evaluate)

    t0 = time.perf_counter()
    data = shapes(args.train_images, 64, args.seed)
    test = shapes(args.images, 64, args.seed + 1)
    model = train(data, args.epochs, args.seed, verbose=0)
    accuracy = float(np.mean(model.predict(test.images, verbose=0).argmax(1) == test.labels))
    trained = time.perf_counter() - t0
    y0, x0, y1, x1 = test.boxes.T  # ShapesData boxes are (y0, x0, y1, x1)
    boxes = np.stack([x0, y0, x1, y1], axis=1)
    size = args.batch_size
    metrics = [
        Deletion(model, steps=args.steps, batch_size=size),
        Insertion(model, steps=args.steps, batch_size=size),
        PointingGame(tolerance=args.tolerance),
        PointingGame(energy=True),
        AverageDrop(model, batch_size=size),
        IncreaseInConfidence(model, batch_size=size),
        MuFidelity(model, num_subsets=args.subsets, seed=args.seed, batch_size=size),
        LocalizationError(),
    ]
    methods = tfvis.methods()
    options = {name: dict(tfvis.REGISTRY[name].quick_options) for name in methods}
    ev = evaluate(model, test.images, methods + ["random", "centre"], metrics,
                  targets=test.labels, boxes=boxes, seed=args.seed, verbose=1,
                  options={k: v for k, v in options.items() if v})
    total = time.perf_counter() - t0

    command = "python scripts/evaluate_demo.py" + "".join(f" {a}" for a in (argv or sys.argv[1:]))
    settings = "; ".join(f"{k}: {v}" for k, v in ev.settings["metrics"].items())
    quick = ", ".join(f"{k} {v}" for k, v in options.items() if v)
    text = f"""# Is it faithful? Every method x every metric on the demo CNN

Command: `{command}`

* Model: the demo CNN (`tfvis.demo.train`), {args.train_images} training shapes, {args.epochs}
  epochs, seed {args.seed}; held-out accuracy {accuracy:.3f} on {args.images} images
  (`tfvis.datasets.shapes(n, 64, seed + 1)`, 64x64).
* Each map explains the true class, and every metric scores that class's probability.
* Methods run with their demo settings (`quick_options`): {quick}; the others with their
  defaults. `random` is a seeded uniform map, `centre` a centred Gaussian prior (sigma a
  quarter of the side).
* Metrics: {settings}. The pointing games and the localisation error use the shapes' boxes
  (the data has no masks); the pointing game's tolerance is {args.tolerance:g} px (the demo's;
  the metric's default of 15 px is meant for 224x224 images).
* {args.images} images and {args.steps} deletion/insertion steps keep the run near
  {total / 60:.0f} minutes on 2 CPU cores ({trained:.0f} s of it training), {platform.machine()}.

{ev.to_markdown()}"""
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    print(text)
    print(f"wrote {out} ({total:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
