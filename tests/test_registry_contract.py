"""The explainer contract, run on every registered method (no hand-kept list).

A method added to the registry is picked up here automatically: finite maps of the right
shape, the explained score, batch and chunk invariance, target forms that agree without
retracing, nothing mutated (also on errors), and a saved-and-reloaded model explaining the
same. Each method runs with its ``quick_options`` (cheap settings), seeded.
"""

import re
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model

import tfvis
from tfvis.surgery import run_graph

METHODS = tfvis.methods()
TARGETS = [1, 0, 3, 2, 1]


def build(name, model, **options):
    cls = tfvis.REGISTRY[name]
    return cls(model, verbose=0, **{**cls.quick_options, "batch_size": 64, **options})


def close(a, b):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-6 * max(1.0, np.abs(b).max()))


@pytest.mark.parametrize("name", METHODS)
def test_contract(name, images, fingerprint, tmp_path):
    model = gap_dense_model()
    before, pixels = fingerprint(model), images.copy()
    explainer = build(name, model)
    e = explainer.explain(images, targets=TARGETS)
    assert e.method == name and len(e) == 5
    assert e.maps.shape == images.shape[:3] and e.maps.dtype == np.float32
    assert np.all(np.isfinite(e.raw)) and np.all(np.isfinite(e.maps))
    assert e.maps.min() >= 0 and e.maps.max() <= 1
    np.testing.assert_array_equal(e.targets, TARGETS)
    outputs = run_graph(model, tf.constant(images), replace=explainer.replace).numpy()
    np.testing.assert_allclose(e.scores, outputs[np.arange(5), TARGETS], rtol=1e-5, atol=1e-7)

    # Batch and chunk invariance.
    for i in (0, 3):
        close(explainer.explain(images[i:i + 1], targets=[TARGETS[i]]).raw[0], e.raw[i])
    close(explainer.explain(images, targets=TARGETS, batch_size=2).raw, e.raw)

    # Target forms agree, and new class targets do not retrace.
    traces = explainer.traces()
    by_int = explainer.explain(images, targets=2)
    assert explainer.traces() == traces
    for form in ([2] * 5, np.eye(4, dtype=np.float32)[[2] * 5], np.full((5, 1), 2)):
        close(explainer.explain(images, targets=form).raw, by_int.raw)
    if name == "cam":
        with pytest.raises(ValueError, match="class targets"):
            explainer.explain(images, targets=lambda out: out[:, 2])
    else:  # Score-CAM weighs class targets by their softmax probability, callables as they are
        probability = name == "scorecam"
        fn = (lambda out: tf.nn.softmax(out)[:, 2]) if probability else (lambda out: out[:, 2])
        close(explainer.explain(images, targets=fn).raw, by_int.raw)
    np.testing.assert_array_equal(explainer.explain(images).targets, outputs.argmax(-1))

    # Errors leave everything as it was.
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(images, targets=7)
    assert fingerprint(model) == before
    np.testing.assert_array_equal(images, pixels)

    # A saved and reloaded model explains the same.
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras", compile=False)
    close(build(name, reloaded).explain(images, targets=2).raw, by_int.raw)


@pytest.mark.parametrize("name", METHODS)
def test_streamed_dataset_equals_the_array(name, images):
    explainer = build(name, gap_dense_model())
    reference = explainer.explain(images, targets=TARGETS)
    dataset = tf.data.Dataset.from_tensor_slices((images, np.zeros(5))).batch(2)
    streamed = explainer.explain(dataset, targets=TARGETS, batch_size=3)
    close(streamed.raw, reference.raw)
    np.testing.assert_array_equal(streamed.targets, reference.targets)


def test_every_method_is_exported_and_in_the_readme():
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    rows = dict(re.findall(r"^\| `tfvis\.(\w+)` \| `(\w+)` \|", readme, flags=re.M))
    listed = {name: cls for cls, name in rows.items()}
    assert set(listed) == set(METHODS), "README methods table and registry differ"
    for name, cls in tfvis.REGISTRY.items():
        assert listed[name] == cls.__name__
        assert getattr(tfvis, cls.__name__) is cls and cls.__name__ in tfvis.__all__
        assert cls.title and cls.name == name
    assert len(set(METHODS)) == len(METHODS)
