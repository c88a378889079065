"""Draws the README's inversion and adversarial pictures from the demo's section.

Usage::

    python scripts/representation_figure.py [--out docs]

Trains the demo CNN as `tfvis demo` does (1200 seeded 64x64 shapes, 5 epochs) and writes the
two figures of the gallery's "What a representation keeps and how it breaks" section
(`tfvis.demo_sections.how_it_breaks`): ``inversion.png`` (held-out images reconstructed from
conv1b, conv2b and conv3b by optimisation and from conv2b by a trained decoder) and
``adversarial.png`` (PGD at 8/255 with Grad-CAM before and after).
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs"))
    args = parser.parse_args()
    import keras

    from tfvis.datasets import shapes
    from tfvis.demo import train
    from tfvis.demo_sections import how_it_breaks

    keras.utils.set_random_seed(0)
    data = shapes(1200, 64, seed=0)
    model = train(data, 5, 0, verbose=0)
    numbers, figures, notes = how_it_breaks(model, data, shapes(32, 64, seed=1))
    args.out.mkdir(parents=True, exist_ok=True)
    from PIL import Image

    for name, png, _ in figures:
        # 256 colours keep the README light; the gallery keeps the full PNG
        image = Image.open(io.BytesIO(png)).convert("RGB").quantize(256)
        image.save(args.out / name, optimize=True)
        print(args.out / name, f"{(args.out / name).stat().st_size / 1024:.0f} KB")
    print("\n".join(notes))


if __name__ == "__main__":
    main()
