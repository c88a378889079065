"""Safe loading: model formats and trust, image formats, pixel cap, resizing, preprocessing."""

import keras
import numpy as np
import pytest

from tfvis.gallery import save_png
from tfvis.io import (
    InvalidModelFileError,
    UnsafeModelError,
    check_model_path,
    contains_tfsm_layer,
    image_files,
    load_images,
    load_model,
    preprocessor,
)


def safe_mode_setting():
    from keras.src.backend.common import global_state

    return global_state.get_global_attribute("safe_mode_saving")


def test_keras_file_roundtrip_and_global_safe_mode_untouched(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.compile("adam", "mse")
    model.save(tmp_path / "m.keras")
    before = safe_mode_setting()
    loaded = load_model(tmp_path / "m.keras")
    assert loaded.kind == "keras" and not loaded.model.compiled  # compile=False
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded.model(x), model(x))
    load_model(tmp_path / "m.keras", trust=True)  # safe_mode=False is passed, never set globally
    assert safe_mode_setting() == before


def test_legacy_and_remote_and_unknown_formats(tmp_path):
    (tmp_path / "m.h5").write_bytes(b"\x89HDF")
    with pytest.raises(UnsafeModelError, match="HDF5"):
        load_model(tmp_path / "m.h5")
    with pytest.raises(UnsafeModelError, match="remote"):
        load_model("gs://bucket/model.keras")
    (tmp_path / "m.onnx").write_bytes(b"x")
    with pytest.raises(ValueError, match="unknown model format"):
        load_model(tmp_path / "m.onnx")
    (tmp_path / "folder").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel"):
        load_model(tmp_path / "folder")


def test_truncated_or_corrupt_keras_files_are_invalid_archives_not_missing(tmp_path):
    import zipfile

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.save(tmp_path / "good.keras")
    data = (tmp_path / "good.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.keras").write_text("not a zip")
    with zipfile.ZipFile(tmp_path / "empty.keras", "w") as archive:
        archive.writestr("notes.txt", "no config")
    with zipfile.ZipFile(tmp_path / "good.keras") as archive:
        config = archive.getinfo("config.json")
    damaged = bytearray(data)  # flip bytes inside config.json's stored data: a CRC error
    start = config.header_offset + 30 + len(config.filename) + len(config.extra)
    damaged[start:start + 8] = bytes(b ^ 0xFF for b in damaged[start:start + 8])
    (tmp_path / "crc.keras").write_bytes(bytes(damaged))
    for name in ("cut", "text", "empty", "crc"):
        with pytest.raises(InvalidModelFileError, match="not a valid Keras archive"):
            load_model(tmp_path / f"{name}.keras")
    for name in ("cut", "text", "empty"):  # found from the zip directory alone
        with pytest.raises(InvalidModelFileError):
            check_model_path(tmp_path / f"{name}.keras")
    assert check_model_path(tmp_path / "good.keras") == "keras"
    with pytest.raises(FileNotFoundError, match="no model at"):
        check_model_path(tmp_path / "missing.keras")


def test_trust_loads_lambda_h5_scoped_to_that_load(tmp_path):
    inp = keras.Input((4,))
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Lambda(lambda t: t + 1.0)(inp)))
    model.save(tmp_path / "lambda.h5")
    model.save(tmp_path / "lambda.keras")
    (tmp_path / "cut.h5").write_bytes((tmp_path / "lambda.h5").read_bytes()[:300])
    before = safe_mode_setting()
    with pytest.raises(UnsafeModelError, match="HDF5"):
        load_model(tmp_path / "lambda.h5")
    loaded = load_model(tmp_path / "lambda.h5", trust=True)
    assert loaded.kind == "h5"
    x = np.ones((1, 4), np.float32)
    np.testing.assert_allclose(loaded.model(x), model(x), rtol=1e-6)
    assert safe_mode_setting() == before  # after a trusted load
    with pytest.raises(UnsafeModelError, match="Lambda"):
        load_model(tmp_path / "lambda.keras")
    assert safe_mode_setting() == before  # after a refused load
    with pytest.raises(InvalidModelFileError, match="HDF5"):
        load_model(tmp_path / "cut.h5", trust=True)
    assert safe_mode_setting() == before  # after a failed trusted load
    # and a later untrusted load is still refused
    with pytest.raises(UnsafeModelError):
        load_model(tmp_path / "lambda.keras")


def test_tfsm_layer_in_a_keras_file_needs_trust(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    model.export(str(tmp_path / "sm"), verbose=False)
    inp = keras.Input((4,))
    wrapped = keras.Model(inp, keras.layers.TFSMLayer(str(tmp_path / "sm"), "serve")(inp))
    wrapped.save(tmp_path / "tfsm.keras")
    assert contains_tfsm_layer(wrapped) and not contains_tfsm_layer(model)
    nested = keras.Model(inp, keras.Sequential([wrapped])(inp))
    assert contains_tfsm_layer(nested)
    with pytest.raises(UnsafeModelError, match="TFSMLayer"):
        load_model(tmp_path / "tfsm.keras")
    loaded = load_model(tmp_path / "tfsm.keras", trust=True)
    assert loaded.kind == "keras" and contains_tfsm_layer(loaded.model)
    assert contains_tfsm_layer(load_model(tmp_path / "sm", trust=True).model)


def test_images_are_checked_by_content_and_capped(tmp_path):
    save_png(tmp_path / "a.png", np.full((10, 20, 3), 200, np.uint8))
    (tmp_path / "fake.png").write_bytes(b"GIF89a not really")
    (tmp_path / "b.txt").write_text("x")
    assert [p.name for p in image_files([tmp_path])] == ["a.png", "fake.png"]
    with pytest.raises(ValueError, match="not a readable image"):
        load_images([tmp_path / "fake.png"], (None, 10, 20, 3))
    with pytest.raises(ValueError, match="pixel cap"):
        load_images([tmp_path / "a.png"], (None, 10, 20, 3), max_pixels=100)
    with pytest.raises(ValueError, match="not an image file"):
        image_files([tmp_path / "b.txt"])


def test_resize_grey_and_preprocessing(tmp_path):
    image = np.zeros((10, 20, 3), np.uint8)
    image[:, 10:] = 255  # right half white
    save_png(tmp_path / "a.png", image)
    x, display, files, notes = load_images([tmp_path / "a.png"], (None, 6, 8, 1), "scale")
    assert x.shape == (1, 6, 8, 1) and display.shape == (1, 6, 8, 3)
    assert x[0, 0, -1, 0] == pytest.approx(1.0) and x[0, 0, 0, 0] == 0  # no W/H swap
    assert notes == ["a.png: resized 20x10 -> 8x6"]
    x, _, _, notes = load_images([tmp_path / "a.png"], (None, None, None, 3))
    assert x.shape == (1, 10, 20, 3) and x.max() == 255 and notes == []
    resnet = preprocessor("resnet50")(np.full((1, 2, 2, 3), 255.0, np.float32))
    assert resnet.shape == (1, 2, 2, 3) and resnet.max() < 255  # mean-subtracted
    with pytest.raises(ValueError, match="unknown preprocessing"):
        preprocessor("nope")
