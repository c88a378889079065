"""`ExplanationLogger`: watch explanations of fixed probe images evolve during ``fit``."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping

import keras
import numpy as np
import tensorflow as tf

from tfvis.callbacks.writers import Writers
from tfvis.checks import positive_int
from tfvis.explainers import Explainer, get_explainer
from tfvis.inputs import as_batch, input_shape


def take_probe(images: Any, labels: Any, count: int, shape: tuple) -> tuple[np.ndarray, Any]:
    """The first ``count`` probe images (and labels) from an array or a `tf.data.Dataset`.

    A dataset is read through a fresh iterator (``take``), so a dataset also used for
    training is not consumed. ``(x, y)`` elements provide labels.
    """
    if isinstance(images, tf.data.Dataset):
        xs, ys = [], []
        for element in images.take(count):
            x, y = (element[0], element[1]) if isinstance(element, (tuple, list)) else (element, None)
            x = np.asarray(x)
            batched = len(shape) > 0 and x.ndim == len(shape)
            xs.extend(x if batched else [x])
            if y is not None:
                y = np.asarray(y)
                ys.extend(y if batched else [y])
        x = as_batch(np.stack(xs[:count]), shape)
        return x, (np.asarray(ys[:count]) if ys else labels)
    x = as_batch(images, shape)[:count]
    return x, (None if labels is None else np.asarray(labels)[:count])


class ExplanationLogger(keras.callbacks.Callback):
    """Logs explanations of a fixed probe set every N epochs (and optionally every N batches).

    Args:
      explainer: an `Explainer` for the model being trained, a registry name (see
        `tfvis.methods()`), or a factory ``model -> Explainer``. It is built once in
        ``set_model`` and sees the current weights at each log (no re-cloning, no retrace).
      images: probe images (array) or a small `tf.data.Dataset` (of images or ``(x, y)``
        pairs), read once through its own iterator.
      targets: ``"predicted"`` (top-1 class at log time), ``"labels"`` (the true labels from
        ``labels`` or the dataset), or anything `Explainer.explain` accepts as targets.
      labels: true labels of the probe images (for ``targets="labels"``): integer class ids
        ``(N,)`` or ``(N, 1)`` (the layout of ``keras.datasets``), or ``(N, K)`` one-hot or
        soft weights with K > 1; read exactly as `Explainer.explain` reads targets, so a
        float ``(N, 1)`` array is refused as ambiguous.
      every_n_epochs: log after every N-th epoch.
      every_n_batches: also log after every N-th training batch (None: never).
      log_dir: TensorBoard folder (``tf.summary.image`` with one image per probe).
      png_dir: folder for PNG overlays (a subfolder per step).
      npz_dir: folder for NPZ files of the maps, raw values and scores.
      max_images: how many probe images to keep.
      options: constructor options when ``explainer`` is a registry name.
      alpha, cmap: overlay look.

    Steps keep increasing when the same callback is used for several ``fit`` calls: epoch
    logs use the number of epochs seen so far, batch logs the number of batches.
    """

    def __init__(
        self,
        explainer: Explainer | str | Callable[[keras.Model], Explainer],
        images: Any,
        targets: Any = "predicted",
        labels: Any = None,
        *,
        every_n_epochs: int = 1,
        every_n_batches: int | None = None,
        log_dir: str | os.PathLike | None = None,
        png_dir: str | os.PathLike | None = None,
        npz_dir: str | os.PathLike | None = None,
        max_images: int = 8,
        options: Mapping[str, Any] | None = None,
        alpha: float = 0.5,
        cmap: str = "jet",
    ) -> None:
        super().__init__()
        if not isinstance(explainer, (Explainer, str)) and not callable(explainer):
            raise TypeError("explainer must be an Explainer, a registry name or a factory")
        if isinstance(targets, str) and targets not in ("predicted", "labels"):
            raise ValueError(f"targets must be 'predicted', 'labels' or explain() targets, not {targets!r}")
        self.explainer_spec = explainer
        self.images = images
        self.targets = targets
        self.labels = labels
        self.every_n_epochs = positive_int("every_n_epochs", every_n_epochs)
        self.every_n_batches = positive_int("every_n_batches", every_n_batches, allow_none=True)
        self.max_images = positive_int("max_images", max_images)
        self.options = dict(options or {})
        self.alpha, self.cmap = alpha, cmap
        self.writers = Writers(log_dir, png_dir, npz_dir)
        self.explainer: Explainer | None = None
        self._probe: tuple[np.ndarray, Any] | None = None
        self._epochs = 0
        self._batches = 0

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self.explainer is not None and self.explainer.model is model:
            return
        spec = self.explainer_spec
        if isinstance(spec, Explainer):
            if spec.model is not model:
                raise ValueError("the explainer was built for another model than the one in fit")
            self.explainer = spec
        elif isinstance(spec, str):
            self.explainer = get_explainer(spec, model, **{"verbose": 0, **self.options})
        else:
            built = spec(model)
            if not isinstance(built, Explainer):
                raise TypeError(f"the explainer factory returned {type(built).__name__}, not an Explainer")
            self.explainer = built
        self._probe = None

    def _targets(self, labels: Any) -> Any:
        if isinstance(self.targets, str):
            if self.targets == "predicted":
                return None
            if labels is None:
                raise ValueError("targets='labels' needs labels= or a dataset of (x, y) pairs")
            # Passed on as they are: `Explainer.explain` parses them with the one target
            # parser (`tfvis.targets.resolve_targets`): integer (N,) or (N, 1) labels are class
            # ids, (N, K) arrays one-hot or soft weights, and an ambiguous layout is an error.
            return np.asarray(labels)
        return self.targets

    def log(self, step: int, kind: str = "epoch") -> None:
        """Explains the probe images now and writes them at ``step``."""
        name = self.explainer.name or type(self.explainer).__name__
        try:
            if self._probe is None:
                self._probe = take_probe(self.images, self.labels, self.max_images,
                                         input_shape(self.model))
            x, labels = self._probe
            result = self.explainer.explain(x, targets=self._targets(labels))
            self.writers.images(f"{name}/{kind}", result.overlay(x, self.alpha, self.cmap), step)
            extra = {} if callable(result.targets) else {"targets": np.asarray(result.targets)}
            self.writers.arrays(f"{name}_{kind}", step, maps=result.maps, raw=result.raw,
                                scores=result.scores, **extra)
        except Exception as err:
            raise RuntimeError(
                f"ExplanationLogger ({name}) failed at {kind} {step}: {type(err).__name__}: {err}"
            ) from err

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epochs += 1
        if self._epochs % self.every_n_epochs == 0:
            self.log(self._epochs, "epoch")

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        self._batches += 1
        if self.every_n_batches and self._batches % self.every_n_batches == 0:
            self.log(self._batches, "batch")

    def on_train_end(self, logs: dict | None = None) -> None:
        self.writers.close()
