"""The demo: train a small CNN on built-in shapes and write a gallery of every method.

Everything is seeded and offline. Methods come from the registry, so a new method appears in
the gallery without touching this file; each runs with its ``quick_options`` unless the caller
overrides them, and the settings used are stated in the gallery and in ``summary.json``.

Importing this module is cheap (no TensorFlow): `check_out_folder` can refuse an output
folder before anything is trained.
"""

from __future__ import annotations

import json
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from tfvis.demo_sections import (  # noqa: F401 (public here too)
    SECTION, how_it_breaks, inside_the_network, what_units_want)

if TYPE_CHECKING:  # pragma: no cover
    import keras

    from tfvis.datasets import ShapesData

#: Gallery images written by `tfvis.gallery.Gallery` (row_column_name.png): the only files an
#: overwriting run removes, so that images of an earlier run never mix into the new gallery.
_GALLERY_IMAGE = re.compile(r"^\d{3}_\d{2}_[A-Za-z0-9_.-]*\.png$")


def build_model(
    input_shape=(64, 64, 3), classes: int | None = None, seed: int = 0
) -> keras.Model:
    """A small functional CNN with a GAP -> Dense(softmax) head (so CAM applies).

    ``classes`` defaults to the number of `tfvis.datasets.CLASSES`.
    """
    import keras

    from tfvis.datasets import CLASSES

    classes = len(CLASSES) if classes is None else classes
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
    import keras

    model = build_model(data.images.shape[1:], len(data.names), seed)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(data.images, data.labels, batch_size=32, epochs=epochs, shuffle=False,
              verbose=2 if verbose else 0)
    return model


@dataclass(frozen=True)
class DemoResult:
    """Where the gallery is and what was measured.

    Attributes:
      index: the gallery's ``index.html``.
      accuracy: held-out accuracy of the trained model.
      pointing: pointing-game accuracy per method (registry name).
      seconds: time of training, of each method, and in total.
      skipped: methods that do not apply to the model, with the reason.
      options: the constructor options each method ran with.
      pointing_by_class: per method, the pointing-game accuracy of each class.
      deletion: deletion AUC per method (`tfvis.metrics.Deletion`; lower is better).
      insertion: insertion AUC per method (`tfvis.metrics.Insertion`; higher is better).
      baselines: the same scores (``pointing_game``, ``deletion``, ``insertion``) of the
        ``random`` and ``centre`` baseline maps, for scale.
      inside: the "Inside the network" section's numbers: ``localization_error`` (ILSVRC:
        top-1 class right and IoU >= 0.5 of the CAM box with the object's box),
        ``box_error`` (IoU only), the settings, and the section's figure files.
    """

    index: Path
    accuracy: float
    pointing: dict[str, float]
    seconds: dict[str, float]
    skipped: dict[str, str]
    options: dict[str, dict[str, Any]]
    pointing_by_class: dict[str, dict[str, float]]
    deletion: dict[str, float] = field(default_factory=dict)
    insertion: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    inside: dict[str, Any] = field(default_factory=dict)
    featurevis: dict[str, Any] = field(default_factory=dict)
    representation: dict[str, Any] = field(default_factory=dict)


def check_out_folder(out: str | Path, overwrite: bool = False) -> Path:
    """Checks that the demo may write into ``out`` (without importing TensorFlow).

    Raises:
      FileExistsError: ``out`` is a symbolic link or a file, or a folder that is not empty
        while ``overwrite`` is False (a gallery must never mix with an earlier run's files).
    """
    out = Path(out)
    if out.is_symlink():
        raise FileExistsError(f"{out} is a symbolic link; refusing to write through it")
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} is not empty; pass --overwrite (overwrite=True) to "
                              "replace an earlier gallery there")
    return out


def _remove_old_gallery_images(out: Path) -> None:
    images = out / "images"
    if images.is_symlink():
        raise FileExistsError(f"{images} is a symbolic link; refusing to write through it")
    if images.is_dir():
        for f in images.iterdir():
            if f.is_file() and not f.is_symlink() and _GALLERY_IMAGE.match(f.name):
                f.unlink()
    inside = out / SECTION
    if inside.is_symlink():
        raise FileExistsError(f"{inside} is a symbolic link; refusing to write through it")
    if inside.is_dir():
        for f in inside.iterdir():
            if f.is_file() and not f.is_symlink() and f.suffix == ".png":
                f.unlink()


def _with_box(image: np.ndarray, box) -> np.ndarray:
    import cv2

    from tfvis.plotting.images import to_uint8_rgb

    rgb = to_uint8_rgb(image)
    y0, x0, y1, x1 = (int(v) for v in box)
    cv2.rectangle(rgb, (x0, y0), (x1 - 1, y1 - 1), (0, 255, 0), 1)
    return rgb


def _settings(options: Mapping[str, Any]) -> str:
    return ", ".join(f"{k}={v!r}" for k, v in options.items()) or "defaults"


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
    options: Mapping[str, Mapping[str, Any]] | None = None,
    overwrite: bool = False,
    verbose: int = 1,
    metric_steps: int = 16,
    metric_batch_size: int = 512,
) -> DemoResult:
    """Trains the shapes CNN and writes ``out/index.html`` with one overlay per method.

    Args:
      out: output folder (created). It must be empty unless ``overwrite``.
      n_train: training images; n_eval: held-out images scored with the pointing game;
      n_show: held-out images shown in the gallery.
      epochs, size, seed: training length, image side, and the seed of everything.
      methods: registry names to run (default: all registered methods).
      options: per method (registry name), constructor options that replace or extend its
        ``quick_options`` for this run.
      overwrite: write into a folder that is not empty: the earlier gallery's index, images
        and summary are replaced (other files are left alone).
      verbose: 1 prints progress, 0 is quiet.
      metric_steps: steps of the deletion and insertion curves (`tfvis.metrics.Deletion`).
      metric_batch_size: perturbed images per model call of those metrics.

    Raises:
      FileExistsError: ``out`` is not empty and ``overwrite`` is False (checked first,
        before anything is trained).
      ValueError: an unknown method name in ``methods`` or ``options``.
    """
    out = check_out_folder(out, overwrite)
    from tfvis.datasets import pointing_game, shapes
    from tfvis.explainers import REGISTRY
    from tfvis.gallery import Gallery, write_atomic
    from tfvis.metrics import Deletion, Insertion
    from tfvis.metrics.evaluate import centre_maps, random_maps
    from tfvis.plotting.images import normalize, overlay

    names = list(REGISTRY) if methods is None else list(methods)
    overrides = {k: dict(v) for k, v in (options or {}).items()}
    unknown = [n for n in names + list(overrides) if n not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown methods {unknown}; registry names: {', '.join(REGISTRY)}")

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
    # What the model answers when there is no shape at all: a class it gives to an empty
    # image keeps its score when its object is hidden, which perturbation methods measure.
    blank = np.full((1, *test.images.shape[1:]), train_data.images.mean(), np.float32)
    blank_probs = model.predict(blank, verbose=0)[0]
    blank_class = int(blank_probs.argmax())
    # Faithfulness of every map, on the same held-out images and for the true class.
    deletion = Deletion(model, steps=metric_steps, batch_size=metric_batch_size)
    insertion = Insertion(model, steps=metric_steps, batch_size=metric_batch_size)
    metric_settings = {
        "images": n_eval, "target": "the true class", "score": "probability",
        "batch_size": metric_batch_size,
        "deletion": {"steps": metric_steps, "substrate": "mean"},
        "insertion": {"steps": metric_steps, "substrate": "blur", "sigma": insertion.sigma},
    }
    curves: dict[str, tuple[Any, Any]] = {}
    seconds["metrics"] = 0.0

    def faithfulness(name: str, maps: np.ndarray) -> None:
        t = time.perf_counter()
        curves[name] = (deletion(test.images, maps, test.labels),
                        insertion(test.images, maps, test.labels))
        seconds["metrics"] += time.perf_counter() - t

    shown = slice(0, min(n_show, n_eval))
    columns, overlays, pointing, skipped, notes = ["input"], {}, {}, {}, []
    used, by_class, misses = {}, {}, []
    for name in names:
        cls = REGISTRY[name]
        settings = {**cls.quick_options, **overrides.get(name, {})}
        t = time.perf_counter()
        try:
            explainer = cls(model, verbose=0, **settings)
            with warnings.catch_warnings(record=True):  # constant maps are reported below
                warnings.simplefilter("always")
                result = explainer.explain(test.images, targets=test.labels)
        except (ValueError, TypeError) as err:  # a method that does not apply to this model
            skipped[name] = str(err).splitlines()[0]
            say(f"  {cls.title}: skipped ({skipped[name]})")
            continue
        seconds[name] = time.perf_counter() - t
        used[name] = settings
        hits = pointing_game(result.maps, test.boxes)
        pointing[name] = float(hits.mean())
        faithfulness(name, result.maps)
        classes = [c for c in range(len(test.names)) if np.any(test.labels == c)]
        by_class[name] = {test.names[c]: float(hits[test.labels == c].mean()) for c in classes}
        missed = [f"{test.names[c]} {np.sum(~hits[test.labels == c])}/{np.sum(test.labels == c)}"
                  for c in classes if not hits[test.labels == c].all()]
        if missed:
            misses.append(f"{cls.title}: {', '.join(missed)}")
        empty = int(np.sum(result.maps.reshape(n_eval, -1).max(axis=1) == 0))
        if empty:
            notes.append(f"{cls.title}: {empty} of {n_eval} maps are empty (no evidence found).")
        # the registry name keeps file names distinct: "Grad-CAM++" sanitises to "Grad-CAM"
        columns.append(f"{cls.title} ({name})")
        overlays[name] = (result, hits)
        say(f"  {cls.title}: pointing game {pointing[name]:.2f}, deletion "
            f"{curves[name][0].mean:.3f}, insertion {curves[name][1].mean:.3f} "
            f"({seconds[name]:.1f}s)")

    baselines = {}
    shape = test.images.shape[:3]
    for name, maps in (("random", random_maps(shape, seed)), ("centre", centre_maps(shape))):
        faithfulness(name, maps)
        baselines[name] = {"pointing_game": float(pointing_game(maps, test.boxes).mean()),
                           "deletion": curves[name][0].mean, "insertion": curves[name][1].mean}
    deletion_auc = {k: curves[k][0].mean for k in pointing}
    insertion_auc = {k: curves[k][1].mean for k in pointing}

    blank_note = []
    on_blank = test.labels == blank_class
    if blank_probs[blank_class] >= 0.5 and on_blank.any() and not on_blank.all():
        # methods that find the other shapes but few of the class an empty image gets
        weak = [f"{REGISTRY[k].title} {int(hits[on_blank].sum())}/{int(on_blank.sum())}"
                for k, (_, hits) in overlays.items()
                if hits[on_blank].mean() <= 0.25 and hits[~on_blank].mean() >= 0.75]
        blank_name = test.names[blank_class]
        if weak:
            blank_note.append(
                f"An image without a shape (one flat colour) is predicted {blank_name} (p = "
                f"{blank_probs[blank_class]:.2f}): hiding a {blank_name} hardly lowers its "
                "score, so methods that weigh the scores of images with parts hidden can miss "
                f"{blank_name}s. Methods that point at the other shapes but at few "
                f"{blank_name}s: {', '.join(weak)}.")
    gallery = Gallery(
        title="tfvis demo: what the shapes CNN looks at",
        columns=columns,
        notes=[
            f"Model trained {epochs} epochs on {n_train} images; held-out accuracy "
            f"{accuracy:.3f} on {n_eval} images.",
            "Each map explains the true class; the green box is where the object is.",
            "Pointing game (map maximum inside the box) over the held-out images: "
            + ", ".join(f"{REGISTRY[k].title} {v:.2f}" for k, v in pointing.items())
            + "; baselines: " + ", ".join(f"{k} {v['pointing_game']:.2f}"
                                          for k, v in baselines.items()) + ".",
            f"Deletion / insertion AUC (probability of the true class as the map's top pixels "
            f"are removed (image mean) / inserted into a blurred copy, {metric_steps} steps; "
            "deletion lower is better, insertion higher): "
            + ", ".join(f"{REGISTRY[k].title} {deletion_auc[k]:.3f} / {insertion_auc[k]:.3f}"
                        for k in pointing)
            + "; baselines: " + ", ".join(f"{k} {v['deletion']:.3f} / {v['insertion']:.3f}"
                                          for k, v in baselines.items()) + ".",
        ]
        + ([f"Misses per class: {'; '.join(misses)}."] if misses else [])
        + blank_note
        + ["Settings: " + "; ".join(f"{REGISTRY[k].title}: {_settings(v)}"
                                     for k, v in used.items()) + "."]
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
            cells.append((overlay(image, heat),
                          f"{'hit' if hits[i] else 'miss'}, deletion "
                          f"{curves[name][0].values[i]:.2f}, insertion "
                          f"{curves[name][1].values[i]:.2f}"))
        gallery.add_row(f"#{i}", cells)
    t = time.perf_counter()
    inside, figures, inside_notes = inside_the_network(model, test, n_show=min(n_show, 4))
    gallery.add_section("Inside the network", figures, inside_notes)
    seconds["inside"] = time.perf_counter() - t
    say(f"  inside the network: CAM localisation error {inside['localization_error']:.3f} "
        f"({seconds['inside']:.1f}s)")
    t = time.perf_counter()
    wants, figures, wants_notes = what_units_want(model, test)
    gallery.add_section("What a unit wants to see", figures, wants_notes)
    seconds["featurevis"] = time.perf_counter() - t
    say(f"  what a unit wants to see: class models, {wants['filter_layer']} filters, DeepDream "
        f"({seconds['featurevis']:.1f}s)")
    t = time.perf_counter()
    breaks, figures, breaks_notes = how_it_breaks(model, train_data, test, n_show=2, seed=seed)
    gallery.add_section("What a representation keeps and how it breaks", figures, breaks_notes)
    seconds["representation"] = time.perf_counter() - t
    say(f"  inversion and PGD: attack success {breaks['attack']['success_rate']:.2f} "
        f"({seconds['representation']:.1f}s)")
    if overwrite:
        _remove_old_gallery_images(out)
    index = gallery.write(out)
    seconds["total"] = time.perf_counter() - t0
    summary = {
        "accuracy": accuracy,
        "pointing_game": pointing,
        "pointing_game_by_class": by_class,
        "deletion_auc": deletion_auc,
        "insertion_auc": insertion_auc,
        "baselines": baselines,
        "metric_settings": metric_settings,
        "options": used,
        "blank_image_prediction": {"class": test.names[blank_class],
                                   "probability": float(blank_probs[blank_class])},
        "inside": inside,
        "featurevis": wants,
        "representation": breaks,
        "seconds": seconds,
        "skipped": skipped,
    }
    write_atomic(out / "summary.json", json.dumps(summary, indent=2, default=repr).encode())
    say(f"gallery written to {index} ({seconds['total']:.0f}s)")
    return DemoResult(index, accuracy, pointing, seconds, skipped, used, by_class,
                      deletion_auc, insertion_auc, baselines, inside, wants, breaks)
