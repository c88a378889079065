"""Draws the README's feature-visualisation picture: class models, filters, DeepDream.

Usage::

    python scripts/featurevis_figure.py [--out docs/featurevis.png]

Trains the demo's small CNN on built-in synthetic shapes (seeded, about a minute on a CPU),
then draws one row of Simonyan class models (``score="logprob"``, one image per class, with
the model's probability for that class), one row of 8 filters of ``conv3b`` (one compiled run
of 8 images), and one DeepDream pair: a held-out shapes image and its dream on ``conv2b``
(3 octaves). The settings are those of ``notebooks/07_feature_visualisation.ipynb``.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

import tfvis  # noqa: E402
from tfvis.datasets import CLASSES, shapes  # noqa: E402
from tfvis.demo import train  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("docs/featurevis.png"))
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    model = train(shapes(1000, 48, seed=0), epochs=5, seed=0, verbose=0)

    classes = tfvis.class_model(model, range(len(CLASSES)), score="logprob", steps=64,
                                learning_rate=0.1, seed=0, verbose=0)
    probs = model.predict(classes.images, verbose=0)
    grid = tfvis.filters(model, "conv3b", channels=range(8), steps=64, learning_rate=0.2,
                         redirect_relu=8, seed=0, verbose=0)
    image = shapes(1, 96, seed=3).images[0]
    dream = tfvis.deepdream(model, image, "conv2b", octaves=3, steps_per_octave=15,
                            learning_rate=0.02, verbose=0)

    columns = 8
    fig = plt.figure(figsize=(columns * 1.25, 3 * 1.25 + 1.0))
    spec = fig.add_gridspec(3, columns, hspace=0.45, wspace=0.08)
    rows = [
        ("class models\n(log-probability)",
         [(img, f"{name}\np={probs[i, i]:.2f}") for i, (img, name)
          in enumerate(zip(classes.images, CLASSES))]),
        ("conv3b filters",
         [(img, f"channel {c}") for c, img in enumerate(grid.images)]),
        ("DeepDream\n(conv2b, 3 octaves)",
         [(image, "held-out image"), (dream.images[0], "its dream")]),
    ]
    for r, (title, panels) in enumerate(rows):
        for k, (img, label) in enumerate(panels):
            ax = fig.add_subplot(spec[r, k])
            ax.imshow(np.clip(img, 0, 1), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8)
            if k == 0:
                ax.set_ylabel(title, fontsize=8)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=72, bbox_inches="tight")
    print(args.out, f"{args.out.stat().st_size / 1024:.0f} KB",
          "class-model predictions:", probs.argmax(1).tolist())


if __name__ == "__main__":
    main()
