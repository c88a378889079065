"""Inverting a layer with an up-convolutional network (Dosovitskiy & Brox, CVPR 2016).

Instead of optimising one image per feature vector (Mahendran & Vedaldi), a small decoder is
trained once to map a layer's features back to images; inverting is then one forward pass.
The paper's pixel loss: ``min_w sum_i ||D_w(phi(x_i)) - x_i||^2`` over a training set, where
``phi`` is the frozen network up to the layer and ``D_w`` is conv layers followed by
stride-2 transposed convolutions ("up-convolutions") up to the image size.

What the decoder reconstructs shows what the layer keeps: early layers give the image back
almost exactly, deep layers keep the object's class, position and rough colours and lose the
rest.

The explained model is only called, in inference mode, through
`tfvis.surgery.graph.capture` (only the layers up to the inverted one run); gradients reach
the decoder only, so the model's weights, BN statistics and trainable flags never change.
Images are float32 ``(N, H, W, C)`` in [0, 1] (display space); the model's own convention
(``input_range`` / ``preprocess``, as in `tfvis.featurevis.loop`) is applied inside the graph,
and the decoder reconstructs display-space images.

A saved inversion network is a ``.keras`` file: the decoder (a plain Keras model, loaded with
``safe_mode=True``) plus a ``tfvis_inversion.json`` entry in the same archive naming the layer,
the image shape, the input convention and a digest of the model's weights it was trained on.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tfvis.featurevis.loop import _convention

_META = "tfvis_inversion.json"  # the archive entry beside Keras's config.json
_FORMAT = 1


def _digest(model) -> str:
    """A sha256 of every weight of ``model`` (names and values), BN statistics included."""
    h = hashlib.sha256()
    for w in model.weights:
        h.update(w.path.encode())
        h.update(np.ascontiguousarray(w.numpy()).tobytes())
    return h.hexdigest()


def _callable_name(fn: Callable | None) -> str | None:
    if fn is None:
        return None
    return f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', type(fn).__name__)}"


def default_decoder(feature_shape: Sequence[int], image_shape: Sequence[int], *,
                    scale: float = 1.0, seed: int = 0):
    """The default up-convolutional decoder, sized from the feature and image shapes.

    Spatial features ``(h, w, c)``: two 3x3 convolutions at the features' resolution, then
    one 4x4 stride-2 transposed convolution per doubling needed to reach the image size
    (leaky ReLU 0.2, as in the paper; widths halve at each doubling), a 3x3 convolution to
    the image channels with a sigmoid, and a bilinear resize to the exact size when the
    ratio is not a power of two. Vector features ``(d,)``: a dense layer to a 4x4 grid (or
    smaller) instead of the convolutions. The input is first multiplied by ``scale`` (the
    inverse RMS of the training features) so the learning rate does not depend on the
    layer's magnitude.

    Args:
      feature_shape: the layer's output shape without the batch axis.
      image_shape: ``(H, W, C)`` of the images.
      scale: multiplies the features before the first layer.
      seed: seeds every initialiser (layer k uses ``seed + k``).

    Returns:
      An uncompiled functional `keras.Model` ``features -> images`` in [0, 1], float32.
    """
    import keras

    feature_shape = tuple(int(v) for v in feature_shape)
    h_img, w_img, channels = (int(v) for v in image_shape)
    count = iter(range(1_000))

    def init():
        return keras.initializers.HeNormal(seed=int(seed) + next(count))

    def conv(x, width, name, cls=keras.layers.Conv2D, kernel=3, strides=1, act="leaky_relu"):
        return cls(width, kernel, strides=strides, padding="same", activation=act,
                   kernel_initializer=init(), dtype="float32", name=name)(x)

    inp = keras.Input(feature_shape, name="features", dtype="float32")
    x = keras.layers.Rescaling(float(scale), dtype="float32", name="scale")(inp)
    if len(feature_shape) == 1:
        ups = max(0, math.ceil(math.log2(max(h_img, w_img) / 4)))
        h0, w0 = math.ceil(h_img / 2 ** ups), math.ceil(w_img / 2 ** ups)
        width = 128
        x = keras.layers.Dense(h0 * w0 * width, activation="leaky_relu",
                               kernel_initializer=init(), dtype="float32", name="dense")(x)
        x = keras.layers.Reshape((h0, w0, width), dtype="float32", name="grid")(x)
    elif len(feature_shape) == 3:
        fh, fw, c = feature_shape
        ups = max(0, math.ceil(math.log2(max(h_img / fh, w_img / fw)) - 1e-9))
        width = int(min(max(c, 32), 256))
        x = conv(x, width, "conv1")
        x = conv(x, width, "conv2")
    else:
        raise ValueError(
            f"the default decoder inverts features of shape (h, w, c) or (d,), not "
            f"{feature_shape}: choose a convolutional or dense layer, or pass decoder=")
    for i in range(ups):
        width = max(16, width // 2)
        x = conv(x, width, f"upconv{i + 1}", keras.layers.Conv2DTranspose, kernel=4, strides=2)
    x = conv(x, channels, "to_image", act="sigmoid")
    if tuple(x.shape[1:3]) != (h_img, w_img):
        x = keras.layers.Resizing(h_img, w_img, interpolation="bilinear", dtype="float32",
                                  name="resize")(x)
    return keras.Model(inp, x, name="inversion_decoder")


def _check_meta(meta: dict, path: Path) -> None:
    """Raises `InvalidModelFileError` unless the stored fields have the types `save` writes."""
    from tfvis.io import InvalidModelFileError

    def ints(v, rank=None):
        return (isinstance(v, list) and all(isinstance(i, int) and 0 < i < 1 << 16 for i in v)
                and (rank is None or len(v) == rank))

    ok = (isinstance(meta.get("layer"), str) and isinstance(meta.get("model"), str)
          and ints(meta.get("image_shape"), 3) and ints(meta.get("feature_shape"))
          and isinstance(meta.get("input_range"), list) and len(meta["input_range"]) == 2
          and isinstance(meta.get("preprocess"), (str, type(None)))
          and isinstance(meta.get("weights_sha256"), str)
          and isinstance(meta.get("history"), list))
    if not ok:
        raise InvalidModelFileError(f"{path} has a malformed {_META}; save it again with "
                                    "InversionNetwork.save")


class InversionNetwork:
    """A decoder trained to invert one layer of a frozen model (Dosovitskiy & Brox 2016).

    Example::

        inv = tfvis.InversionNetwork(model, "conv2b").fit(train_images, epochs=10)
        reconstructions = inv.invert(test_images)   # (N, H, W, C) in [0, 1]
        inv.save("inv_conv2b.keras")
        inv = tfvis.InversionNetwork.load("inv_conv2b.keras", model)

    Args:
      model: a functional or Sequential Keras model with one image input (nested models
        allowed). Never modified: it is only called, in inference mode.
      layer: the layer to invert: a name, an ``"outer/inner"`` path into nested models, an
        index or a layer object (`tfvis.surgery.layers.resolve_layer`).
      decoder: a Keras model mapping the layer's features ``(N, *feature_shape)`` to images
        ``(N, H, W, C)`` in [0, 1]; it is trained in place. Default: `default_decoder`,
        built on the first `fit`.
      input_range: the range the model's input expects; images in [0, 1] are mapped linearly
        to it inside the graph. Default (0, 1), or (0, 255) with ``preprocess``.
      preprocess: a function applied after the range mapping, inside the graph.
      learning_rate: Adam's learning rate.
      batch_size: images per training step (and per chunk in `invert`).
      seed: seeds the default decoder's initialisers and the order the images are visited
        in (each epoch its own permutation). Same seed, same data: bitwise the same decoder.
      verbose: 1 shows a progress bar per epoch, 0 is quiet.

    Attributes:
      path: the resolved layer path.
      history: the mean training loss (pixel MSE) of every epoch trained so far.
    """

    def __init__(
        self,
        model,
        layer: Any,
        *,
        decoder: Any = None,
        input_range: tuple[float, float] | None = None,
        preprocess: Callable[[Any], Any] | None = None,
        learning_rate: float = 1e-3,
        batch_size: int = 32,
        seed: int = 0,
        verbose: int = 1,
    ) -> None:
        import keras

        from tfvis.inputs import model_inputs
        from tfvis.surgery.layers import require_built, require_graph, resolve_layer

        require_graph(model, "InversionNetwork")
        require_built(model)
        specs = model_inputs(model)
        if len(specs) != 1 or len(specs[0].shape) != 4:
            raise ValueError(
                f"InversionNetwork needs a model with one image input (N, H, W, C); model "
                f"{model.name!r} has inputs {[s.shape for s in specs]}")
        if decoder is not None and not isinstance(decoder, keras.Model):
            raise TypeError(f"decoder must be a keras.Model mapping features to images, not "
                            f"{type(decoder).__name__}")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        if not float(learning_rate) > 0:
            raise ValueError(f"learning_rate must be > 0, got {learning_rate}")
        self.model = model
        self.path = resolve_layer(model, layer).path
        self.range = _convention(input_range, preprocess)
        self.preprocess = preprocess
        self.learning_rate = float(learning_rate)
        self.batch_size = int(batch_size)
        self.seed = int(seed)
        self.verbose = int(verbose)
        self.decoder = decoder
        self.history: list[float] = []
        model_shape = tuple(specs[0].shape[1:])
        self._image_shape: tuple = model_shape  # known sizes, None where the model has none
        self._feature_shape: tuple | None = None
        self._digest: str | None = None
        self._steps: dict[str, Any] = {}  # compiled train / invert / decode
        self._specs: dict[str, Any] = {}  # their input signatures (None batch axis)
        self._optimizer = None
        self._epochs = 0  # epochs trained by this object (seeds each epoch's permutation)

    # -- the frozen model ----------------------------------------------------------------------

    def _to_model(self, x):
        from tfvis.featurevis.loop import to_model_input

        return to_model_input(x, self.range, self.preprocess)

    def _features(self, x):
        """The layer's features of display-space images ``x`` (inference mode, no gradient)."""
        import tensorflow as tf

        from tfvis.surgery.graph import capture

        feats = capture(self.model, self._to_model(x), [self.path])[self.path]
        if isinstance(feats, (list, tuple)):
            feats = feats[0]
        return tf.stop_gradient(tf.cast(feats, tf.float32))

    @property
    def image_shape(self) -> tuple:
        """``(H, W, C)`` of the images (None for sizes still unknown before `fit`)."""
        return self._image_shape

    @property
    def feature_shape(self) -> tuple | None:
        """The inverted layer's output shape without the batch axis (known after `fit`)."""
        return self._feature_shape

    @property
    def traces(self) -> int:
        """How many times compiled steps were traced (for retracing checks)."""
        return sum(int(fn.experimental_get_tracing_count()) for fn in self._steps.values())

    # -- data ----------------------------------------------------------------------------------

    def _spec(self):
        from tfvis.inputs import InputSpec

        return [InputSpec("images", (None, *self._image_shape))]

    def _array(self, images: Any, what: str = "images") -> np.ndarray:
        """``images`` as a checked float32 (N, H, W, C) batch in [0, 1] (always a copy)."""
        from tfvis.inputs import as_source

        try:
            batch = as_source(images, self._spec(), 0).arrays()[0]
        except ValueError as err:
            raise ValueError(f"{what}: {err}") from None
        return self._in_range(batch, what)

    @staticmethod
    def _in_range(batch: np.ndarray, what: str) -> np.ndarray:
        if batch.size and (batch.min() < 0 or batch.max() > 1):
            raise ValueError(
                f"{what} must be in [0, 1] (display space), got values in "
                f"[{batch.min():.3g}, {batch.max():.3g}]: divide uint8 images by 255; the "
                "model's own range is set with input_range= / preprocess=")
        return batch

    def _epoch_batches(self, data: Any, epoch: int, shuffle: bool):
        """Yields float32 training batches of one epoch."""
        import tensorflow as tf

        from tfvis.inputs import as_source

        size = self.batch_size
        if isinstance(data, tf.data.Dataset):  # streamed, in the dataset's own order
            for batch, count in as_source(data, self._spec(), 0).chunks(size):
                yield self._in_range(batch[0][:count], "images")
            return
        if not shuffle:
            for start in range(0, len(data), size):
                yield data[start:start + size]
            return
        order = np.random.default_rng([self.seed, epoch]).permutation(len(data))
        for start in range(0, len(data), size):
            yield data[order[start:start + size]]

    # -- building ------------------------------------------------------------------------------

    def _build(self, first: np.ndarray) -> None:
        """Builds the decoder, the optimiser and the compiled steps on the first batch."""
        import tensorflow as tf

        image_shape = tuple(int(v) for v in first.shape[1:])
        feats = self._features(tf.constant(first))
        feature_shape = tuple(int(v) for v in feats.shape[1:])
        if self.decoder is None:
            rms = float(np.sqrt(np.mean(np.square(feats.numpy(), dtype=np.float64))))
            self.decoder = default_decoder(feature_shape, image_shape,
                                           scale=1.0 / rms if rms > 0 else 1.0, seed=self.seed)
        out = self.decoder(feats[:1], training=False)
        if tuple(out.shape[1:]) != image_shape:
            raise ValueError(
                f"the decoder maps features {feature_shape} of layer {self.path!r} to "
                f"{tuple(out.shape[1:])}, but the images are {image_shape}: it must output "
                "(N, H, W, C) images like its training data")
        self._image_shape, self._feature_shape = image_shape, feature_shape
        self._compile()

    def _compile(self) -> None:
        """The compiled training step and forward passes, traced once for any batch size."""
        import tensorflow as tf

        from tfvis.engine.compiled import compile_step

        if self._steps:
            return
        decoder = self.decoder

        def train(x):
            feats = self._features(x)
            with tf.GradientTape() as tape:
                recon = tf.cast(decoder(feats, training=True), tf.float32)
                loss = tf.reduce_mean(tf.square(recon - x))
            variables = decoder.trainable_variables
            grads = tape.gradient(loss, variables)
            self._optimizer.apply_gradients(zip(grads, variables))
            return loss

        def invert(x):
            return tf.cast(decoder(self._features(x), training=False), tf.float32)

        def decode(f):
            return tf.cast(decoder(f, training=False), tf.float32)

        images = tf.TensorSpec((None, *self._image_shape), tf.float32)
        features = tf.TensorSpec((None, *self._feature_shape), tf.float32)
        self._steps = {"train": compile_step(train), "invert": compile_step(invert),
                       "decode": compile_step(decode)}
        self._specs = {"train": images, "invert": images, "decode": features}

    def _step(self, name: str):
        """A compiled step, traced on first use for a ``None`` batch axis (one trace)."""
        fn = self._steps[name]
        if fn.experimental_get_tracing_count() == 0:
            fn.get_concrete_function(self._specs[name])
        return fn

    # -- training ------------------------------------------------------------------------------

    def fit(self, dataset: Any, epochs: int = 10, shuffle: bool = True) -> InversionNetwork:
        """Trains the decoder to reconstruct ``dataset``'s images from the layer's features.

        The loss is the pixel MSE in display space. Further calls continue training (the
        optimiser state is kept); each epoch's mean loss is appended to `history`.

        Args:
          dataset: images in [0, 1]: an array ``(N, H, W, C)``, a `tf.data.Dataset` of
            images or ``(images, labels)`` (samples or batches; streamed each epoch in its
            own order), or a generator (read once into memory).
          epochs: passes over the data.
          shuffle: visit an array's images in a new seeded order each epoch (a dataset is
            always read in its own order).

        Returns:
          self.

        Raises:
          ValueError: empty data, wrong image shape or range, bad ``epochs``.
        """
        import keras
        import tensorflow as tf

        epochs = int(epochs)
        if epochs < 1:
            raise ValueError(f"epochs must be >= 1, got {epochs}")
        streamed = isinstance(dataset, tf.data.Dataset)
        data = None if streamed else self._array(dataset)
        if self._feature_shape is None:
            if streamed:
                from tfvis.inputs import as_source

                try:  # the first training batch, as for an array
                    batch, count = next(as_source(dataset, self._spec(), 0)
                                        .chunks(self.batch_size))
                except ValueError as err:
                    raise ValueError(f"images: {err}") from None
                first = self._in_range(batch[0][:count], "images")
            else:
                first = data[:self.batch_size]
            self._build(first)
        if self._optimizer is None:  # before the step is traced: it applies this optimiser
            self._optimizer = keras.optimizers.Adam(self.learning_rate)
            self._optimizer.build(self.decoder.trainable_variables)
        train = self._step("train")
        n_batches = None if streamed else math.ceil(len(data) / self.batch_size)
        self._digest = _digest(self.model)
        for epoch in range(epochs):
            bar = None
            if self.verbose:
                print(f"Epoch {epoch + 1}/{epochs}")
                bar = keras.utils.Progbar(n_batches, verbose=1)
            total, rows = 0.0, 0
            batches = self._epoch_batches(dataset if streamed else data, self._epochs, shuffle)
            for i, batch in enumerate(batches):
                loss = float(train(tf.constant(batch)))
                total += loss * len(batch)
                rows += len(batch)
                if bar is not None:
                    bar.update(i + 1, [("loss", loss)])
            if not rows:
                raise ValueError("images: the dataset is empty")
            self._epochs += 1
            self.history.append(total / rows)
            if bar is not None and streamed:  # a bar of unknown length ends here
                bar.update(i + 1, finalize=True)
        return self

    # -- inverting -----------------------------------------------------------------------------

    def _require_trained(self) -> None:
        if self._feature_shape is None:
            raise RuntimeError("this InversionNetwork has no trained decoder yet: call "
                               "fit(images) first, or InversionNetwork.load(path, model)")

    def _chunked(self, name: str, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        fn = self._step(name)
        out = [np.asarray(fn(tf.constant(batch[i:i + self.batch_size])))
               for i in range(0, len(batch), self.batch_size)]
        out = np.concatenate(out).astype(np.float32, copy=False)
        return np.clip(np.nan_to_num(out, nan=0.0), 0.0, 1.0)

    def invert(self, images: Any) -> np.ndarray:
        """Reconstructs images from their features at the layer, in one forward pass.

        Args:
          images: ``(N, H, W, C)`` (or one ``(H, W, C)``) in [0, 1], or a dataset of them.

        Returns:
          float32 ``(N, H, W, C)`` reconstructions in [0, 1].
        """
        self._require_trained()
        return self._chunked("invert", self._array(images))

    def decode(self, features: Any) -> np.ndarray:
        """Images from given features of the layer (e.g. edited or interpolated ones).

        Args:
          features: ``(N, *feature_shape)`` or one ``feature_shape`` array.

        Returns:
          float32 ``(N, H, W, C)`` images in [0, 1].
        """
        self._require_trained()
        feats = np.asarray(features, np.float32)
        if feats.shape == self._feature_shape:
            feats = feats[None]
        if feats.shape[1:] != self._feature_shape or not len(feats):
            raise ValueError(f"features have shape {feats.shape}, but layer {self.path!r} "
                             f"gives (N, {', '.join(map(str, self._feature_shape))})")
        if not np.all(np.isfinite(feats)):
            raise ValueError("features contain NaN or Inf")
        return self._chunked("decode", feats)

    def evaluate(self, images: Any) -> float:
        """Mean pixel MSE of the reconstructions of ``images`` (display space)."""
        self._require_trained()
        images = self._array(images)
        recon = self._chunked("invert", images)
        return float(np.mean(np.square(recon - images, dtype=np.float64)))

    # -- saving --------------------------------------------------------------------------------

    def _meta(self) -> dict[str, Any]:
        return {
            "format": _FORMAT,
            "model": self.model.name,
            "layer": self.path,
            "image_shape": list(self._image_shape),
            "feature_shape": list(self._feature_shape),
            "input_range": list(self.range),
            "preprocess": _callable_name(self.preprocess),
            "weights_sha256": self._digest,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "seed": self.seed,
            "history": list(self.history),
        }

    def save(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Saves the decoder and what it inverts as one ``.keras`` file, atomically.

        Args:
          path: a file name ending in ``.keras``; its folder must exist.
          overwrite: replace an existing file.

        Returns:
          The path written.
        """
        self._require_trained()
        path = Path(path)
        if path.suffix != ".keras":
            raise ValueError(f"save to a file ending in .keras, got {path}")
        if path.is_symlink():
            raise FileExistsError(f"refusing to write through the symbolic link {path}")
        if path.exists() and not overwrite:
            raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
        if not path.parent.is_dir():
            raise FileNotFoundError(f"folder {path.parent} does not exist")
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".keras")
        os.close(fd)
        try:
            self.decoder.save(tmp, overwrite=True)
            with zipfile.ZipFile(tmp, "a") as archive:
                archive.writestr(_META, json.dumps(self._meta(), indent=1))
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return path

    @classmethod
    def load(
        cls,
        path: str | os.PathLike,
        model,
        *,
        preprocess: Callable[[Any], Any] | None = None,
        check_weights: bool = True,
        custom_objects: dict[str, Any] | None = None,
        verbose: int = 1,
    ) -> InversionNetwork:
        """Loads an inversion network saved by `save`, for ``model``.

        The file is checked against ``model`` before the decoder is loaded (with
        ``safe_mode=True``, ``compile=False``): the layer must exist with the saved feature
        shape, the image shape must match, and (with ``check_weights``) the model's weights
        must be the ones the decoder was trained on.

        Args:
          path: a ``.keras`` file written by `save`.
          model: the explained model.
          preprocess: the preprocessing function it was trained with, if any (functions are
            not stored; the file records only its name).
          check_weights: refuse a model whose weights differ from those the decoder was
            trained on (e.g. a retrained model).
          custom_objects: for a user decoder with custom layers.
          verbose: for later `fit` calls.

        Raises:
          ValueError: not an inversion-network file, or it does not match ``model``.
        """
        import keras

        from tfvis.io import InvalidModelFileError, _check_keras_archive

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no inversion network file at {path}")
        _check_keras_archive(path)
        with zipfile.ZipFile(path) as archive:
            if _META not in archive.namelist():
                raise InvalidModelFileError(
                    f"{path} is a Keras file but not a tfvis inversion network (it has no "
                    f"{_META}); save one with InversionNetwork.save")
            meta = json.loads(archive.read(_META))
        fmt = meta.get("format") if isinstance(meta, dict) else None
        if fmt != _FORMAT:
            raise InvalidModelFileError(f"{path} has inversion-network format {fmt!r}; this "
                                        f"tfvis reads {_FORMAT}")
        _check_meta(meta, path)
        saved_for = f"{path} was saved for layer {meta['layer']!r} of model {meta['model']!r}"
        if (meta["preprocess"] is None) != (preprocess is None):
            raise ValueError(
                f"{saved_for} with preprocess={meta['preprocess']}: pass the same "
                "preprocess= to load" if preprocess is None else
                f"{saved_for} without a preprocess function; leave preprocess=None")
        if preprocess is not None and _callable_name(preprocess) != meta["preprocess"]:
            warnings.warn(f"{saved_for} with preprocess {meta['preprocess']}, loading with "
                          f"{_callable_name(preprocess)}", stacklevel=2)
        try:
            inv = cls(model, meta["layer"], input_range=tuple(meta["input_range"]),
                      preprocess=preprocess, learning_rate=meta["learning_rate"],
                      batch_size=meta["batch_size"], seed=meta["seed"], verbose=verbose)
        except ValueError as err:
            raise ValueError(f"{saved_for}; it does not fit model {model.name!r}: "
                             f"{err}") from None
        image_shape = tuple(meta["image_shape"])
        known = inv._image_shape
        if len(known) != len(image_shape) or any(
                k is not None and k != s for k, s in zip(known, image_shape)):
            raise ValueError(f"{saved_for} with images {image_shape}; model {model.name!r} "
                             f"takes {known}")
        feature_shape = tuple(meta["feature_shape"])
        probe = np.zeros((1, *image_shape), np.float32)
        got = tuple(int(v) for v in inv._features(probe).shape[1:])
        if got != feature_shape:
            raise ValueError(f"{saved_for} with features {feature_shape}; that layer of model "
                             f"{model.name!r} gives {got}")
        digest = _digest(model)
        if check_weights and meta["weights_sha256"] != digest:
            raise ValueError(
                f"{saved_for}, but model {model.name!r} has other weights than the ones the "
                "decoder was trained on (retrained or another model): its reconstructions "
                "would be wrong. Retrain with fit, or pass check_weights=False to use it anyway")
        decoder = keras.saving.load_model(path, compile=False, safe_mode=True,
                                          custom_objects=custom_objects)
        inv.decoder = decoder
        inv._image_shape, inv._feature_shape = image_shape, feature_shape
        inv._digest = meta["weights_sha256"]
        inv.history = [float(v) for v in meta["history"]]
        inv._epochs = len(inv.history)
        inv._compile()
        return inv
