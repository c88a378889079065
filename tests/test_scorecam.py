"""Score-CAM: the formula against an independent numpy computation, streaming, contract."""

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvis
from tfvis.explainers.scorecam import top_variance_channels
from conftest import gap_dense_model, seeded


class RowCounter(keras.layers.Layer):
    """Identity that records the number of rows of every call (also inside tf.function)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.rows = []

    def _record(self, n):
        self.rows.append(int(n))
        return n

    def call(self, x):
        n = tf.py_function(self._record, [tf.shape(x)[0]], tf.int32)
        with tf.control_dependencies([n]):
            return tf.identity(x)


def strided_model(activation=None, channels=5, classes=3, counter=False):
    """input -> [count] -> Conv(stride 2, relu) "conv" -> GAP -> Dense (a linear head)."""
    inp = keras.Input((12, 16, 3))
    x = RowCounter(name="count")(inp) if counter else inp
    x = keras.layers.Conv2D(channels, 3, strides=2, padding="same", activation="relu",
                            name="conv", kernel_initializer=seeded(1),
                            bias_initializer=keras.initializers.Constant(0.05))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(classes, activation=activation, name="head",
                             kernel_initializer=seeded(2), bias_initializer="ones")(x)
    return keras.Model(inp, out)


def upsample(maps, height, width):
    """Bilinear, half-pixel centres (OpenCV), map by map."""
    return np.stack([cv2.resize(m, (width, height), interpolation=cv2.INTER_LINEAR)
                     for m in maps])


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def reference(model, x, targets, baseline=0.0, top_k=None, probability=True, relu=True):
    """Score-CAM by hand: numpy masks, the model run eagerly on every masked image."""
    height, width = x.shape[1:3]
    acts = model.get_layer("conv")(x).numpy()
    score = (lambda z, t: softmax(z)[:, t]) if probability else (lambda z, t: z[:, t])
    maps = []
    for i, t in enumerate(targets):
        a = acts[i]
        channels = range(a.shape[-1])
        if top_k is not None:
            variance = a.reshape(-1, a.shape[-1]).var(0)
            channels = sorted(np.argsort(-variance, kind="stable")[:top_k])
        up = upsample(np.moveaxis(a, -1, 0), height, width)
        base = np.broadcast_to(np.asarray(baseline, np.float32), x[i].shape)
        weights = np.zeros(a.shape[-1])
        p_base = score(model(base[None]).numpy(), t)[0]
        for k in channels:
            span = up[k].max() - up[k].min()
            mask = (up[k] - up[k].min()) / span if span > 0 else np.zeros_like(up[k])
            masked = base + mask[..., None] * (x[i] - base)
            weights[k] = score(model(masked[None]).numpy(), t)[0] - p_base
        cam = np.tensordot(a, weights, axes=([-1], [0])).astype(np.float32)
        cam = np.maximum(cam, 0) if relu else cam
        maps.append(upsample(cam[None], height, width)[0])
    return np.stack(maps)


@pytest.fixture
def x():
    return np.random.default_rng(0).random((3, 12, 16, 3)).astype("float32")


@pytest.mark.filterwarnings("ignore:.*constant:RuntimeWarning")  # all-negative evidence
@pytest.mark.parametrize("relu", [True, False])
def test_matches_hand_computation_on_a_linear_head(x, relu):
    model = strided_model()
    result = tfvis.ScoreCAM(model, relu=relu, verbose=0)(x, targets=[0, 2, 1])
    expected = reference(model, x, [0, 2, 1], relu=relu)
    assert result.layer == "conv" and result.raw.shape == (3, 12, 16)
    assert np.ptp(expected, axis=(1, 2)).max() > 0  # real maps, not all zero
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-6)
    logits = model(x).numpy()
    np.testing.assert_allclose(result.scores, logits[[0, 1, 2], [0, 2, 1]], rtol=1e-5)


def test_softmax_head_scores_stay_logits_and_weights_use_its_probabilities(x):
    linear, softmaxed = strided_model(), strided_model("softmax")
    softmaxed.set_weights(linear.get_weights())
    a = tfvis.ScoreCAM(linear, relu=False, verbose=0)(x, targets=1)
    assert np.ptp(a.raw, axis=(1, 2)).min() > 0
    b = tfvis.ScoreCAM(softmaxed, relu=False, verbose=0)(x, targets=1)
    np.testing.assert_allclose(b.raw, a.raw, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(b.scores, linear(x).numpy()[:, 1], rtol=1e-5)  # logits
    # logits=False: the model's own probabilities, used as they are (no second softmax)
    c = tfvis.ScoreCAM(softmaxed, logits=False, relu=False, verbose=0)(x, targets=1)
    np.testing.assert_allclose(c.raw, a.raw, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(c.scores, softmaxed(x).numpy()[:, 1], rtol=1e-5)


def test_baseline_top_k_and_callable_targets(x):
    model = strided_model(channels=6)
    baseline = np.array([0.2, 0.5, 0.8], "float32")
    result = tfvis.ScoreCAM(model, top_k=3, baseline=baseline, verbose=0)(x, targets=2)
    expected = reference(model, x, [2] * 3, baseline, top_k=3)
    assert np.ptp(expected, axis=(1, 2)).min() > 0
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-6)
    # a callable's score is used as it is (no softmax)
    by_callable = tfvis.ScoreCAM(model, verbose=0)(x, targets=lambda out: out[:, 2])
    np.testing.assert_allclose(by_callable.raw, reference(model, x, [2] * 3, probability=False),
                               rtol=1e-4, atol=1e-6)


def test_top_variance_channels():
    acts = np.zeros((2, 3, 3, 4), "float32")
    acts[0, 0, 0] = [5, 1, 0, 3]  # variances ordered 0 > 3 > 1 > 2
    acts[1, :, :, 2] = np.arange(9).reshape(3, 3)  # only channel 2 varies; ties keep order
    np.testing.assert_array_equal(top_variance_channels(acts, 2), [[0, 3], [0, 2]])
    np.testing.assert_array_equal(top_variance_channels(acts, None), [[0, 1, 2, 3]] * 2)
    np.testing.assert_array_equal(top_variance_channels(acts, 9), [[0, 1, 2, 3]] * 2)


def test_memory_is_flat_in_the_channels_and_batch_size_does_not_matter(x):
    model = strided_model(channels=7, counter=True)
    counter = model.get_layer("count")
    explainer = tfvis.ScoreCAM(model, layer="conv", verbose=0)
    reference_raw = explainer(x, batch_size=64).raw  # 3 * (7 + 1) = 24 pairs in one chunk
    assert max(counter.rows) == 24
    for size in (1, 5, 9):
        counter.rows.clear()
        raw = explainer(x, batch_size=size).raw
        # every model call sees at most batch_size images: the 3 unperturbed ones in
        # chunks, then the 24 masked ones in ceil(24 / size) chunks
        assert max(counter.rows) <= size
        assert len(counter.rows) == -(-3 // size) + -(-24 // size)
        # equal up to the float rounding of batched kernels (the conv's summation order
        # depends on the batch size)
        np.testing.assert_allclose(raw, reference_raw, rtol=1e-5, atol=1e-7)
    assert explainer.num_perturbations(12, 16) == 8


def test_registered_and_contract(x):
    model = gap_dense_model()
    assert tfvis.get_explainer("Score-CAM", model, verbose=0).__class__ is tfvis.ScoreCAM
    cls = tfvis.REGISTRY["scorecam"]
    assert cls is tfvis.ScoreCAM and cls.gallery_order == 14 and cls.needs_internals
    with pytest.raises(TypeError):
        cls.quick_options["top_k"] = 1
    images = np.random.default_rng(1).random((2, 16, 20, 3)).astype("float32")
    explainer = cls(model, verbose=0, **cls.quick_options)
    result = explainer(images)
    assert result.method == "scorecam" and result.layer == "c2"
    assert result.maps.shape == (2, 16, 20) and result.maps.dtype == np.float32
    traces = explainer.traces()
    classes = result.targets
    for form in (list(classes), np.eye(4, dtype="float32")[classes]):
        np.testing.assert_allclose(explainer(images, targets=form).raw, result.raw, rtol=1e-6)
    assert explainer.traces() == traces  # new targets never retrace
    np.testing.assert_allclose(explainer(images[1]).raw[0], result.raw[1], rtol=1e-5,
                               atol=1e-8)


def test_bad_options():
    model = gap_dense_model()
    with pytest.raises(ValueError, match="top_k"):
        tfvis.ScoreCAM(model, top_k=0)
    with pytest.raises(ValueError, match="NaN"):
        tfvis.ScoreCAM(model, baseline=np.nan)
    with pytest.raises(ValueError, match="Layers that qualify"):
        tfvis.ScoreCAM(model, layer="gap")
    with pytest.raises(ValueError, match="does not broadcast"):
        tfvis.ScoreCAM(model, baseline=np.zeros((5, 5, 3)), verbose=0)(np.zeros((16, 20, 3)))
