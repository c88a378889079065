"""Pixel-space projections of top activations (Zeiler & Fergus fig. 2): each equals a hand tape
gradient of that one unit through the gated ReLUs, is zero outside the unit's receptive
field, is computed many units per compiled call, and is drawn by plotting.top_patches."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import nested_model, seeded
from tfvis import inspect
from tfvis.inspect import top as top_module
from tfvis.surgery import capture
from tfvis.surgery.gates import relu_gates


def pooled_model():
    """conv 3x3 relu -> maxpool 2 -> conv 3x3 relu (field 8x8 on 24x24: most pixels outside)."""
    inp = keras.Input((24, 24, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(21))(inp)
    x = keras.layers.MaxPooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(22))(x)
    out = keras.layers.Dense(3, name="head")(keras.layers.GlobalAveragePooling2D()(x))
    return keras.Model(inp, out)


def hand_gradient(model, layer, image, y, x, c, rule):
    """d acts[0, y, x, c] / d image through the model's ReLUs gated by ``rule`` (eager)."""
    gates, _ = relu_gates(model, rule)
    t = tf.constant(image[None])
    with tf.GradientTape() as tape:
        tape.watch(t)
        acts = capture(model, t, [layer], replace=gates)[layer]
        unit = acts[0, y, x, c]
    return tape.gradient(unit, t).numpy()[0]


@pytest.mark.parametrize("rule", ["deconvnet", "guided"])
def test_projection_equals_the_hand_gradient_and_is_zero_outside_the_field(rule, fingerprint):
    model = pooled_model()
    before = fingerprint(model)
    x = np.random.default_rng(3).normal(size=(10, 24, 24, 3)).astype("float32")
    top = inspect.top_activations(model, x, "c2", channels=[0, 3, 4], k=4, batch_size=4,
                                  project=rule)
    plain = inspect.top_activations(model, x, "c2", channels=[0, 3, 4], k=4, batch_size=4)
    np.testing.assert_array_equal(top.index, plain.index)  # projecting changes no ranking
    np.testing.assert_array_equal(top.value, plain.value)
    assert top.rule == rule and top.field.size == (8, 8)
    assert top.projection.shape == (3, 4, 8, 8, 3)
    for c in range(3):
        for j in range(4):
            full = hand_gradient(model, "c2", x[top.index[c, j]], int(top.y[c, j]),
                                 int(top.x[c, j]), int(top.channels[c]), rule)
            x0, y0, x1, y1 = top.boxes[c, j]
            outside = full.copy()
            outside[y0:y1, x0:x1] = 0
            assert not outside.any(), (c, j)  # the field is where the projection lives
            assert np.abs(full).sum() > 0, (c, j)  # a top unit projects something
            crop = top.projection[c, j]
            np.testing.assert_allclose(crop[: y1 - y0, : x1 - x0], full[y0:y1, x0:x1],
                                       rtol=1e-5, atol=1e-6)
            assert not crop[y1 - y0:].any() and not crop[:, x1 - x0:].any()
    assert fingerprint(model) == before


def test_rules_differ_and_projection_needs_a_known_rule():
    model = pooled_model()
    x = np.random.default_rng(4).normal(size=(6, 24, 24, 3)).astype("float32")
    deconv = inspect.top_activations(model, x, "c2", channels=[1], k=3, project="deconvnet")
    guided = inspect.top_activations(model, x, "c2", channels=[1], k=3, project="guided")
    assert not np.allclose(deconv.projection, guided.projection)
    with pytest.raises(ValueError, match="project"):
        inspect.top_activations(model, x, "c2", project="backprop")
    with pytest.raises(ValueError, match="no projections"):
        inspect.top_activations(model, x, "c2", k=2).projections()


def test_projection_is_batched_and_streams_once_from_a_generator(monkeypatch):
    model = nested_model()
    x = np.random.default_rng(5).random((9, 16, 20, 3)).astype("float32") * 255
    calls = []
    make = top_module.unit_gradient_step

    def counting(*args, **kwargs):
        step = make(*args, **kwargs)

        def run(*a):
            calls.append(a[0].shape[0])
            return step(*a)

        return run

    monkeypatch.setattr(top_module, "unit_gradient_step", counting)
    top = inspect.top_activations(model, x, "base/convB", channels=[0, 1, 2], k=4,
                                  project="guided", batch_size=5)
    assert calls == [5, 5, 5]  # 12 units, 5 per compiled call (the last padded: no retrace)
    gen = (x[i:i + 2] for i in range(0, 9, 2))  # read once: images are kept while streaming
    streamed = inspect.top_activations(model, gen, "base/convB", channels=[0, 1, 2], k=4,
                                       project="guided", batch_size=5)
    np.testing.assert_array_equal(streamed.index, top.index)
    np.testing.assert_allclose(streamed.projection, top.projection, rtol=1e-5, atol=1e-7)
    # the nested base's unit, by hand, through the outer Rescaling and the inner gates
    c, j = 2, 1
    full = hand_gradient(model, "base/convB", x[top.index[c, j]], int(top.y[c, j]),
                         int(top.x[c, j]), 2, "guided")
    x0, y0, x1, y1 = top.boxes[c, j]
    np.testing.assert_allclose(top.projection[c, j, : y1 - y0, : x1 - x0], full[y0:y1, x0:x1],
                               rtol=1e-5, atol=1e-7)


def test_top_patches_draws_projections(tmp_path):
    from tfvis.plotting.inspect import top_patches

    model = pooled_model()
    x = np.random.default_rng(6).random((6, 24, 24, 3)).astype("float32")
    top = inspect.top_activations(model, x, "c2", channels=[0, 2], k=3, project="deconvnet")
    tiles = top.projections(size=16)
    assert len(tiles) == 2 and tiles[0][0].shape == (16, 16, 3) and tiles[0][0].dtype == np.uint8
    assert len({t.tobytes() for row in tiles for t in row}) > 1
    both = top_patches(top, x)
    assert len(both.axes) == 2 * 6  # per row: 3 projections, then 3 patches
    only = top_patches(top, x, show="projections")
    assert len(only.axes) == 2 * 3
    both.savefig(tmp_path / "both.png")
    with pytest.raises(ValueError, match="no projections"):
        top_patches(inspect.top_activations(model, x, "c2", k=2), x, show="projections")
