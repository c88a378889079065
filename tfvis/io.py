"""Loading models and images from files, safely.

Loading a model is loading code. ``.keras`` files load with ``safe_mode=True`` and
``compile=False`` (a file with a Python ``Lambda`` or a ``TFSMLayer`` is refused). Legacy
``.h5`` files, SavedModel folders and remote paths are refused unless the caller passes
``trust=True``; trust then applies to that one load only (``safe_mode=False`` is passed to
that call): Keras's global safe-mode setting is never changed.

Images: PNG, JPEG, BMP and WebP only, checked by content, with a pixel cap read from the
header before anything is decoded (against decompression bombs).

Importing this module imports neither TensorFlow nor Keras nor OpenCV: they load on first use,
so a command can check its paths and refuse early without paying TensorFlow's start-up.
"""

from __future__ import annotations

import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import keras

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
_IMAGE_FORMATS = ("PNG", "JPEG", "BMP", "WEBP")
MAX_PIXELS = 40_000_000


class UnsafeModelError(Exception):
    """Loading was refused because it would run untrusted code (CLI exit code 3)."""


class InvalidModelFileError(ValueError):
    """The file exists but is not a readable model of its format (truncated, corrupt)."""


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


def _check_keras_archive(path: Path) -> None:
    """Raises `InvalidModelFileError` unless ``path`` is a zip archive with a config.json.

    Reads the archive's central directory only (not the weights).
    """
    invalid = (f"{path} is not a valid Keras archive (.keras files are zip archives holding "
               "config.json and the weights)")
    if not zipfile.is_zipfile(path):
        raise InvalidModelFileError(f"{invalid}: it is not a zip archive, or it is truncated")
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise InvalidModelFileError(f"{invalid}: {err}") from None
    if "config.json" not in names:
        raise InvalidModelFileError(f"{invalid}: it has no config.json")


def _load_keras_file(path: Path, trust: bool):
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=not trust)
    except (zipfile.BadZipFile, zlib.error, EOFError) as err:
        raise InvalidModelFileError(
            f"{path} is not a valid Keras archive: it is corrupt ({err})"
        ) from None
    except ValueError as err:
        if "safe_mode" not in str(err):
            raise
        if "TFSMLayer" in str(err):
            raise _refuse(str(path), "it wraps an external SavedModel (a TFSMLayer), whose "
                                     "TensorFlow graph runs as it is.") from None
        raise _refuse(str(path), "it contains Python code (e.g. a Lambda layer).") from None


def _load_h5_file(path: Path):
    import keras

    try:
        # Trust was given for this file: safe_mode=False applies to this call only (Keras
        # scopes it), so Lambda layers in it load and the global setting is left as it is.
        return keras.saving.load_model(path, compile=False, safe_mode=False)
    except OSError as err:  # h5py: truncated or corrupt file
        raise InvalidModelFileError(f"{path} is not a valid HDF5 model file: {err}") from None


def check_model_path(path: str | Path, trust: bool = False) -> str:
    """Everything about a model path that can be checked without TensorFlow or loading it.

    Returns:
      The kind of model: ``"remote"``, ``"savedmodel"``, ``"keras"`` or ``"h5"``.

    Raises:
      UnsafeModelError: the format needs trust (legacy HDF5, SavedModel folders, remote
        paths) and ``trust`` is False.
      FileNotFoundError: nothing at ``path``.
      InvalidModelFileError: a ``.keras`` file that is not a zip archive with a config.json
        (truncated, corrupt, or another format).
      ValueError: an unknown format, or a folder that is not a SavedModel.
    """
    text = str(path)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text):
        if not trust:
            raise _refuse(text, "remote paths (gs://, hf://, http(s)://, ...) are not loaded "
                                "by default.")
        return "remote"
    p = Path(text)
    if not p.exists():
        raise FileNotFoundError(f"no model at {p}")
    if p.is_dir():
        if not (p / "saved_model.pb").exists():
            raise ValueError(f"{p} is a folder but not a SavedModel (no saved_model.pb)")
        if not trust:
            raise _refuse(str(p), "SavedModel folders hold TensorFlow graphs that run as they are.")
        return "savedmodel"
    suffix = p.suffix.lower()
    if suffix == ".keras":
        _check_keras_archive(p)
        return "keras"
    if suffix in (".h5", ".hdf5"):
        if not trust:
            raise _refuse(str(p), "legacy HDF5 files are loaded without Keras's safe mode.")
        return "h5"
    raise ValueError(f"{p}: unknown model format; expected .keras, .h5 or a SavedModel folder")


def load_model(path: str | Path, trust: bool = False) -> LoadedModel:
    """Loads a ``.keras`` file, or with ``trust=True`` an ``.h5`` file, a SavedModel folder
    or a remote path.

    Trust is scoped to this call: ``safe_mode=False`` is passed to this load only, and
    Keras's global safe-mode setting is the same afterwards (also after an error).

    Raises:
      UnsafeModelError: the file needs trust (Lambda layers, TFSMLayers, legacy formats,
        SavedModels, remote paths) and ``trust`` is False.
      FileNotFoundError: nothing at ``path``.
      InvalidModelFileError: the file exists but is truncated, corrupt or not of its
        format (a ValueError).
      ValueError: an unknown format, or a folder that is not a SavedModel.
    """
    kind = check_model_path(path, trust)
    if kind == "remote":
        import keras

        model = keras.saving.load_model(str(path), compile=False, safe_mode=False)
        return LoadedModel(model, "keras")
    p = Path(path)
    if kind == "savedmodel":
        return LoadedModel(_wrap_saved_model(p), "savedmodel")
    if kind == "keras":
        return LoadedModel(_load_keras_file(p, trust), "keras")
    return LoadedModel(_load_h5_file(p), "h5")


def contains_tfsm_layer(model) -> bool:
    """Whether ``model`` (or a model nested in it) holds a `keras.layers.TFSMLayer`.

    Such a layer is an opaque SavedModel graph: its inner layers cannot be reached, and a
    final softmax inside it cannot be bypassed.
    """
    import keras

    seen, stack = set(), [model]
    while stack:
        layer = stack.pop()
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.TFSMLayer):
            return True
        stack.extend(getattr(layer, "layers", ()) or ())
    return False


def _wrap_saved_model(path: Path) -> keras.Model:
    import keras

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
    preprocess_input = application_preprocess(name)
    return lambda x: np.asarray(preprocess_input(x.copy()), np.float32)


def application_preprocess(name: str):
    """``keras.applications.<name>.preprocess_input`` (it takes arrays and tensors), or a
    ValueError listing what ``--preprocess`` accepts."""
    import keras

    module = getattr(keras.applications, name, None)
    if module is None or not hasattr(module, "preprocess_input"):
        raise ValueError(f"unknown preprocessing {name!r}: use none, scale, or a "
                         "keras.applications module name such as resnet50 or mobilenet_v2")
    return module.preprocess_input


def read_image(path: Path, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Reads one image as uint8 RGB, after checking its format and size from the header."""
    import cv2
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
    import cv2

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
