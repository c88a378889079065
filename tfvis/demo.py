"""The demo: train a small CNN on built-in shapes and write a gallery of every method.

Everything is seeded and offline. Methods come from the registry, so a new method appears in
the gallery without touching this file.
"""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import keras
import numpy as np

from tfvis.datasets import CLASSES, ShapesData, pointing_game, shapes
from tfvis.explainers import REGISTRY
from tfvis.gallery import Gallery
from tfvis.plotting.images import normalize, overlay, to_uint8_rgb


def build_model(input_shape=(64, 64, 3), classes: int = len(CLASSES), seed: int = 0) -> keras.Model:
    """A small functional CNN with a GAP -> Dense(softmax) head (so CAM applies)."""
    init = lambda k: keras.initializers.HeNormal(seed=seed + k)  # noqa: E731
    inp = keras.Input(input_shape, name="image")
    x = inp
    for k, filters in enumerate((16, 32, 64)):
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                kernel_initializer=init(2 * k), name=f"conv{k + 1}a")(x)
        x = keras.layers.Conv2D(filters, 3, padding="same", activation="relu",
                                kernel_initializer=init(2 * k + 1), name=f"conv{k + 1}b")(x)
        if k < 2:
            x = keras.layers.MaxPooling2D(name=f"pool{k + 1}")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(classes, activation="softmax", name="predictions",
                             kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 9))(x)
    return keras.Model(inp, out, name="shapes_cnn")


def train(data: ShapesData, epochs: int = 6, seed: int = 0, verbose: int = 1) -> keras.Model:
    """Builds and trains `build_model` on ``data`` (deterministic order, seeded weights)."""
    model = build_model(data.images.shape[1:], len(data.names), seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.images, data.labels, batch_size=32, epochs=epochs, shuffle=False,
              verbose=2 if verbose else 0)
    return model


@dataclass(frozen=True)
class DemoResult:
    """Where the gallery is and what was measured."""

    index: Path
    accuracy: float
    pointing: dict[str, float]
    seconds: dict[str, float]
    skipped: dict[str, str]


def _with_box(image: np.ndarray, box) -> np.ndarray:
    rgb = to_uint8_rgb(image)
    y0, x0, y1, x1 = (int(v) for v in box)
    cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
    return rgb


def run_demo(
    out: str | Path = "tfvis-demo",
    *,
    n_train: int = 1200,
    n_eval: int = 32,
    n_show: int = 8,
    epochs: int = 5,
    size: int = 64,
    seed: int = 0,
    methods: list[str] | None = None,
    verbose: int = 1,
) -> DemoResult:
    """Trains the shapes CNN and writes ``out/index.html`` with one overlay per method.

    Args:
      out: output folder (created; its gallery files are replaced).
      n_train: training images; n_eval: held-out images scored with the pointing game;
      n_show: held-out images shown in the gallery.
      epochs, size, seed: training length, image side, and the seed of everything.
      methods: registry names to run (default: all registered methods).
      verbose: 1 prints progress, 0 is quiet.
    """
    say = print if verbose else (lambda *a, **k: None)
    t0 = time.perf_counter()
    train_data = shapes(n_train, size, seed)
    test = shapes(n_eval, size, seed + 1)
    say(f"training a small CNN on {n_train} synthetic {size}x{size} shape images...")
    model = train(train_data, epochs, seed, verbose)
    probs = model.predict(test.images, verbose=0)
    accuracy = float(np.mean(probs.argmax(1) == test.labels))
    seconds = {"training": time.perf_counter() - t0}
    say(f"held-out accuracy: {accuracy:.3f}")

    names = list(REGISTRY) if methods is None else list(methods)
    shown = slice(0, min(n_show, n_eval))
    columns, overlays, pointing, skipped, notes = ["input"], {}, {}, {}, []
    for name in names:
        cls = REGISTRY[name]
        t = time.perf_counter()
        try:
            explainer = cls(model, verbose=0, **dict(cls.quick_options))
            with warnings.catch_warnings(record=True):  # constant maps are reported below
                warnings.simplefilter("always")
                result = explainer.explain(test.images, targets=test.labels)
        except (ValueError, TypeError) as err:  # a method that does not apply to this model
            skipped[name] = str(err).splitlines()[0]
            say(f"  {cls.title}: skipped ({skipped[name]})")
            continue
        seconds[name] = time.perf_counter() - t
        hits = pointing_game(result.maps, test.boxes)
        pointing[name] = float(hits.mean())
        empty = int(np.sum(result.maps.reshape(n_eval, -1).max(axis=1) == 0))
        if empty:
            notes.append(f"{cls.title}: {empty} of {n_eval} maps are empty (no evidence found).")
        columns.append(cls.title)
        overlays[name] = (result, hits)
        say(f"  {cls.title}: pointing game {pointing[name]:.2f} ({seconds[name]:.1f}s)")

    gallery = Gallery(
        title="tfvis demo: what the shapes CNN looks at",
        columns=columns,
        notes=[
            f"Model trained {epochs} epochs on {n_train} images; held-out accuracy "
            f"{accuracy:.3f} on {n_eval} images.",
            "Each map explains the true class; the green box is where the object is.",
            "Pointing game (map maximum inside the box) over the held-out images: "
            + ", ".join(f"{REGISTRY[k].title} {v:.2f}" for k, v in pointing.items()),
        ]
        + notes
        + [f"{REGISTRY[k].title} skipped: {v}" for k, v in skipped.items()],
    )
    for i in range(n_eval)[shown]:
        image = test.images[i]
        pred = int(probs[i].argmax())
        cells = [(_with_box(image, test.boxes[i]),
                  f"true {test.names[test.labels[i]]}, predicted {test.names[pred]} "
                  f"({probs[i, pred]:.2f})")]
        for name, (result, hits) in overlays.items():
            heat = result.maps[i]
            if result.raw.ndim == 4:  # sparse pixel-space gradients: clip the hottest 1 %
                heat = normalize(heat, clip_percentile=99)
            cells.append((overlay(image, heat), "hit" if hits[i] else "miss"))
        gallery.add_row(f"#{i}", cells)
    index = gallery.write(out)
    seconds["total"] = time.perf_counter() - t0
    summary = {"accuracy": accuracy, "pointing_game": pointing, "seconds": seconds,
               "skipped": skipped}
    (Path(out) / "summary.json").write_text(json.dumps(summary, indent=2))
    say(f"gallery written to {index} ({seconds['total']:.0f}s)")
    return DemoResult(index, accuracy, pointing, seconds, skipped)
