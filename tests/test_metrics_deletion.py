"""Deletion and insertion: analytic region models, orderings, chunking, model-call counts."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvis.engine.imageops import gaussian_blur
from tfvis.explanation import Explanation
from tfvis.metrics.deletion import Deletion, Insertion, pixel_counts, pixel_ranks

H = W = 8
REGION = np.zeros((H, W), np.float32)
REGION[2:6, 1:5] = 1  # 16 pixels
R = int(REGION.sum())
GAIN, BIAS = 4.0, -2.0


class CallCounter(keras.layers.Layer):
    """Identity that counts how many times it runs (also inside compiled functions)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.count = 0

    def _bump(self):
        self.count += 1
        return np.int32(0)

    def call(self, x):
        token = tf.py_function(self._bump, [], tf.int32)
        with tf.control_dependencies([token]):
            return tf.identity(x)


def region_model(activation="sigmoid", counter=None):
    """score = sigmoid(GAIN * (mean of the region) + BIAS) on 1-channel 8x8 images."""
    inp = keras.Input((H, W, 1))
    x = inp if counter is None else counter(inp)
    x = keras.layers.Flatten()(x)
    dense = keras.layers.Dense(1, activation=activation)
    out = dense(x)
    model = keras.Model(inp, out)
    dense.set_weights([(GAIN * REGION / R).reshape(-1, 1), np.array([BIAS], np.float32)])
    return model


def sigmoid(z):
    return 1 / (1 + np.exp(-z))


def analytic(counts, perfect, deletion):
    """Expected curve of the all-ones image on `region_model` with substrate 0."""
    counts = np.asarray(counts, np.float64)
    rest = H * W - R
    touched = np.minimum(counts, R) if perfect else np.clip(counts - rest, 0, R)
    inside = R - touched if deletion else touched
    curve = sigmoid(GAIN * inside / R + BIAS)
    f = counts / (H * W)
    return curve, float(np.sum((curve[1:] + curve[:-1]) / 2 * np.diff(f)))


ONES = np.ones((3, H, W, 1), np.float32)
PERFECT = np.repeat(REGION[None], 3, 0)
INVERTED = 1 - PERFECT


@pytest.mark.parametrize("metric, deletion", [(Deletion, True), (Insertion, False)])
@pytest.mark.parametrize("steps", [64, 10])
def test_region_model_analytic_aucs(metric, deletion, steps):
    model = region_model()
    counts = pixel_counts(H * W, steps)
    for maps, perfect in ((PERFECT, True), (INVERTED, False)):
        result = metric(model, steps=steps, substrate=0.0)(ONES, maps)
        curve, area = analytic(counts, perfect, deletion)
        assert result.curves.shape == (3, steps + 1)
        np.testing.assert_allclose(result.values, area, atol=1e-3)
        np.testing.assert_allclose(result.curves, np.repeat(curve[None], 3, 0), atol=1e-5)
        np.testing.assert_allclose(result.extras["fractions"], counts / (H * W))
    assert result.mean == pytest.approx(area, abs=1e-3)


def test_perfect_beats_random_beats_inverted():
    model = region_model()
    rng = np.random.default_rng(0)
    random_maps = rng.random((3, H, W)).astype(np.float32)
    for metric, better in ((Deletion, np.less), (Insertion, np.greater)):
        m = metric(model, steps=16, substrate=0.0)
        perfect, rand, inverted = (m(ONES, maps).values
                                   for maps in (PERFECT, random_maps, INVERTED))
        assert np.all(better(perfect, rand)) and np.all(better(rand, inverted))


def test_unsquashed_outputs_get_softmax_or_sigmoid():
    # a linear K=1 output gets a sigmoid: the same AUCs as the model ending in sigmoid
    ref = Deletion(region_model(), steps=8, substrate=0.0)(ONES, PERFECT)
    linear = Deletion(region_model(activation=None), steps=8, substrate=0.0)(ONES, PERFECT)
    np.testing.assert_allclose(linear.curves, ref.curves, atol=1e-6)
    # score="logit" bypasses the sigmoid: the curve is the affine score itself
    logit = Deletion(region_model(), steps=8, substrate=0.0, score="logit")(ONES, PERFECT)
    np.testing.assert_allclose(sigmoid(logit.curves), ref.curves, atol=1e-6)

    # K > 1 without softmax gets one
    inp = keras.Input((H, W, 1))
    logits = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(1))(
        keras.layers.Flatten()(inp))
    plain = keras.Model(inp, logits)
    soft = keras.Model(inp, keras.layers.Softmax()(plain(inp)))
    x = np.random.default_rng(1).random((2, H, W, 1)).astype(np.float32)
    maps = np.random.default_rng(2).random((2, H, W)).astype(np.float32)
    a = Insertion(plain, steps=8)(x, maps, targets=[0, 2])
    b = Insertion(soft, steps=8)(x, maps, targets=[0, 2])
    np.testing.assert_allclose(a.curves, b.curves, atol=1e-6)
    probs = soft.predict(x, verbose=0)[[0, 1], [0, 2]]
    np.testing.assert_allclose(a.curves[:, -1], probs, atol=1e-6)


@pytest.fixture(scope="module")
def cnn():
    from tfvis.demo import build_model

    return build_model((16, 16, 3), classes=4)


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(0)
    return (rng.random((5, 16, 16, 3)).astype(np.float32),
            rng.random((5, 16, 16)).astype(np.float32))


@pytest.mark.parametrize("metric", [Deletion, Insertion])
def test_batch_size_and_chunking_do_not_change_aucs(metric, cnn, data):
    x, maps = data
    results = [metric(cnn, steps=12, batch_size=b)(x, maps) for b in (1, 7, 60, 500)]
    for r in results[1:]:
        np.testing.assert_allclose(r.curves, results[0].curves, rtol=0, atol=1e-6)
        np.testing.assert_allclose(r.values, results[0].values, rtol=0, atol=1e-6)


@pytest.mark.parametrize("metric", [Deletion, Insertion])
@pytest.mark.parametrize("batch_size", [4, 7, 40])
def test_model_calls(metric, batch_size):
    counter = CallCounter()
    model = region_model(counter=counter)
    n, steps = 5, 8
    x = np.random.default_rng(0).random((n, H, W, 1)).astype(np.float32)
    maps = np.random.default_rng(1).random((n, H, W)).astype(np.float32)
    m = metric(model, steps=steps, batch_size=batch_size)
    counter.count = 0
    result = m(x, maps)
    expected = math.ceil(n * steps / batch_size) + math.ceil(n / min(batch_size, n))
    assert counter.count == expected == result.extras["model_calls"]


def test_substrates(cnn, data):
    x, maps = data
    probs = cnn.predict(x, verbose=0)
    top = probs.argmax(1)

    def prob(images):
        return cnn.predict(images, verbose=0)[np.arange(len(x)), top]

    mean = np.broadcast_to(x.mean((1, 2), keepdims=True), x.shape)
    blurred = gaussian_blur(x, 5.0).numpy()
    deletion = Deletion(cnn, steps=4)(x, maps)  # "mean" by default
    np.testing.assert_allclose(deletion.curves[:, 0], probs.max(1), atol=1e-5)
    np.testing.assert_allclose(deletion.curves[:, -1], prob(mean), atol=1e-5)
    insertion = Insertion(cnn, steps=4)(x, maps)  # "blur" by default
    np.testing.assert_allclose(insertion.curves[:, 0], prob(blurred), atol=1e-5)
    np.testing.assert_allclose(insertion.curves[:, -1], probs.max(1), atol=1e-5)
    const = Deletion(cnn, steps=4, substrate=0.25)(x, maps)
    np.testing.assert_allclose(const.curves[:, -1], prob(np.full_like(x, 0.25)), atol=1e-5)
    array = Deletion(cnn, steps=4, substrate=x[::-1].copy())(x, maps)
    np.testing.assert_allclose(array.curves[:, -1], prob(x[::-1]), atol=1e-5)
    # half the pixels removed, by hand
    ranks = pixel_ranks(maps)
    half = np.where((ranks < 128)[..., None], mean, x)
    np.testing.assert_allclose(deletion.curves[:, 2], prob(half), atol=1e-5)
    with pytest.raises(ValueError, match="substrate"):
        Deletion(cnn, substrate="zeros")(x, maps)


def test_targets_forms_agree(cnn, data):
    x, maps = data
    m = Deletion(cnn, steps=4)
    top = cnn.predict(x, verbose=0).argmax(1)
    auto = m(x, maps)
    ints = m(x, maps, targets=top)
    onehot = m(x, maps, targets=np.eye(4)[top])
    np.testing.assert_allclose(ints.values, auto.values, atol=1e-7)
    np.testing.assert_allclose(onehot.values, auto.values, atol=1e-7)
    two = m(x, maps, targets=2)
    np.testing.assert_allclose(two.curves[:, 0], cnn.predict(x, verbose=0)[:, 2], atol=1e-6)


def test_explanation_maps_and_pixels_per_step(cnn, data):
    x, maps = data
    exp = Explanation(maps=maps, raw=maps, targets=None, scores=np.zeros(5), method="x")
    a = Insertion(cnn, steps=4)(x, exp)
    b = Insertion(cnn, steps=4)(x, maps[..., None])
    np.testing.assert_array_equal(a.values, b.values)
    r = Deletion(cnn, pixels_per_step=100)(x, maps)
    np.testing.assert_array_equal(r.extras["counts"], [0, 100, 200, 256])
    assert r.curves.shape == (5, 4)
    np.testing.assert_array_equal(pixel_counts(64, 10), [math.ceil(i * 64 / 10) for i in range(11)])


def test_ties_in_raster_order_and_constant_maps(cnn, data):
    x, _ = data
    np.testing.assert_array_equal(pixel_ranks(np.zeros((1, 3, 4))), np.arange(12).reshape(1, 3, 4))
    np.testing.assert_array_equal(pixel_ranks(np.array([[[1, 2], [2, 1]]])), [[[2, 0], [1, 3]]])
    for metric in (Deletion, Insertion):
        r = metric(cnn, steps=4)(x, np.zeros((5, 16, 16), np.float32))
        assert np.all(np.isfinite(r.values)) and np.all(np.isfinite(r.curves))


def test_nothing_mutated(cnn, data, fingerprint):
    x, maps = data
    before, x0, m0 = fingerprint(cnn), x.copy(), maps.copy()
    Deletion(cnn, steps=4)(x, maps)
    Insertion(cnn, steps=4)(x, maps)
    assert fingerprint(cnn) == before
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(maps, m0)


def test_bad_arguments(cnn, data):
    x, maps = data
    with pytest.raises(ValueError, match="maps have shape"):
        Deletion(cnn, steps=4)(x, maps[:, :8])
    bad = maps.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        Deletion(cnn, steps=4)(x, bad)
    with pytest.raises(ValueError, match="steps"):
        Deletion(cnn, steps=0)
    with pytest.raises(ValueError, match="score"):
        Deletion(cnn, score="prob")


def test_sequential_softmax_output_is_used_as_it_is():
    init = keras.initializers.GlorotUniform(2)
    model = keras.Sequential([keras.Input((H, W, 1)), keras.layers.Flatten(),
                              keras.layers.Dense(3, activation="softmax", kernel_initializer=init)])
    x = np.random.default_rng(1).random((2, H, W, 1)).astype(np.float32)
    r = Deletion(model, steps=4)(x, np.random.default_rng(2).random((2, H, W)))
    np.testing.assert_allclose(r.curves[:, 0], model.predict(x, verbose=0).max(1), atol=1e-6)
