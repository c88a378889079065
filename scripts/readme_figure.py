"""Draws the README's picture: every registered method on held-out demo images.

Usage::

    python scripts/readme_figure.py [--out docs/methods.png]

Trains the demo's small CNN on built-in synthetic shapes (seeded, ~1 min on a CPU) and runs each
method with its ``quick_options``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import tfvis
from tfvis.datasets import shapes
from tfvis.demo import train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/methods.png"))
    args = parser.parse_args()
    model = train(shapes(1000, 48, seed=0), epochs=5, seed=0, verbose=0)
    test = shapes(4, 48, seed=1)
    maps = {}
    for name in tfvis.methods():
        cls = tfvis.REGISTRY[name]
        maps[cls.title] = cls(model, verbose=0, **cls.quick_options)(test.images,
                                                                     targets=test.labels)
    figure = tfvis.plotting.grid(test.images, maps)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(args.out, dpi=60, bbox_inches="tight")
    print(args.out)


if __name__ == "__main__":
    main()
