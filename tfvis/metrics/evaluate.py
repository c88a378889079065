"""`evaluate`: every method x every metric on the same images, as one table.

Each explainer is built once and explains the images once; its maps are reused by every
metric, so a table costs one explanation per method plus each metric's own forwards. Two
baselines can be rows next to the methods, so a reader sees the scale of each column:

* ``"random"``: a uniform random map per image (``numpy.random.default_rng(seed)``);
* ``"centre"`` (or ``"center"``): the same centred Gaussian prior for every image (sigma a
  quarter of the image's height and width), what a map that ignores the image gets for
  free when objects sit near the middle.

Metrics are `tfvis.metrics` instances or their names (`METRICS`). Those that compare maps
with the objects (pointing game, its energy variant, localisation error) need ``masks`` or
``boxes``; without them they are skipped and `Evaluation.notes` says so.

Example:
  >>> ev = tfvis.metrics.evaluate(model, images, ["gradcam", "saliency", "random"],
  ...                             ["deletion", "insertion", "pointing_game"], boxes=boxes)
  >>> print(ev.to_markdown())
  >>> ev.results["gradcam"]["deletion"].curves      # (N, steps + 1)
  >>> tfvis.plotting.deletion_curves(ev)
"""

from __future__ import annotations

import csv
import io
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from tfvis.metrics.result import MetricResult

#: Metric names `evaluate` takes, in table order, with whether higher values are better.
METRICS: Mapping[str, bool] = {
    "deletion": False,
    "insertion": True,
    "pointing_game": True,
    "pointing_energy": True,
    "average_drop": False,
    "increase_in_confidence": True,
    "mu_fidelity": True,
    "localization_error": False,
}
#: The metrics that compare maps with object masks or boxes.
NEEDS_OBJECTS = ("pointing_game", "pointing_energy", "localization_error")
#: Baseline rows: a name -> the spellings accepted.
BASELINES = {"random": ("random",), "centre": ("centre", "center")}
#: The level of the intervals in the table.
LEVEL = 0.95


class Score(NamedTuple):
    """One cell of the table: the mean over images and its 95% interval."""

    mean: float
    low: float
    high: float
    n: int


def random_maps(shape: tuple[int, int, int], seed: int | None = 0) -> np.ndarray:
    """The ``"random"`` baseline: uniform maps in [0, 1), float32 ``(N, H, W)``, seeded."""
    return np.random.default_rng(seed).random(shape, dtype=np.float32)


def centre_maps(shape: tuple[int, int, int]) -> np.ndarray:
    """The ``"centre"`` baseline: one centred Gaussian (sigma a quarter of each side, peak 1)
    repeated for every image, float32 ``(N, H, W)``."""
    n, height, width = shape
    y = (np.arange(height) - (height - 1) / 2.0) / (0.25 * height)
    x = (np.arange(width) - (width - 1) / 2.0) / (0.25 * width)
    prior = np.exp(-0.5 * (y[:, None] ** 2 + x[None, :] ** 2)).astype(np.float32)
    return np.broadcast_to(prior, (n, height, width)).copy()


def metric_key(metric: Any) -> str:
    """The column name of a metric instance (its name in `METRICS`)."""
    from tfvis.metrics.localization import LocalizationError
    from tfvis.metrics.pointing import PointingGame

    if isinstance(metric, PointingGame):
        return "pointing_energy" if metric.energy else "pointing_game"
    if isinstance(metric, LocalizationError):
        return "localization_error"
    name = getattr(metric, "name", None)
    if not isinstance(name, str) or not name:
        raise TypeError(f"{type(metric).__name__} is not a tfvis metric: pass a metric name "
                        f"({', '.join(METRICS)}) or a tfvis.metrics instance")
    return name


def build_metric(name: str, model: Any, *, seed: int = 0, batch_size: int | None = None,
                 **options: Any) -> Any:
    """The metric registered as ``name`` in `METRICS`, built for ``model``.

    Args:
      name: a name from `METRICS` (``-`` and case ignored).
      model: the model the model-based metrics score.
      seed: MuFidelity's seed.
      batch_size: perturbed images per model call of the model-based metrics.
      **options: constructor options of that metric (e.g. ``steps=32`` for deletion).

    Raises:
      ValueError: an unknown name (the names are listed).
    """
    from tfvis.metrics.deletion import Deletion, Insertion
    from tfvis.metrics.drop import AverageDrop, IncreaseInConfidence
    from tfvis.metrics.fidelity import MuFidelity
    from tfvis.metrics.localization import LocalizationError
    from tfvis.metrics.pointing import PointingGame

    key = str(name).lower().replace("-", "_").replace(" ", "_")
    if key == "sanity_check":
        raise ValueError("the sanity check is per randomised layer, not per image, so it is not "
                         "a column of the table: run tfvis.metrics.SanityCheck(factory, model) "
                         "and draw tfvis.plotting.sanity_curves")
    if key in ("deletion", "insertion", "average_drop", "increase_in_confidence"):
        cls = {"deletion": Deletion, "insertion": Insertion, "average_drop": AverageDrop,
               "increase_in_confidence": IncreaseInConfidence}[key]
        return cls(model, batch_size=batch_size, **options)
    if key == "mu_fidelity":
        return MuFidelity(model, **{"seed": seed, "batch_size": batch_size, **options})
    if key == "pointing_game":
        return PointingGame(**options)
    if key == "pointing_energy":
        return PointingGame(**{**options, "energy": True})
    if key == "localization_error":
        return LocalizationError(**options)
    import difflib

    close = difflib.get_close_matches(key, list(METRICS), n=2, cutoff=0.5)
    hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
    raise ValueError(f"unknown metric {name!r}.{hint} Metrics: {', '.join(METRICS)}")


def boxes_of_masks(masks: np.ndarray) -> np.ndarray:
    """The bounding box ``(x0, y0, x1, y1)`` (ends exclusive) of each ``(N, H, W)`` mask."""
    masks = np.asarray(masks) != 0
    out = np.zeros((len(masks), 4), np.int64)
    for i, mask in enumerate(masks):
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        if len(rows):
            out[i] = (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
    return out


@dataclass
class Evaluation:
    """What `evaluate` measured.

    Attributes:
      methods: the row names (registry names, ``"random"``, ``"centre"``), in order.
      metrics: the column names (`METRICS` names of the metrics that ran), in order.
      results: ``results[method][metric]``: the `MetricResult` (per-image values, curves).
      maps: ``maps[method]``: the ``(N, H, W)`` maps every metric of that row scored.
      notes: what was skipped and why.
      settings: the metrics' and methods' settings (their reprs), the seed and the images.
      seconds: per method, the time to explain the images and to run each metric.
    """

    methods: list[str]
    metrics: list[str]
    results: dict[str, dict[str, MetricResult]]
    maps: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    notes: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)
    seconds: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def table(self) -> dict[str, dict[str, Score]]:
        """``table[method][metric]``: the `Score` (mean and 95% interval over images)."""
        out: dict[str, dict[str, Score]] = {}
        for method in self.methods:
            row = {}
            for metric in self.metrics:
                result = self.results[method].get(metric)
                if result is not None:
                    low, high = result.interval(LEVEL)
                    row[metric] = Score(result.mean, low, high, len(result))
            out[method] = row
        return out

    def to_markdown(self, digits: int = 3) -> str:
        """The table as Markdown: one row per method, one column per metric, each cell the
        mean and its 95% interval; arrows say which way is better; notes follow."""
        arrows = {m: ("↑" if METRICS.get(m, True) else "↓") for m in self.metrics}
        lines = ["| method | " + " | ".join(f"{m} {arrows[m]}" for m in self.metrics) + " |",
                 "|---|" + "---:|" * len(self.metrics)]
        for method, row in self.table.items():
            cells = [f"{s.mean:.{digits}f} [{s.low:.{digits}f}, {s.high:.{digits}f}]"
                     if (s := row.get(m)) else "-" for m in self.metrics]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        n = max((s.n for row in self.table.values() for s in row.values()), default=0)
        lines += ["", f"Mean over {n} images [{LEVEL:.0%} interval of the mean, normal "
                  "approximation]; ↑ higher is better, ↓ lower is better."]
        lines += [f"Note: {note}" for note in self.notes]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path | None = None, overwrite: bool = True) -> str:
        """The table as CSV (one line per method and metric: ``method, metric, mean, low,
        high, n, higher_is_better``; floats written exactly, so they read back equal).

        Args:
          path: where to write it (atomically); None only returns the text.
          overwrite: replace an existing file at ``path`` (False raises FileExistsError).

        Returns:
          The CSV text.
        """
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["method", "metric", "mean", "low", "high", "n", "higher_is_better"])
        for method, row in self.table.items():
            for metric, s in row.items():
                writer.writerow([method, metric, repr(s.mean), repr(s.low), repr(s.high), s.n,
                                 str(METRICS.get(metric, True)).lower()])
        text = buffer.getvalue()
        if path is not None:
            from tfvis.gallery import write_atomic

            write_atomic(Path(path), text.encode("utf-8"), overwrite)
        return text

    @staticmethod
    def read_csv(source: str | Path) -> dict[str, dict[str, Score]]:
        """Reads a table written by `to_csv` (a path, or the CSV text itself) back as
        ``table[method][metric]`` `Score`s."""
        text = str(source)
        if "\n" not in text:
            text = Path(source).read_text(encoding="utf-8")
        table: dict[str, dict[str, Score]] = {}
        for row in csv.DictReader(io.StringIO(text)):
            table.setdefault(row["method"], {})[row["metric"]] = Score(
                float(row["mean"]), float(row["low"]), float(row["high"]), int(row["n"]))
        return table

    def __repr__(self) -> str:
        return (f"Evaluation({len(self.methods)} methods x {len(self.metrics)} metrics: "
                f"{', '.join(self.metrics)})")


def _describe(explainer: Any) -> str:
    """The class and chosen layer of an explainer, for `Evaluation.settings`."""
    layer = getattr(explainer, "layer", None)
    return type(explainer).__name__ + (f"(layer={layer!r})" if layer else "")


def _method_rows(methods: Any, model: Any, options: Mapping[str, Mapping[str, Any]]
                 ) -> list[tuple[str, Any]]:
    """``(row name, explainer or baseline name)`` per method, explainers built once."""
    from tfvis.explainers import Explainer, explainer_class

    if isinstance(methods, (str, Explainer)):
        methods = [methods]
    rows: list[tuple[str, Any]] = []
    used_options = set()
    for method in methods:
        if isinstance(method, str):
            baseline = next((b for b, spellings in BASELINES.items()
                             if method.strip().lower() in spellings), None)
            if baseline is not None:
                rows.append((baseline, baseline))
                continue
            cls = explainer_class(method)  # ValueError with close matches
            settings = dict(options.get(cls.name, options.get(method, {})))
            used_options.update(k for k in (cls.name, method) if k in options)
            settings.setdefault("verbose", 0)
            rows.append((cls.name, cls(model, **settings)))
        elif isinstance(method, Explainer):
            rows.append((type(method).name or type(method).__name__, method))
        else:
            raise TypeError(f"methods holds a {type(method).__name__}; pass registry names "
                            "(tfvis.methods()), titles, explainer instances, 'random' or "
                            "'centre'")
    unused = sorted(set(options) - used_options)
    if unused:
        raise ValueError(f"options given for {unused}, which are not among the methods "
                         f"evaluated ({', '.join(r for r, _ in rows)})")
    names = [r for r, _ in rows]
    seen: dict[str, int] = {}
    out = []
    for name, method in rows:  # the same method twice (e.g. two layers): "gradcam#2"
        seen[name] = seen.get(name, 0) + 1
        out.append((name if names.count(name) == 1 or seen[name] == 1
                    else f"{name}#{seen[name]}", method))
    if not out:
        raise ValueError("methods is empty: name at least one method, e.g. ['gradcam']")
    return out


def evaluate(
    model: Any,
    images: Any,
    methods: Sequence[Any] | Any,
    metrics: Sequence[Any] | Any,
    targets: Any = None,
    masks: Any = None,
    boxes: Any = None,
    *,
    seed: int = 0,
    batch_size: int | None = None,
    verbose: int = 1,
    options: Mapping[str, Mapping[str, Any]] | None = None,
) -> Evaluation:
    """Scores each method's maps with each metric on the same images.

    Args:
      model: the Keras model explained and scored.
      images: ``(N, H, W, C)`` array (or tensor) of model inputs.
      methods: registry names or titles (`tfvis.methods()`), `Explainer` instances (used as
        they are), or the baselines ``"random"`` and ``"centre"``.
      metrics: names from `METRICS` or `tfvis.metrics` instances (e.g.
        ``Deletion(model, steps=32)``); `SanityCheck` is per layer and has its own figure.
      targets: what is explained and scored, as the explainers take it (None: each image's
        top-1 class; an int; one int per image; ``(N, K)`` weights; a callable). The same
        targets go to every method and metric.
      masks: ``(N, H, W)`` object masks (non-zero = object) for the pointing games and, via
        their bounding boxes, the localisation error.
      boxes: ``(N, 4)`` object boxes ``(x0, y0, x1, y1)``, ends exclusive, in input pixels
        (used by the pointing game when there are no masks, and by the localisation error).
      seed: the random baseline's seed and MuFidelity's (when built from its name).
      batch_size: perturbed images per model call for metrics built from their names.
      verbose: 1 shows a progress bar (one step per explanation and per metric), 0 is quiet.
      options: per registry name, constructor options of the methods built from names
        (e.g. ``{"rise": {"num_masks": 500}}``).

    Returns:
      An `Evaluation`: ``table``, ``results[method][metric]``, ``to_markdown()``,
      ``to_csv(path)``; `tfvis.plotting.deletion_curves` draws its curves.

    Raises:
      ValueError: an unknown method or metric name (close matches are listed), images that
        are not ``(N, H, W, C)``, masks or boxes that do not match the images, or no metric
        left to run.
      TypeError: a method or metric of an unsupported type.
    """
    import tensorflow as tf

    if isinstance(images, tf.Tensor):
        images = images.numpy()
    if not isinstance(images, np.ndarray) or images.ndim != 4:
        raise ValueError(f"images must be an (N, H, W, C) array, got "
                         f"{getattr(images, 'shape', type(images).__name__)}; add a batch axis "
                         "with images[None] for one image")
    n, height, width = images.shape[:3]
    shape = (n, height, width)
    if masks is not None:
        masks = np.asarray(masks)
        if masks.ndim == 4 and masks.shape[-1] == 1:
            masks = masks[..., 0]
        if masks.shape != shape:
            raise ValueError(f"masks must be (N, H, W) = {shape} like the images, got shape "
                             f"{masks.shape}")
    if boxes is not None:
        boxes = np.asarray(boxes)
        if boxes.shape != (n, 4):
            raise ValueError(f"boxes must be (N, 4) = ({n}, 4) (x0, y0, x1, y1), one per image, "
                             f"got shape {boxes.shape}")

    if isinstance(metrics, str) or not isinstance(metrics, (list, tuple)):
        metrics = [metrics]
    built: list[tuple[str, Any]] = []
    notes: list[str] = []
    for metric in metrics:
        metric = (build_metric(metric, model, seed=seed, batch_size=batch_size)
                  if isinstance(metric, str) else metric)
        key = metric_key(metric)
        if key == "sanity_check":
            raise ValueError("SanityCheck is per randomised layer, not per image: run it on its "
                             "own and draw tfvis.plotting.sanity_curves")
        if any(k == key for k, _ in built):
            raise ValueError(f"metric {key!r} is listed twice; the table has one column each")
        if key in NEEDS_OBJECTS and masks is None and boxes is None:
            notes.append(f"{key} skipped: it needs object masks or boxes (masks=, boxes=)")
            continue
        if key == "localization_error" and boxes is None:
            boxes = boxes_of_masks(masks)
        built.append((key, metric))
    if not built:
        raise ValueError("no metric left to run: " + "; ".join(notes) if notes else
                         "metrics is empty: name at least one, e.g. ['deletion', 'insertion']")
    rows = _method_rows(methods, model, options or {})

    bar = None
    if verbose:
        import keras

        bar = keras.utils.Progbar(len(rows) * (1 + len(built)), unit_name="step")
    done = 0
    results: dict[str, dict[str, MetricResult]] = {}
    all_maps: dict[str, np.ndarray] = {}
    seconds: dict[str, dict[str, float]] = {}
    for name, method in rows:
        t = time.perf_counter()
        if method == "random":
            maps = random_maps(shape, seed)
        elif method == "centre":
            maps = centre_maps(shape)
        else:
            maps = np.asarray(method.explain(images, targets=targets).maps, np.float32)
        timing = {"explain": time.perf_counter() - t}
        all_maps[name] = maps
        done += 1
        if bar is not None:
            bar.update(done)
        results[name] = {}
        for key, metric in built:
            t = time.perf_counter()
            if key in ("pointing_game", "pointing_energy"):
                result = metric(maps, masks if masks is not None else boxes)
            elif key == "localization_error":
                result = metric(maps, boxes)
            else:
                result = metric(images, maps, targets)
            timing[key] = time.perf_counter() - t
            results[name][key] = result
            done += 1
            if bar is not None:
                bar.update(done)
        seconds[name] = timing
    settings = {
        "images": n, "seed": seed, "level": LEVEL,
        "metrics": {key: repr(metric) for key, metric in built},
        "methods": {name: ("baseline" if isinstance(m, str) else _describe(m))
                    for name, m in rows},
    }
    return Evaluation([r for r, _ in rows], [k for k, _ in built], results, all_maps, notes,
                      settings, seconds)


__all__ = ["BASELINES", "METRICS", "Evaluation", "Score", "build_metric", "centre_maps",
           "evaluate", "metric_key", "random_maps"]
