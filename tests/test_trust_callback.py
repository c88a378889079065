"""ExplanationLogger reads labels with the one target parser `Explainer.explain` uses."""

import keras
import numpy as np
import pytest

from tfvis.callbacks import ExplanationLogger
from conftest import gap_dense_model


def _fit(tmp_path, labels, probe_labels):
    model = gap_dense_model(input_shape=(8, 8, 3), classes=4, activation="softmax")
    model.compile(keras.optimizers.SGD(0.01), "sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((6, 8, 8, 3)).astype("float32")
    logger = ExplanationLogger("gradcam", x, targets="labels", labels=probe_labels,
                               npz_dir=tmp_path, max_images=6)
    model.fit(x, labels, epochs=1, batch_size=6, verbose=0, callbacks=[logger])
    return np.load(tmp_path / "gradcam_epoch_step_000001.npz"), model, x


@pytest.mark.parametrize("layout", ["(N, 1)", "(N,)"])
def test_integer_labels_are_class_ids_in_either_layout(tmp_path, layout):
    y = np.array([1, 3, 2, 3, 1, 2], dtype=np.int64)  # never class 0
    probe = y[:, None] if layout == "(N, 1)" else y
    saved, _, _ = _fit(tmp_path, y, probe)
    np.testing.assert_array_equal(saved["targets"], y)
    # the maps are those of the labelled classes, not class 0
    assert not np.all(saved["targets"] == 0)


def test_callback_maps_equal_explain_with_the_same_labels(tmp_path):
    y = np.array([1, 3, 2, 3, 1, 2], dtype=np.int64)
    saved, model, x = _fit(tmp_path, y, y[:, None])
    from tfvis import GradCAM

    direct = GradCAM(model, verbose=0)(x, targets=y[:, None])
    np.testing.assert_allclose(saved["maps"], direct.maps, atol=1e-5)
    np.testing.assert_array_equal(saved["targets"], direct.targets)


def test_float_column_labels_are_refused_as_ambiguous(tmp_path):
    y = np.array([1, 3, 2, 3, 1, 2], dtype=np.int64)
    with pytest.raises(RuntimeError, match="ambiguous"):
        _fit(tmp_path, y, y[:, None].astype("float32"))
