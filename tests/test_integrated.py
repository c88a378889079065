"""Integrated Gradients: closed forms, completeness, baselines, quadrature and streaming."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import seeded

import tfvis
from tfvis.engine.imageops import gaussian_blur
from tfvis.explainers.integrated import path_weights


def analytic_model():
    """x -> (5 x0, x1^2, sin x2), built from keras ops in a functional graph (no Lambda)."""
    inp = keras.Input((3,))
    out = keras.ops.stack([5.0 * inp[:, 0], keras.ops.square(inp[:, 1]),
                           keras.ops.sin(inp[:, 2])], axis=1)
    return keras.Model(inp, out)


def smooth_conv_net():
    inp = keras.Input((10, 12, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="tanh",
                            kernel_initializer=seeded(31), bias_initializer="ones")(inp)
    x = keras.layers.Conv2D(5, 3, strides=2, activation="softplus",
                            kernel_initializer=seeded(32))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=seeded(33))(x)
    return keras.Model(inp, out)


def linear_model():
    inp = keras.Input((8, 9, 2))
    dense = keras.layers.Dense(2, kernel_initializer=seeded(34), bias_initializer="ones")
    return keras.Model(inp, dense(keras.layers.Flatten()(inp))), dense


@pytest.mark.parametrize("method", ["riemann", "trapezoid"])
def test_closed_form_attributions(method):
    model = analytic_model()
    ig = tfvis.IntegratedGradients(model, baseline=np.array([0.5, 1.0, 1.0]), steps=32,
                                   method=method, verbose=0)
    e = ig.explain(np.array([1.0, 2.0, 3.0]), targets=np.ones((1, 3)))  # explain the sum
    np.testing.assert_allclose(e.raw[0], [2.5, 3.0, np.sin(3.0) - np.sin(1.0)], atol=1e-2)
    assert isinstance(e, tfvis.IntegratedGradientsExplanation)
    assert abs(e.delta[0]) < 1e-2
    # Per output dimension, through feature saliency: dimension 1 only sees x1.
    dim1 = tfvis.feature_saliency(ig, np.array([1.0, 2.0, 3.0]), dims=[1])[0]
    np.testing.assert_allclose(dim1.raw[0], [0.0, 3.0, 0.0], atol=1e-2)


def test_completeness_on_a_smooth_conv_net():
    model = smooth_conv_net()
    x = np.random.default_rng(6).random((4, 10, 12, 3)).astype(np.float32)
    e = tfvis.IntegratedGradients(model, steps=48, verbose=0).explain(x, targets=[0, 1, 2, 1])
    logits = tfvis.Saliency(model).forward(tf.constant(np.concatenate([x, 0 * x]))).numpy()
    rows = np.arange(4), [0, 1, 2, 1]
    change = logits[:4][rows] - logits[4:][rows]
    total = e.raw.reshape(4, -1).sum(1)
    np.testing.assert_allclose(total, change, rtol=0.01)
    np.testing.assert_allclose(e.delta, total - change, atol=1e-5)
    np.testing.assert_allclose(e.scores, logits[:4][rows], rtol=1e-5)


def test_a_large_gap_warns():
    model = smooth_conv_net()
    x = np.random.default_rng(6).random((2, 10, 12, 3)).astype(np.float32) * 4
    with pytest.warns(UserWarning, match="completeness gap"):
        e = tfvis.IntegratedGradients(model, steps=1, method="riemann", verbose=0).explain(x, 0)
    assert np.abs(e.delta).max() > 0


def test_linear_model_is_exact_for_every_baseline():
    """The gradient is constant, so IG = (x - baseline) * w for any baseline and any steps."""
    model, dense = linear_model()
    w = dense.kernel.numpy()[:, 1].reshape(8, 9, 2)
    x = np.random.default_rng(7).random((2, 8, 9, 2)).astype(np.float32)
    per_channel = np.array([0.2, 0.7], np.float32)
    blurred = gaussian_blur(tf.constant(x), tf.constant(0.8)).numpy()  # sigma = 8 / 10
    cases = [
        ("black", 0.0),
        (0.5, 0.5),
        ("blur", blurred),
        (per_channel, per_channel),
        (lambda t: t * 0.25, 0.25 * x),
    ]
    for baseline, value in cases:
        e = tfvis.IntegratedGradients(model, baseline=baseline, steps=3, verbose=0).explain(x, 1)
        np.testing.assert_allclose(e.raw, (x - value) * w, rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(e.delta, 0.0, atol=1e-4)


def test_gaussian_blur_keeps_constants_and_smooths():
    flat = tf.fill((1, 7, 9, 2), 3.0)
    np.testing.assert_allclose(gaussian_blur(flat, tf.constant(1.5)), flat, rtol=1e-6)
    spike = np.zeros((1, 15, 15, 1), np.float32)
    spike[0, 7, 7, 0] = 1.0  # far enough from the borders for the full 7-tap kernel
    blurred = gaussian_blur(tf.constant(spike), tf.constant(1.0)).numpy()[0, :, :, 0]
    t = np.exp(-0.5 * np.arange(-3, 4) ** 2)
    np.testing.assert_allclose(blurred[4:11, 4:11], np.outer(t, t) / t.sum() ** 2, rtol=1e-5)
    assert blurred.sum() == pytest.approx(1.0, rel=1e-5)


def test_quadrature_weights():
    for method in ("riemann", "trapezoid"):
        alphas, weights = path_weights(10, method)
        assert len(alphas) == 10 and np.isclose(weights.sum(), 1.0)
        assert 0 <= alphas.min() and alphas.max() <= 1
        # Both rules integrate a linear function exactly: int_0^1 a da = 1/2.
        assert np.isclose((alphas * weights).sum(), 0.5)
    with pytest.raises(ValueError, match="trapezoid"):
        path_weights(1, "trapezoid")


def test_steps_beyond_batch_size_equal_one_big_chunk():
    model = smooth_conv_net()
    x = np.random.default_rng(8).random((3, 10, 12, 3)).astype(np.float32)
    wide = tfvis.IntegratedGradients(model, steps=13, batch_size=64, verbose=0).explain(x, 2)
    narrow = tfvis.IntegratedGradients(model, steps=13, batch_size=4, verbose=0).explain(x, 2)
    np.testing.assert_allclose(narrow.raw, wide.raw, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(narrow.delta, wide.delta, atol=1e-5)


def test_bad_baselines_and_options():
    model, _ = linear_model()
    with pytest.raises(ValueError, match="broadcast"):
        tfvis.IntegratedGradients(model, baseline=np.zeros((3,)))
    with pytest.raises(ValueError, match="unknown baseline"):
        tfvis.IntegratedGradients(model, baseline="white")
    with pytest.raises(ValueError, match="finite"):
        tfvis.IntegratedGradients(model, baseline=float("nan"))
    with pytest.raises(ValueError, match="steps"):
        tfvis.IntegratedGradients(model, steps=0)
    with pytest.raises(ValueError, match="method"):
        tfvis.IntegratedGradients(model, method="simpson")
    with pytest.raises(ValueError, match="image inputs"):
        tfvis.IntegratedGradients(analytic_model(), baseline="blur")
