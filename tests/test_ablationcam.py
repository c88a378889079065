"""Ablation-CAM: the formula against an independent computation, batching at the layer."""

import cv2
import keras
import numpy as np
import pytest

import tfvis
from tfvis.engine.perturbation import chunk_size
from conftest import gap_dense_model, seeded
from test_scorecam import RowCounter


def layered_model(counter=False):
    """input -> [count] -> Conv(stride 2) "conv" -> [count] -> Conv "conv2" -> GAP -> Dense."""
    inp = keras.Input((12, 16, 3))
    x = RowCounter(name="prefix_count")(inp) if counter else inp
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="conv",
                            kernel_initializer=seeded(1),
                            bias_initializer=keras.initializers.Constant(0.05))(x)
    if counter:
        x = RowCounter(name="suffix_count")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv2",
                            kernel_initializer=seeded(2))(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, name="head", kernel_initializer=seeded(3),
                             bias_initializer="ones")(x)
    return keras.Model(inp, out)


def suffix(model, acts):
    """The layers after "conv", run eagerly on given activations."""
    for name in ("conv2", "gap", "head"):
        acts = model.get_layer(name)(acts)
    return acts.numpy()


def reference(model, x, targets, relu=True):
    """Ablation-CAM by hand: each channel zeroed in numpy, the suffix run eagerly."""
    height, width = x.shape[1:3]
    acts = model.get_layer("conv")(x).numpy()
    maps = []
    for i, t in enumerate(targets):
        y = suffix(model, acts[i:i + 1])[0, t]
        weights = []
        for k in range(acts.shape[-1]):
            ablated = acts[i:i + 1].copy()
            ablated[..., k] = 0.0
            y_k = suffix(model, ablated)[0, t]
            weights.append((y - y_k) / y if y != 0 else y - y_k)
        cam = np.tensordot(acts[i], np.array(weights), axes=([-1], [0])).astype(np.float32)
        cam = np.maximum(cam, 0) if relu else cam
        maps.append(cv2.resize(cam, (width, height), interpolation=cv2.INTER_LINEAR))
    return np.stack(maps)


@pytest.fixture
def x():
    return np.random.default_rng(0).random((3, 12, 16, 3)).astype("float32")


@pytest.mark.filterwarnings("ignore:.*constant:RuntimeWarning")  # all-negative evidence
@pytest.mark.parametrize("relu", [True, False])
def test_matches_hand_computation(x, relu):
    model = layered_model()
    result = tfvis.AblationCAM(model, layer="conv", relu=relu, verbose=0)(x, targets=[0, 2, 1])
    expected = reference(model, x, [0, 2, 1], relu)
    assert result.layer == "conv" and result.raw.shape == (3, 12, 16)
    assert np.ptp(expected, axis=(1, 2)).max() > 0
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(result.scores, model(x).numpy()[[0, 1, 2], [0, 2, 1]], rtol=1e-5)


def test_linear_head_weights_are_the_relative_drop():
    """On GAP -> Dense, zeroing channel k lowers the logit by W[k, c] * mean(A_k)."""
    model = gap_dense_model(activation=None)
    images = np.random.default_rng(1).random((2, 16, 20, 3)).astype("float32")
    explainer = tfvis.AblationCAM(model, relu=False, verbose=0)
    result = explainer(images, targets=3)
    acts = model.get_layer("c2")(model.get_layer("c1")(images)).numpy()
    kernel = model.get_layer("head").kernel.numpy()
    y = model(images).numpy()[:, 3]
    weights = kernel[:, 3] * acts.mean(axis=(1, 2)) / y[:, None]
    expected = np.einsum("nhwc,nc->nhw", acts, weights)  # same resolution: no upsampling
    np.testing.assert_allclose(result.raw, expected, rtol=1e-4, atol=1e-6)


def test_prefix_runs_once_per_image_chunk_not_per_channel(x):
    model = layered_model(counter=True)
    prefix, after = model.get_layer("prefix_count"), model.get_layer("suffix_count")
    explainer = tfvis.AblationCAM(model, layer="conv", verbose=0)
    reference_raw = explainer(x, batch_size=64).raw
    for size in (2, 4, 7):
        prefix.rows.clear()
        after.rows.clear()
        raw = explainer(x, batch_size=size).raw
        # the prefix: the 3 images in chunks of at most `size`, once; never per channel
        images = [min(size, 3)] * -(-3 // size)
        assert prefix.rows == images
        # the suffix: the unperturbed pass, then the 3 * 6 ablated activations in chunks
        assert after.rows == images + [chunk_size(18, size)] * -(-18 // size)
        assert max(after.rows) <= size
        np.testing.assert_allclose(raw, reference_raw, rtol=1e-5, atol=1e-7)
    assert explainer.num_perturbations(12, 16) == 6


def test_zero_score_gives_no_nan():
    """y = 0 exactly: the weights are the plain drops y - y_k."""
    inp = keras.Input((4, 4, 2))
    conv = keras.layers.Conv2D(2, 1, use_bias=False, name="conv")
    x = keras.layers.GlobalAveragePooling2D()(conv(inp))
    head = keras.layers.Dense(1, name="head")
    model = keras.Model(inp, head(x))
    conv.set_weights([np.eye(2, dtype="float32")[None, None]])
    head.set_weights([np.array([[1.0], [-1.0]], "float32"), np.zeros(1, "float32")])
    pattern = np.arange(16, dtype="float32").reshape(4, 4)
    image = np.stack([pattern, pattern[::-1, ::-1]], axis=-1)  # equal means: y = 0 exactly
    result = tfvis.AblationCAM(model, layer="conv", relu=False, verbose=0)(image, targets=0)
    assert result.scores[0] == 0.0
    mean = pattern.mean()
    expected = mean * (image[..., 0] - image[..., 1])  # w = (y - y_k) = (m, -m)
    np.testing.assert_allclose(result.raw[0], expected, rtol=1e-6)
    assert np.all(np.isfinite(result.maps))


def test_registered_and_contract():
    model = gap_dense_model()
    cls = tfvis.REGISTRY["ablationcam"]
    assert cls is tfvis.AblationCAM and cls.gallery_order == 15 and cls.needs_internals
    assert type(tfvis.get_explainer("Ablation-CAM", model, verbose=0)) is cls
    with pytest.raises(TypeError):
        cls.quick_options["batch_size"] = 1
    images = np.random.default_rng(2).random((2, 16, 20, 3)).astype("float32")
    explainer = cls(model, verbose=0, **cls.quick_options)
    result = explainer(images)
    assert result.method == "ablationcam" and result.layer == "c2"
    traces = explainer.traces()
    for form in (list(result.targets), np.eye(4, dtype="float32")[result.targets]):
        np.testing.assert_allclose(explainer(images, targets=form).raw, result.raw, rtol=1e-6)
    assert explainer.traces() == traces
    by_callable = explainer(images, targets=lambda out: out[:, 1])
    np.testing.assert_allclose(by_callable.raw, explainer(images, targets=1).raw, rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(ValueError, match="Layers that qualify"):
        cls(model, layer="head")
    with pytest.raises(ValueError, match="no layer with a rank-4 output"):
        cls(keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]))


@pytest.mark.parametrize("cls", [tfvis.ScoreCAM, tfvis.AblationCAM])
def test_layer_inside_a_nested_base_model(cls):
    """A transfer-learning layout: the layer is inside a nested model, fed there."""
    base_in = keras.Input((16, 20, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(1))(base_in)
    h = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(2))(h)
    inp = keras.Input((16, 20, 3))
    features = keras.layers.GlobalAveragePooling2D()(keras.Model(base_in, h, name="base")(inp))
    nested = keras.Model(inp, keras.layers.Dense(4, kernel_initializer=seeded(3))(features))
    flat = gap_dense_model(activation=None)
    flat.set_weights(nested.get_weights())
    images = np.random.default_rng(3).random((2, 16, 20, 3)).astype("float32")
    assert cls(nested, verbose=0).layer == "base/c2"
    inner = cls(nested, layer="base/c1", relu=False, verbose=0)(images, targets=1)
    assert inner.layer == "base/c1"
    expected = cls(flat, layer="c1", relu=False, verbose=0)(images, targets=1)
    np.testing.assert_allclose(inner.raw, expected.raw, rtol=1e-5, atol=1e-8)
