"""tfvis.inspect: activations, gradients, kernels, layer statistics, top activations and the
feature index, each against an independent computation (sub-models of a clone, numpy)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import gap_dense_model, nested_model, seeded
from tfvis import inspect


def clone(model):
    twin = keras.models.clone_model(model)
    twin.set_weights(model.get_weights())
    return twin


@pytest.fixture
def x():
    return np.random.default_rng(0).random((7, 16, 20, 3)).astype("float32")


def test_activations_equal_submodels_flat_and_nested(x, fingerprint):
    model = gap_dense_model()
    before = fingerprint(model)
    acts = inspect.activations(model, x, ["c1", "c2", "gap"], batch_size=3)
    twin = clone(model)
    for path in ("c1", "c2", "gap"):
        sub = keras.Model(twin.input, twin.get_layer(path).output)
        np.testing.assert_allclose(acts[path], sub(x).numpy(), rtol=1e-5, atol=1e-6)
    nested = nested_model()
    before_nested = fingerprint(nested)
    acts = inspect.activations(nested, x, ["base/convA", "base/convB"])
    base = clone(nested).get_layer("base")
    sub = keras.Model(base.input, base.get_layer("convB").output)
    np.testing.assert_allclose(acts["base/convB"], sub(x / 255).numpy(), rtol=1e-5, atol=1e-6)
    assert fingerprint(model) == before and fingerprint(nested) == before_nested


def test_one_pass_serves_several_layers(x):
    calls = []

    class Counter(keras.layers.Layer):
        """Identity that counts how often it runs (once per trace in a compiled step)."""

        def call(self, x):
            calls.append(1)
            return x

    inp = keras.Input((16, 20, 3))
    h = Counter(name="count")(inp)
    a = keras.layers.Conv2D(3, 3, name="a", kernel_initializer=seeded(1))(h)
    b = keras.layers.Conv2D(3, 3, name="b", kernel_initializer=seeded(2))(a)
    model = keras.Model(inp, keras.layers.GlobalAveragePooling2D()(b))
    calls.clear()
    acts = inspect.activations(model, x, ["a", "b"])
    assert len(calls) == 1 and set(acts) == {"a", "b"}


def test_sequential_and_gradients_of_a_gap_dense_head(x):
    model = gap_dense_model()
    grads = inspect.gradients(model, x, ["c2", "gap"], targets=2)
    w = model.get_layer("head").kernel.numpy()[:, 2]
    # the logit (softmax bypassed) is linear in the GAP features: d/d gap = w, d/d c2 = w / hw
    np.testing.assert_allclose(grads["gap"], np.broadcast_to(w, (7, 6)), rtol=1e-5)
    np.testing.assert_allclose(grads["c2"], np.broadcast_to(w / (16 * 20), (7, 16, 20, 6)),
                               rtol=1e-5)
    seq = keras.Sequential([keras.Input((16, 20, 3)),
                            keras.layers.Conv2D(2, 3, name="s1", kernel_initializer=seeded(4))])
    np.testing.assert_allclose(inspect.activations(seq, x, "s1")["s1"], seq(x).numpy(),
                               rtol=1e-5, atol=1e-6)


def test_kernels_joint_and_per_filter_nested_and_depthwise(fingerprint):
    model = nested_model()
    before = fingerprint(model)
    k = inspect.kernels(model)  # the first Conv2D: base/convA on RGB
    assert k.shape == (8, 3, 3, 3) and k.min() == 0 and k.max() == 1
    kernel = model.get_layer("base").get_layer("convA").kernel.numpy()
    twin = clone(model)
    big = kernel.copy()
    big[..., 5] *= 10  # one dominating filter
    twin.get_layer("base").get_layer("convA").kernel.assign(big)
    joint = inspect.kernels(twin, "base/convA")
    spans = joint.max(axis=(1, 2, 3)) - joint.min(axis=(1, 2, 3))
    assert spans.argmax() == 5 and np.delete(spans, 5).max() < 0.3
    each = inspect.kernels(twin, "base/convA", normalize="filter")
    np.testing.assert_allclose(each.max(axis=(1, 2, 3)), 1.0)
    deep = inspect.kernels(model, "base/convB", channel=2)
    np.testing.assert_allclose(deep[..., 0].max(axis=(1, 2)).max(), 1.0)
    assert deep.shape == (6, 3, 3, 1)
    inp = keras.Input((8, 8, 3))
    dw = keras.Model(inp, keras.layers.DepthwiseConv2D(3, depth_multiplier=2, name="dw")(inp))
    assert inspect.kernels(dw, "dw").shape == (6, 3, 3, 1)
    with pytest.raises(ValueError, match="not a 2-D convolution"):
        inspect.kernels(model, "gap")
    assert fingerprint(model) == before


def test_layer_stats_equal_numpy_streamed_and_dead_channels(x):
    inp = keras.Input((16, 20, 3))
    healthy = keras.layers.Conv2D(4, 3, activation="relu", name="healthy",
                                  kernel_initializer=seeded(1), bias_initializer="ones")(inp)
    dead = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="dead",
                               kernel_initializer=seeded(2),
                               bias_initializer=keras.initializers.Constant(-1e4))(healthy)
    mid = keras.layers.Conv2D(3, 3, padding="same", activation="relu", name="mid",
                              kernel_initializer=seeded(4))(healthy)
    out = keras.layers.Dense(3, name="head", kernel_initializer=seeded(3))(
        keras.layers.GlobalAveragePooling2D()(keras.layers.Concatenate()([mid, dead])))
    model = keras.Model(inp, out)
    ds = tf.data.Dataset.from_tensor_slices((x, np.zeros(7))).batch(2)  # batches with labels
    stats = inspect.layer_stats(model, ds, ["healthy", "dead"], targets=1, batch_size=3)
    assert stats.samples == 7
    assert stats.dead["dead"].tolist() == [0, 1, 2] and stats.dead["healthy"].size == 0
    acts = inspect.activations(model, x, ["healthy", "dead"])
    grads = inspect.gradients(model, x, ["healthy"], targets=1)
    for path, a in (("healthy", acts["healthy"]), ("dead", acts["dead"])):
        flat = a.reshape(-1, a.shape[-1]).astype(np.float64)
        s = stats.channels[path]
        np.testing.assert_allclose(s["min"], flat.min(0), rtol=1e-6)
        np.testing.assert_allclose(s["max"], flat.max(0), rtol=1e-6)
        np.testing.assert_allclose(s["mean"], flat.mean(0), rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(s["std"], flat.std(0), rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(s["zeros"], (flat == 0).mean(0))
    g = grads["healthy"].reshape(-1, 4).astype(np.float64)
    assert g.std(0).min() > 1e-4  # a gradient that varies over the units
    np.testing.assert_allclose(stats.gradients["healthy"]["std"], g.std(0), rtol=1e-4)
    np.testing.assert_allclose(stats.gradients["healthy"]["mean"], g.mean(0), rtol=1e-4)
    rows = stats.rows
    assert [r["layer"] for r in rows] == ["healthy", "dead"] and rows[1]["dead"] == 3
    assert len(stats.channel_rows()) == 7


def brute_top(acts, k):
    """Stable top-k of each channel over the flattened (image, y, x) axis."""
    n, h, w, c = acts.shape
    flat = acts.reshape(-1, c)
    order = np.argsort(-flat, axis=0, kind="stable")[:k].T  # (C, k)
    return order, np.take_along_axis(flat.T, order, axis=1)


@pytest.mark.parametrize("batch_size", [1, 3, 64])
def test_top_activations_equal_brute_force_for_any_chunk_size(batch_size, fingerprint):
    model = nested_model()
    before = fingerprint(model)
    x = np.random.default_rng(1).random((9, 16, 20, 3)).astype("float32") * 255
    acts = inspect.activations(model, x, "base/convB")["base/convB"]  # ReLU: many ties at 0
    order, values = brute_top(acts, 20)
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(9))).batch(4)
    for data in (x, ds):
        top = inspect.top_activations(model, data, "base/convB", k=20, batch_size=batch_size)
        h, w = acts.shape[1:3]
        np.testing.assert_array_equal(top.index * h * w + top.y * w + top.x, order)
        np.testing.assert_array_equal(top.value, values)
    assert top.field.size == (5, 5) and top.boxes.shape == (6, 20, 4)
    patches = top.patches(x)
    x0, y0, x1, y1 = top.boxes[0, 0]
    assert patches[0][0].shape == (y1 - y0, x1 - x0, 3)
    some = inspect.top_activations(model, x, "base/convB", channels=[4, 1], k=3)
    np.testing.assert_array_equal(some.value, values[[4, 1], :3])
    assert fingerprint(model) == before


def test_exact_search_blocks_equal_brute_force(monkeypatch):
    """Rows streamed in uneven chunks into storage blocks of 100 rows, searched in windows of
    240 rows that straddle them: the same features and neighbours as one array."""
    from tfvis.inspect import search as search_module

    monkeypatch.setattr(search_module, "_STORE", 100 * 8 * 4)  # 100 rows of 8 float32
    rng = np.random.default_rng(5)
    parts = [rng.normal(size=(int(n), 8)).astype("float32") for n in rng.integers(1, 300, 9)]
    search = search_module.ExactSearch("l2", block=240)
    for part in parts:
        search.add(part)
    search.done()
    data = np.concatenate(parts)
    assert len(search._blocks) == -(-len(data) // 100) and len(search) == len(data)
    np.testing.assert_array_equal(search.features, data)
    query = rng.normal(size=(4, 8)).astype("float32")
    want_i, want_d = brute_neighbours(data.astype(np.float64), query.astype(np.float64), "l2", 6)
    got_i, got_d = search.search(query, 6)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="complete"):
        search.add(parts[0])


@pytest.mark.parametrize("h,w", [(4, 4), (5, 7), (16, 16), (1, 1)])
def test_chunk_top_k_two_stages_equal_a_stable_sort(h, w):
    """Heavy ties (values in {0, 1, 2}) across groups of consecutive units, two padded rows
    (repeating the last sample index) that must take no part, k larger than a group."""
    from tfvis.inspect.top import chunk_top_k

    rng = np.random.default_rng(h * w)
    acts = rng.integers(0, 3, (6, h, w, 5)).astype("float32")
    acts[4:] = acts[3]  # the runner pads with copies of the last real row
    sample = np.array([10, 11, 12, 13, 13, 13], np.int64)
    for k in (1, 7, 70):
        values, units = (t.numpy()[0] for t in chunk_top_k(tf.constant(acts),
                                                           tf.constant(sample), k))
        real = acts[:4].reshape(-1, 5)  # (image, y, x) order
        order = np.argsort(-real, axis=0, kind="stable")[:k].T  # (C, kk)
        kk = order.shape[1]
        np.testing.assert_array_equal(values[:, :kk], np.take_along_axis(real.T, order, 1))
        np.testing.assert_array_equal(units[:, :kk], order + 10 * h * w)
        assert (units[:, kk:] == -1).all()  # places beyond the real units


def brute_neighbours(data, query, metric, k):
    if metric == "cosine":
        d = 1 - (query / np.linalg.norm(query, axis=1, keepdims=True)) @ (
            data / np.linalg.norm(data, axis=1, keepdims=True)).T
    else:
        d = np.sqrt(((query[:, None] - data[None]) ** 2).sum(-1))
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(d, order, axis=1)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_feature_index_equals_brute_force_and_round_trips(metric, tmp_path, x):
    model = nested_model()
    index = inspect.FeatureIndex(model, "base/convB", x, metric=metric, batch_size=3)
    feats = inspect.activations(model, x, "base/convB")["base/convB"].mean(axis=(1, 2))
    np.testing.assert_allclose(index.features, feats, rtol=1e-5)
    query = np.random.default_rng(2).random((5, 16, 20, 3)).astype("float32")
    qf = index.featurize(query)
    want_i, want_d = brute_neighbours(feats.astype(np.float64), qf.astype(np.float64), metric, 4)
    for block in (1, 3, 1000):
        index.block = block
        got_i, got_d = index.query(query, k=4, query_block=2)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    traced = index.traces()  # one compiled feature step serves building and every query
    index.query(query[::-1], k=2)
    assert index.traces() == traced
    index.save(tmp_path / "index.npz")
    back = inspect.FeatureIndex.load(tmp_path / "index.npz", model)
    np.testing.assert_array_equal(back.features, index.features)
    np.testing.assert_array_equal(back.query(query, k=4)[0], want_i)
    bare = inspect.FeatureIndex.load(tmp_path / "index.npz")
    np.testing.assert_array_equal(bare.query(features=qf, k=4)[0], want_i)
    with pytest.raises(ValueError, match="no model"):
        bare.query(query)
