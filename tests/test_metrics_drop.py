"""Average drop, increase in confidence and MuFidelity against hand computations."""

import keras
import numpy as np
import pytest

from tfvis.metrics.drop import AverageDrop, IncreaseInConfidence
from tfvis.metrics.fidelity import MuFidelity, pearson


def tiny_model(classes=3, activation="softmax", shape=(6, 6, 2)):
    inp = keras.Input(shape)
    out = keras.layers.Dense(classes, activation=activation,
                             kernel_initializer=keras.initializers.RandomNormal(stddev=0.5, seed=3),
                             bias_initializer=keras.initializers.RandomNormal(seed=4))(
        keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((8, 6, 6, 2)).astype(np.float32),
            rng.normal(size=(8, 6, 6)).astype(np.float32))


def by_hand(model, x, maps, targets=None):
    lo = maps.min((1, 2), keepdims=True)
    e = (maps - lo) / (maps.max((1, 2), keepdims=True) - lo)
    full = model.predict(x, verbose=0)
    cls = full.argmax(1) if targets is None else np.asarray(targets)
    y = full[np.arange(len(x)), cls].astype(np.float64)
    o = model.predict(x * e[..., None], verbose=0)[np.arange(len(x)), cls].astype(np.float64)
    return y, o


def test_average_drop_and_increase_by_hand(model, data):
    x, maps = data
    y, o = by_hand(model, x, maps)
    drop = AverageDrop(model)(x, maps)
    np.testing.assert_allclose(drop.values, np.maximum(0, y - o) / y, atol=1e-6)
    assert drop.mean == pytest.approx(np.mean(np.maximum(0, y - o) / y), abs=1e-6)
    increase = IncreaseInConfidence(model)(x, maps)
    np.testing.assert_array_equal(increase.values, (o > y).astype(float))
    assert 0 < increase.mean < 1  # this seed has both cases: the test can tell them apart
    assert np.all((drop.values >= 0) & (drop.values <= 1))
    np.testing.assert_allclose(drop.extras["full"], y, atol=1e-6)
    np.testing.assert_allclose(drop.extras["masked"], o, atol=1e-6)
    # explicit targets
    t = [0, 1, 2, 0, 1, 2, 0, 1]
    y, o = by_hand(model, x, maps, t)
    np.testing.assert_allclose(AverageDrop(model)(x, maps, targets=t).values,
                               np.maximum(0, y - o) / y, atol=1e-6)


def test_linear_output_gets_softmax(data):
    x, maps = data
    soft, plain = tiny_model(), tiny_model(activation=None)
    np.testing.assert_allclose(AverageDrop(plain)(x, maps).values,
                               AverageDrop(soft)(x, maps).values, atol=1e-6)


def test_drop_batch_size_constant_maps_and_mutation(model, data, fingerprint):
    x, maps = data
    before, x0, m0 = fingerprint(model), x.copy(), maps.copy()
    a = AverageDrop(model, batch_size=3)(x, maps)
    b = AverageDrop(model, batch_size=100)(x, maps)
    np.testing.assert_allclose(a.values, b.values, atol=1e-7)
    flat = IncreaseInConfidence(model)(x, np.zeros_like(maps))
    flat_drop = AverageDrop(model)(x, np.full_like(maps, 3.0))
    assert np.all(np.isfinite(flat.values)) and np.all(np.isfinite(flat_drop.values))
    assert fingerprint(model) == before
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(maps, m0)


# -- MuFidelity --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def linear():
    inp = keras.Input((12, 12, 2))
    out = keras.layers.Dense(1, kernel_initializer=keras.initializers.RandomNormal(seed=1))(
        keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def linear_data(linear):
    x = np.random.default_rng(0).random((4, 12, 12, 2)).astype(np.float32)
    w = linear.layers[-1].kernel.numpy().reshape(12, 12, 2)
    return x, (x * w).sum(-1)  # gradient x input summed over channels: the exact contributions


@pytest.mark.parametrize("grid_size", [4, 9, None])
def test_mufidelity_exact_attributions_correlate_fully(linear, linear_data, grid_size):
    x, exact = linear_data
    fid = MuFidelity(linear, num_subsets=32, score="output", grid_size=grid_size)
    r = fid(x, exact)
    np.testing.assert_allclose(r.values, 1.0, atol=1e-4)
    np.testing.assert_allclose(r.extras["drops"], r.extras["attributions"], atol=1e-4)
    noise = np.random.default_rng(5).random(exact.shape).astype(np.float32)
    assert np.all(fid(x, noise).values < 0.7)


def test_mufidelity_seeded_batched_and_finite(linear, linear_data, fingerprint):
    x, exact = linear_data
    noise = np.random.default_rng(5).random(exact.shape).astype(np.float32)
    before = fingerprint(linear)
    a = MuFidelity(linear, num_subsets=16, seed=3, batch_size=5)(x, noise)
    b = MuFidelity(linear, num_subsets=16, seed=3, batch_size=64)(x, noise)
    c = MuFidelity(linear, num_subsets=16, seed=4)(x, noise)
    np.testing.assert_allclose(a.values, b.values, atol=1e-6)
    assert not np.allclose(a.values, c.values)
    assert fingerprint(linear) == before
    subsets = MuFidelity(linear, subset_size=0.25, num_subsets=10, grid_size=4).subsets(12, 12)
    assert subsets.shape == (10, 4, 4) and np.all(subsets.sum((1, 2)) == 4)
    for maps in (np.zeros_like(exact), np.ones_like(exact)):
        r = MuFidelity(linear, num_subsets=8, grid_size=None)(x, maps)
        assert np.all(np.isfinite(r.values))
    np.testing.assert_array_equal(pearson(np.ones((2, 5)), np.arange(10.).reshape(2, 5)), 0)
    with pytest.raises(ValueError, match="subset_size"):
        MuFidelity(linear, subset_size=1.5)
