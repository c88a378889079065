"""`FeatureEvolution`: Zeiler & Fergus's "evolution of features through training".

Every N epochs, for each chosen layer and each of its first filters, it logs the probe patch
that activates the filter most and that filter's activation map on that probe, plus the
first convolution's kernels, so one can watch low layers converge before high ones.
"""

from __future__ import annotations

import os
from typing import Any, Sequence

import keras
import numpy as np
import tensorflow as tf

from tfvis.callbacks.logger import take_probe
from tfvis.callbacks.writers import Writers
from tfvis.checks import positive_int
from tfvis.inputs import input_shape
from tfvis.inspect.kernels import kernel_grid, kernels, nearest
from tfvis.inspect.top import probe_patches
from tfvis.plotting.images import colorize, normalize, tile
from tfvis.surgery import capture, layer_table, resolve_layer
from tfvis.surgery.receptive import receptive_field

_TILE = 32


def _conv_paths(model) -> list[str]:
    return [i.path for i in layer_table(model)
            if i.is_spatial and isinstance(i.layer, keras.layers.Conv2D)]


def top_patches(images: np.ndarray, acts: np.ndarray, window: int) -> np.ndarray:
    """For each filter, the ``window``-sized input patch around its strongest activation
    (`tfvis.inspect.top.probe_patches`), as uint8 RGB ``(F, 32, 32, 3)``."""
    return probe_patches(images, acts, window, _TILE)


class FeatureEvolution(keras.callbacks.Callback):
    """Logs what each filter of chosen layers responds to, every N epochs.

    Args:
      images: probe images (array or small `tf.data.Dataset`, read once).
      layers: layer names/paths (default: the first, middle and last Conv2D layers).
      every_n_epochs: log after every N-th epoch.
      max_filters: filters shown per layer (the first ones).
      window: side of the input patch shown per filter, centred on the strongest unit
        (default: the unit's exact receptive field, `tfvis.inspect.receptive_field`; where
        it has no closed form, 4x the layer's stride, at least 9 pixels).
      kernels: also log the first Conv2D layer's kernels as images.
      log_dir, png_dir, npz_dir: where to write (see `ExplanationLogger`); the NPZ holds the
        maximum activation of every probe image and filter, per layer.
      max_images: probe images kept.
    """

    def __init__(
        self,
        images: Any,
        layers: Sequence[Any] | None = None,
        *,
        every_n_epochs: int = 1,
        max_filters: int = 16,
        window: int | None = None,
        kernels: bool = True,
        log_dir: str | os.PathLike | None = None,
        png_dir: str | os.PathLike | None = None,
        npz_dir: str | os.PathLike | None = None,
        max_images: int = 16,
    ) -> None:
        super().__init__()
        self.images = images
        self.layer_specs = None if layers is None else list(layers)
        self.every_n_epochs = positive_int("every_n_epochs", every_n_epochs)
        self.max_filters = positive_int("max_filters", max_filters)
        self.window = positive_int("window", window, allow_none=True)
        self.kernels = bool(kernels)
        self.max_images = positive_int("max_images", max_images)
        self.writers = Writers(log_dir, png_dir, npz_dir)
        self.paths: list[str] = []
        self._fn = None
        self._fn_model = None
        self._probe = None
        self._epochs = 0
        self._fields: dict = {}

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        if self._fn is not None and self._fn_model is model:
            return
        if self.layer_specs is None:
            convs = _conv_paths(model)
            if not convs:
                raise ValueError("FeatureEvolution found no Conv2D layer; pass layers=")
            self.paths = list(dict.fromkeys([convs[0], convs[len(convs) // 2], convs[-1]]))
        else:
            self.paths = [resolve_layer(model, spec).path for spec in self.layer_specs]

        paths = list(self.paths)
        self._fields = {}
        for path in paths:  # the exact receptive field crops each unit's patch
            try:
                self._fields[path] = receptive_field(model, path)
            except ValueError:  # no closed form (an unknown layer, unknown input size)
                pass

        def activations(x):
            # Only the layers up to the deepest logged one run (no head, no later blocks).
            return {p: tf.cast(a, tf.float32) for p, a in capture(model, x, paths).items()}

        self._fn = tf.function(activations, autograph=False)
        self._fn_model = model
        self._probe = None

    def log(self, step: int) -> None:
        """Computes and writes the filter views now, at ``step``."""
        try:
            if self._probe is None:
                self._probe = take_probe(self.images, None, self.max_images,
                                         input_shape(self.model))[0]
            x = self._probe
            acts = {p: a.numpy() for p, a in self._fn(tf.constant(x)).items()}
            for path, a in acts.items():
                a = a[..., : self.max_filters]
                field = None if self.window else self._fields.get(path)
                stride = max(1, x.shape[1] // a.shape[1])
                window = self.window or min(x.shape[1], max(9, 4 * stride))
                patches = probe_patches(x, a, window, _TILE, field)
                self.writers.images(f"{path}/top_patches", tile(patches)[None], step)
                strongest = a.reshape(-1, a.shape[-1]).argmax(0) // (a.shape[1] * a.shape[2])
                # each filter's map on its strongest probe: advanced indexing gives (F, h, w)
                maps = normalize(a[strongest, :, :, np.arange(a.shape[-1])], "positive")
                views = np.stack([nearest(colorize(m), _TILE) for m in maps])
                self.writers.images(f"{path}/activations", tile(views)[None], step)
                self.writers.arrays(f"{path}_max_activation", step, max=a.max(axis=(1, 2)))
            if self.kernels:
                self._log_kernels(step)
        except Exception as err:
            raise RuntimeError(
                f"FeatureEvolution failed at epoch {step}: {type(err).__name__}: {err}"
            ) from err

    def _log_kernels(self, step: int) -> None:
        convs = _conv_paths(self.model)
        if not convs:
            return
        layer = resolve_layer(self.model, convs[0]).layer
        if layer.kernel.shape[2] not in (1, 3):
            return
        # each filter scaled on its own, colours kept (tfvis.inspect.kernels)
        filters = kernels(self.model, convs[0], normalize="filter",
                          max_filters=self.max_filters)
        self.writers.images("kernels/first_conv", kernel_grid(filters, _TILE)[None], step)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._epochs += 1
        if self._epochs % self.every_n_epochs == 0:
            self.log(self._epochs)

    def on_train_end(self, logs: dict | None = None) -> None:
        self.writers.close()
