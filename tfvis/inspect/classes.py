"""Explanations per class: mean maps over a dataset (bias analysis) and the top-k classes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import tensorflow as tf


@dataclass(frozen=True)
class ClassMeans:
    """The average normalised map per class.

    Attributes:
      maps: float32 ``(K, H, W)``; a class without samples has a zero map.
      counts: int64 ``(K,)`` samples per class.
      method: the explainer's registry name.
    """

    maps: np.ndarray
    counts: np.ndarray
    method: str

    def mass(self, class_id: int, box: Any) -> float:
        """The fraction of class ``class_id``'s mean-map mass inside ``box`` (x0, y0, x1, y1)."""
        m = self.maps[class_id]
        x0, y0, x1, y1 = (int(v) for v in box)
        total = float(m.sum())
        return float(m[y0:y1, x0:x1].sum()) / total if total > 0 else 0.0


def _explainer(explainer: Any, model: Any = None) -> Any:
    if isinstance(explainer, str):
        from tfvis import get_explainer

        if model is None:
            raise ValueError("a registry name needs the model: pass an Explainer instead")
        return get_explainer(explainer, model, verbose=0)
    return explainer


def class_mean_maps(explainer: Any, data: Any, labels: Any = None, *,
                    num_classes: int | None = None, batch_size: int | None = None
                    ) -> ClassMeans:
    """Averages each class's normalised explanation over a dataset, streamed.

    Each sample is explained for its label (the label's class score) and its map added to
    that class's sum; memory holds one chunk plus ``(K, H, W)`` sums.

    Args:
      explainer: an `Explainer` (e.g. ``tfvis.GradCAM(model)``).
      data: images (array) with ``labels``, or a `tf.data.Dataset` of ``(x, y)`` pairs (single
        samples or batches; its labels are read in a first, image-free pass).
      labels: int ``(N,)`` class ids (required for arrays and generators).
      num_classes: K (default: the model's number of classes).
      batch_size: samples per chunk (default: the explainer's).

    Returns:
      `ClassMeans` (``maps``, ``counts``, ``mass(class, box)``).
    """
    images = data
    if labels is None:
        if not isinstance(data, tf.data.Dataset):
            raise ValueError("labels are required unless data is a tf.data.Dataset of "
                             "(x, y) pairs")
        spec = data.element_spec
        if not isinstance(spec, tuple) or len(spec) < 2:
            raise ValueError("the dataset yields no labels: give labels=, or a dataset of "
                             "(x, y) pairs")
        labels = np.concatenate([np.reshape(y, (-1,)) for y in
                                 data.map(lambda *e: e[1]).as_numpy_iterator()])
        images = data.map(lambda *e: e[0])
    labels = np.asarray(labels).reshape(-1).astype(np.int64)
    if num_classes is None:
        num_classes = int(explainer.model.outputs[explainer.output_index or 0].shape[-1])
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must be class ids in 0..{num_classes - 1}, got "
                         f"{labels.min()}..{labels.max()}")
    sums = None
    counts = np.zeros(num_classes, np.int64)
    start = 0
    for chunk in explainer.stream(images, labels, batch_size):
        maps = np.asarray(chunk.maps, np.float64)
        y = labels[start: start + len(maps)]
        if sums is None:
            sums = np.zeros((num_classes, *maps.shape[1:]), np.float64)
        np.add.at(sums, y, maps)
        counts += np.bincount(y, minlength=num_classes)
        start += len(maps)
    if sums is None:
        raise ValueError("the dataset is empty")
    means = sums / np.maximum(counts, 1)[:, None, None]
    return ClassMeans(means.astype(np.float32), counts, getattr(explainer, "name", ""))


def top_class_maps(model: Any, image: Any, explainer: Any, k: int = 5):
    """``(image, outputs (K,), top-k class ids, Explanation of the k classes)`` for one image."""
    from tfvis.inputs import as_batch, input_shape
    from tfvis.surgery import run_graph

    explainer = _explainer(explainer, model)
    x = as_batch(image, input_shape(model))[:1]
    outputs = np.asarray(run_graph(model, tf.constant(x)))[0]
    classes = np.argsort(-outputs, kind="stable")[: min(int(k), len(outputs))]
    result = explainer(np.repeat(x, len(classes), 0), targets=classes)
    return x[0], outputs, classes, result
