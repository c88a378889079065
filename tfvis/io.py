"""Loading models and images from files, safely.

Loading a model is loading code. ``.keras`` files load with ``safe_mode=True`` and
``compile=False`` (a file with a Python ``Lambda`` is refused). Legacy ``.h5`` files, SavedModel
folders and remote paths are refused unless the caller passes ``trust=True``. Nothing here
changes Keras's global safe-mode setting.

Images: PNG, JPEG, BMP and WebP only, checked by content, with a pixel cap read from the
header before anything is decoded (against decompression bombs).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import keras
import numpy as np

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
MAX_PIXELS = 40_000_000


class UnsafeModelError(Exception):
    """Loading was refused because it would run untrusted code (CLI exit code 3)."""


@dataclass(frozen=True)
class LoadedModel:
    """A loaded model and what kind of file it came from.

    ``kind`` is ``"keras"``, ``"h5"`` or ``"savedmodel"``. A SavedModel is wrapped in a
    functional model around a `keras.layers.TFSMLayer`: its layers are not visible, so only
    methods that need outputs or input gradients apply.
    """

    model: keras.Model
    kind: str


def _refuse(what: str, why: str) -> UnsafeModelError:
    return UnsafeModelError(
        f"refused to load {what}: {why} Loading a model can run code stored in it. If you "
        "trust its source, pass --trust-model (trust=True in Python)."
    )


def load_model(path: str | Path, trust: bool = False) -> LoadedModel:
    """Loads a ``.keras`` file, or with ``trust=True`` an ``.h5`` file, a SavedModel folder
    or a remote path.

    Raises:
      UnsafeModelError: the file needs trust (Lambda layers, legacy formats, SavedModels,
        remote paths) and ``trust`` is False.
      FileNotFoundError / ValueError: no such file, or not a model.
    """
    text = str(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        if not trust:
            raise _refuse(text, "remote paths (gs://, hf://, http(s)://, ...) are not loaded "
                                "by default.")
        return LoadedModel(keras.saving.load_model(text, compile=False, safe_mode=False), "keras")
    p = Path(text)
    if not p.exists():
        raise FileNotFoundError(f"no model at {p}")
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise ValueError(f"{p} is a folder but not a SavedModel (no saved_model.pb)")
        if not trust:
            raise _refuse(str(p), "SavedModel folders hold TensorFlow graphs that run as they are.")
        return LoadedModel(_wrap_saved_model(p), "savedmodel")
    suffix = p.suffix.lower()
    if suffix == ".keras":
        try:
            model = keras.saving.load_model(p, compile=False, safe_mode=not trust)
        except ValueError as err:
            if "safe_mode" in str(err):
                raise _refuse(str(p), "it contains Python code (e.g. a Lambda layer).") from None
            raise
        return LoadedModel(model, "keras")
    if suffix in (".h5", ".hdf5"):
        if not trust:
            raise _refuse(str(p), "legacy HDF5 files are loaded without Keras's safe mode.")
        return LoadedModel(keras.saving.load_model(p, compile=False), "h5")
    raise ValueError(f"{p}: unknown model format; expected .keras, .h5 or a SavedModel folder")


def _wrap_saved_model(path: Path) -> keras.Model:
    layer = keras.layers.TFSMLayer(str(path), call_endpoint="serve")
    endpoint = layer.call_endpoint_fn  # a signature, or a restored tf.function
    signature = getattr(endpoint, "structured_input_signature", None)
    if signature is None:
        signature = endpoint.concrete_functions[0].structured_input_signature
    args, kwargs = signature
    specs = list(args) + list(kwargs.values())
    if len(specs) != 1:
        raise ValueError(f"{path}: the 'serve' endpoint takes {len(specs)} inputs; need 1")
    spec = specs[0]
    inputs = keras.Input(shape=tuple(spec.shape[1:]), dtype=spec.dtype.name)
    return keras.Model(inputs, layer(inputs), name=path.name or "saved_model")


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """Expands folders (non-recursively, sorted) into image files with a known suffix."""
    files = []
    for item in map(Path, paths):
        if item.is_dir():
            files += sorted(f for f in item.iterdir()
                            if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
        elif not item.exists():
            raise FileNotFoundError(f"no image at {item}")
        elif item.suffix.lower() not in IMAGE_SUFFIXES:
            raise ValueError(f"{item}: not an image file ({', '.join(IMAGE_SUFFIXES)})")
        else:
            files.append(item)
    if not files:
        raise ValueError("no image files given")
    return files


def preprocessor(name: str):
    """``none`` (pixels 0..255), ``scale`` (to 0..1) or a keras.applications module name
    (e.g. ``resnet50``, ``mobilenet_v2``) whose ``preprocess_input`` is used."""
    if name == "none":
        return lambda x: x
    if name == "scale":
        return lambda x: x / 255.0
    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        raise ValueError(f"unknown preprocessing {name!r}: use none, scale, or a "
                         "keras.applications module name such as resnet50 or mobilenet_v2")
    return lambda x: np.asarray(module.preprocess_input(x.copy()), np.float32)


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads one image as uint8 RGB, after checking its format and size from the header."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as header:  # reads the header only
            fmt, (width, height) = header.format, header.size
    except (UnidentifiedImageError, Image.DecompressionBombError) as err:
        raise ValueError(f"{path}: not a readable image ({err})") from None
    if fmt not in _IMAGE_FORMATS:
        raise ValueError(f"{path}: format {fmt} is not accepted ({', '.join(_IMAGE_FORMATS)})")
    if width * height > max_pixels:
        raise ValueError(f"{path}: {width}x{height} exceeds the pixel cap of {max_pixels}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{path}: could not be decoded")
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)


def load_images(
    paths: Sequence[str | Path],
    input_shape: tuple,
    preprocess: str = "none",
    max_pixels: int = MAX_PIXELS,
) -> tuple[np.ndarray, np.ndarray, list[Path], list[str]]:
    """Loads images for a model with ``input_shape`` ``(None, H, W, C)``.

    Images are resized to the model's height and width when it fixes them (else to the first
    image's size), converted to grey for one-channel models, then preprocessed.

    Returns:
      ``(inputs float32 (N, H, W, C), display uint8 RGB (N, H, W, 3), files, notes)`` where
      ``notes`` says which resizing was done.
    """
    files = image_files(paths)
    rgb = [read_image(f, max_pixels) for f in files]
    if len(input_shape) != 4:
        raise ValueError(f"the model input {input_shape} is not an image batch (N, H, W, C)")
    height, width, channels = input_shape[1:]
    height = height or rgb[0].shape[0]
    width = width or rgb[0].shape[1]
    notes, display = [], []
    for f, image in zip(files, rgb):
        if image.shape[:2] != (height, width):
            notes.append(f"{f.name}: resized {image.shape[1]}x{image.shape[0]} -> {width}x{height}")
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        display.append(image)
    display = np.stack(display)
    x = display.astype(np.float32)
    if channels == 1:
        x = x.mean(axis=-1, keepdims=True)
    elif channels not in (3, None):
        raise ValueError(f"the model expects {channels} channels; images have 3")
    return preprocessor(preprocess)(x), display, files, notes
