"""Layer-CAM, XGrad-CAM, HiResCAM and Eigen-CAM against closed forms in numpy.

The explained layer keeps the input's resolution (so the upsampling is the identity) and feeds
either Flatten -> Dense (the gradient of logit k w.r.t. the activations is Dense's kernel
column k, reshaped: it varies over locations) or GAP -> Dense (constant over locations).
"""

import keras
import numpy as np
import pytest
from conftest import gap_dense_model, seeded

import tfvis

H, W, C = 6, 7, 5


def flatten_model():
    inp = keras.Input((H, W, 3))
    x = keras.layers.Conv2D(C, 3, padding="same", activation="relu", name="conv",
                            kernel_initializer=seeded(11))(inp)
    x = keras.layers.Flatten()(x)
    out = keras.layers.Dense(4, activation="softmax", name="head",
                             kernel_initializer=seeded(12))(x)
    return keras.Model(inp, out)


@pytest.fixture(scope="module")
def case():
    model = flatten_model()
    x = np.random.default_rng(0).normal(size=(3, H, W, 3)).astype(np.float32)
    acts = keras.Model(model.inputs, model.get_layer("conv").output)(x).numpy()
    kernel = model.get_layer("head").kernel.numpy()
    targets = np.array([0, 2, 3])
    grads = np.stack([kernel[:, t].reshape(H, W, C) for t in targets])  # d logit / d acts
    return model, x, acts, grads, targets


def explain(cls, case, relu=True):
    model, x, _, _, targets = case
    return cls(model, layer="conv", relu=relu, verbose=0).explain(x, targets).raw


def test_layercam_is_relu_gradient_times_activation(case):
    _, _, acts, grads, _ = case
    expected = np.maximum((np.maximum(grads, 0) * acts).sum(-1), 0)
    np.testing.assert_allclose(explain(tfvis.LayerCAM, case), expected, rtol=1e-4, atol=1e-6)


def test_xgradcam_weights(case):
    _, _, acts, grads, _ = case
    weights = (acts * grads).sum((1, 2)) / acts.sum((1, 2))
    expected = np.einsum("nhwc,nc->nhw", acts, weights)
    np.testing.assert_allclose(explain(tfvis.XGradCAM, case, relu=False), expected, rtol=1e-4,
                               atol=1e-6)


def test_xgradcam_dead_channels_get_zero_weight_not_nan():
    inp = keras.Input((H, W, 1))
    x = keras.layers.Conv2D(2, 1, activation="relu", name="conv", use_bias=False,
                            kernel_initializer=keras.initializers.Constant([[[[1.0, -1.0]]]]))(inp)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.Flatten()(x)))
    e = tfvis.XGradCAM(model, layer="conv", verbose=0).explain(np.ones((1, H, W, 1)), 0)
    assert np.all(np.isfinite(e.raw))  # channel 1 is all zero: sum(A) = 0


def test_hirescam_is_gradient_times_activation(case):
    _, _, acts, grads, _ = case
    np.testing.assert_allclose(explain(tfvis.HiResCAM, case, relu=False), (grads * acts).sum(-1),
                               rtol=1e-4, atol=1e-6)


def test_eigencam_is_the_first_principal_projection(case):
    model, x, acts, _, _ = case
    flat = acts.reshape(3, H * W, C)
    expected = []
    for a in flat:
        v = np.linalg.svd(a.astype(np.float64), full_matrices=False)[2][0]
        p = a @ v
        expected.append(p if p.sum() >= 0 else -p)
    expected = np.stack(expected).reshape(3, H, W)
    got = explain(tfvis.EigenCAM, case, relu=False)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-4)
    other = tfvis.EigenCAM(model, layer="conv", relu=False, verbose=0).explain(x, [1, 1, 1]).raw
    np.testing.assert_array_equal(other, got)  # class-agnostic


def test_gradcam_equals_hirescam_on_a_gap_head(images):
    model = gap_dense_model()
    grad = tfvis.GradCAM(model, verbose=0).explain(images, 2).raw
    hires = tfvis.HiResCAM(model, verbose=0).explain(images, 2).raw
    np.testing.assert_allclose(hires, grad, rtol=1e-4, atol=1e-7)
    assert np.ptp(grad) > 0


@pytest.mark.parametrize("cls", [tfvis.LayerCAM, tfvis.XGradCAM, tfvis.HiResCAM, tfvis.EigenCAM])
def test_variants_are_registered_with_their_names(cls):
    assert tfvis.REGISTRY[cls.name] is cls
    assert tfvis.get_explainer(cls.title, gap_dense_model(), verbose=0).__class__ is cls
