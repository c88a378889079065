"""Task targets: regression outputs and segmentation masks, compiled without retracing."""

import keras
import numpy as np
import pytest
from conftest import seeded

import tfvis
from tfvis.targets import Regression, Segmentation


def linear_regressor(units=1):
    inp = keras.Input((4, 5, 2))
    out = keras.layers.Dense(units, name="fc", kernel_initializer=seeded(41),
                             bias_initializer="ones")(keras.layers.Flatten()(inp))
    return keras.Model(inp, out)


def test_regression_saliency_is_the_regressor_weights():
    x = np.random.default_rng(0).normal(size=(3, 4, 5, 2)).astype(np.float32)
    model = linear_regressor()
    kernel = model.get_layer("fc").kernel.numpy()
    e = tfvis.Saliency(model, verbose=0).explain(x, Regression())
    np.testing.assert_allclose(e.raw, np.broadcast_to(kernel[:, 0].reshape(4, 5, 2), x.shape),
                               rtol=1e-6)
    np.testing.assert_allclose(e.scores, model(x).numpy()[:, 0], rtol=1e-5)
    assert isinstance(e.targets, Regression)
    signed = tfvis.GradientInput(model, verbose=0, channels="sum").explain(x, Regression())
    np.testing.assert_allclose(signed.raw.sum((1, 2, 3)) + 1.0, e.scores, rtol=1e-4)


def test_regression_unit_of_a_vector_output_and_errors():
    x = np.random.default_rng(1).normal(size=(2, 4, 5, 2)).astype(np.float32)
    model = linear_regressor(3)
    kernel = model.get_layer("fc").kernel.numpy()
    explainer = tfvis.Saliency(model, verbose=0)
    e = explainer.explain(x, Regression(output=2))
    np.testing.assert_allclose(e.raw[0], kernel[:, 2].reshape(4, 5, 2), rtol=1e-6)
    traces = explainer.traces()
    np.testing.assert_allclose(explainer.explain(x, Regression(output=-3)).raw[0],
                               kernel[:, 0].reshape(4, 5, 2), rtol=1e-6)
    assert explainer.traces() == traces  # another unit: no retrace
    with pytest.raises(ValueError, match=r"3 values per sample.*Regression\(output=<index>\)"):
        explainer.explain(x, Regression())
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(x, Regression(output=3))


def segmenter():
    """conv1 (4 channels, relu) -> 1x1 conv to 3 class logits -> softmax: (N, H, W, 3)."""
    inp = keras.Input((6, 7, 3))
    a = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv1",
                            kernel_initializer=seeded(42))(inp)
    out = keras.layers.Conv2D(3, 1, activation="softmax", name="classes",
                              kernel_initializer=seeded(43))(a)
    return keras.Model(inp, out)


def test_segmentation_gradcam_equals_the_hand_computation():
    model = segmenter()
    x = np.random.default_rng(2).random((2, 6, 7, 3)).astype(np.float32)
    acts = keras.Model(model.inputs, model.get_layer("conv1").output)(x).numpy()
    kernel = model.get_layer("classes").kernel.numpy()[0, 0]  # (4, 3)
    mask = np.zeros((6, 7), bool)
    mask[1:4, 2:6] = True
    explainer = tfvis.GradCAM(model, layer="conv1", verbose=0)
    e = explainer.explain(x, Segmentation(2, mask))
    # score = sum over masked pixels of the class-2 logit = sum_hw mask * (A @ W[:, 2] + b)
    # -> d score / d A[h, w] = mask[h, w] W[:, 2]; Grad-CAM weights = mean(mask) W[:, 2].
    weights = mask.mean() * kernel[:, 2]
    expected = np.maximum(np.einsum("nhwc,c->nhw", acts, weights), 0)
    np.testing.assert_allclose(e.raw, expected, rtol=1e-4, atol=1e-7)
    bias = model.get_layer("classes").bias.numpy()[2]
    logits = acts @ kernel[:, 2] + bias
    np.testing.assert_allclose(e.scores, (logits * mask).sum((1, 2)), rtol=1e-5)

    traces = explainer.traces()
    other = np.zeros((2, 6, 7), np.float32)
    other[0, 0, 0] = other[1, 5, 6] = 1.0  # per-sample float masks, another class
    e2 = explainer.explain(x, Segmentation([0, 1], other))
    assert explainer.traces() == traces  # a new mask and class: no retrace
    np.testing.assert_allclose(e2.scores, [acts[0, 0, 0] @ kernel[:, 0] + model.get_layer(
        "classes").bias.numpy()[0], acts[1, 5, 6] @ kernel[:, 1] + model.get_layer(
        "classes").bias.numpy()[1]], rtol=1e-5)
    whole = explainer.explain(x, Segmentation(1))
    np.testing.assert_allclose(whole.scores, (acts @ kernel[:, 1] + model.get_layer(
        "classes").bias.numpy()[1]).sum((1, 2)), rtol=1e-5)


def test_segmentation_errors():
    model = segmenter()
    x = np.zeros((2, 6, 7, 3), np.float32)
    explainer = tfvis.GradCAM(model, verbose=0)
    with pytest.raises(ValueError, match=r"\(H, W\) = \(6, 7\)"):
        explainer.explain(x, Segmentation(0, np.ones((5, 5))))
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(x, Segmentation(3))
    with pytest.raises(ValueError, match=r"\(N, H, W, K\) output"):
        tfvis.Saliency(linear_regressor(), verbose=0).explain(np.zeros((1, 4, 5, 2)),
                                                            Segmentation(0))
