"""Feature inversion (Mahendran & Vedaldi 2015) on the one optimisation loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, nested_model, seeded

import tfvis.featurevis as fv
from tfvis.featurevis import objectives as O
from tfvis.featurevis import regularizers as R
from tfvis.featurevis.inversion import BOUND, prior


@pytest.fixture(scope="module")
def demo():
    """The demo CNN trained on 1000 48x48 shapes, and held-out test images."""
    from tfvis.datasets import shapes
    from tfvis.demo import train

    keras.utils.set_random_seed(0)
    model = train(shapes(1000, 48, seed=0), epochs=5, verbose=0)
    return model, shapes(8, 48, seed=1).images


def identity_model(shape=(12, 14, 3)):
    """Input -> Identity ("same") -> conv: the identity layer's features are the image."""
    inp = keras.Input(shape)
    x = keras.layers.Identity(name="same")(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", name="conv", kernel_initializer=seeded(5))(x)
    return keras.Model(inp, x, name="identity_net")


def test_feature_match_closed_form():
    rng = np.random.default_rng(0)
    act = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    target = rng.normal(size=(3, 4, 5, 2)).astype(np.float32)
    sq = ((act.astype(np.float64) - target) ** 2).sum((1, 2, 3))
    for normalize, expected in ((True, sq / (target.astype(np.float64) ** 2).sum((1, 2, 3))),
                                (False, 0.5 * sq)):
        term = O.feature_match("any", target, normalize=normalize).terms[0]
        got = O.evaluate("feature_match", tf.constant(act),
                         [tf.constant(v) for v in term.arrays().values()])
        np.testing.assert_allclose(-np.asarray(got), expected, rtol=1e-5)
    # other targets of the same shape: same step signature (no retrace)
    a = O.feature_match("conv", target)
    b = O.feature_match("conv", target[::-1] * 2)
    assert a.signature(["conv"]) == b.signature(["conv"]) and a.batch == 3
    with pytest.raises(ValueError, match="NaN"):
        O.feature_match("conv", np.full((1, 2, 2, 1), np.nan))


def test_prior_is_the_papers_normalised_alpha_norm_and_tv():
    rng = np.random.default_rng(1)
    img = rng.random((2, 10, 12, 3)).astype(np.float32)
    alpha_norm, tv = prior(10, 12, alpha=6, beta=2, lambda_alpha=3.0, lambda_tv=0.5)
    v = BOUND / 6.5
    expected_alpha = 3.0 * (np.abs(img.astype(np.float64) - 0.5) ** 6).sum((1, 2, 3)) / (
        120 * BOUND**6)
    expected_tv = 0.5 * R.total_variation_np(img, 2.0) / (120 * v**2)
    np.testing.assert_allclose(np.asarray(alpha_norm.penalty(tf.constant(img))),
                               expected_alpha, rtol=1e-4)
    np.testing.assert_allclose(np.asarray(tv.penalty(tf.constant(img))), expected_tv, rtol=1e-4)
    # normalised by the pixel count: a 2x nearest-upsampled image has about the same prior
    big = np.repeat(np.repeat(img, 2, 1), 2, 2)
    a2, _ = prior(20, 24, lambda_alpha=1.0, lambda_tv=1.0)
    a1, _ = prior(10, 12, lambda_alpha=1.0, lambda_tv=1.0)
    np.testing.assert_allclose(np.asarray(a2.penalty(tf.constant(big))),
                               np.asarray(a1.penalty(tf.constant(img))), rtol=1e-4)
    assert prior(8, 8, lambda_alpha=0, lambda_tv=0) == []
    with pytest.raises(ValueError, match="lambda_tv"):
        prior(8, 8, lambda_tv=-1)


def test_identity_features_recover_the_image(fingerprint):
    model = identity_model()
    before = fingerprint(model)
    images = np.random.default_rng(2).uniform(0.05, 0.95, (2, 12, 14, 3)).astype(np.float32)
    kept = images.copy()
    # the model takes values in [-1, 1]: Phi is the mapped image, the result is in [0, 1]
    result = fv.invert(model, "same", images, lambda_alpha=0, lambda_tv=0, steps=150,
                       input_range=(-1, 1), seed=0, verbose=0)
    assert np.array_equal(images, kept) and not np.shares_memory(result.originals, images)
    assert result.images.shape == (1, 2, 12, 14, 3) and result.images.dtype == np.float32
    assert np.all(result.psnr() > 40), result.psnr()
    assert np.all(result.feature_error < 0.01)
    np.testing.assert_array_equal(result["same"], result.images[0])
    assert fingerprint(model) == before


def test_demo_first_conv_keeps_more_than_the_last(demo, fingerprint):
    model, test = demo
    before = fingerprint(model)
    result = fv.invert(model, ["conv1a", "conv3b"], test[:3], steps=250, seed=0, verbose=0)
    assert result.layers == ("conv1a", "conv3b")
    assert result.images.shape == (2, 3, 48, 48, 3)
    assert 0 <= result.images.min() and result.images.max() <= 1
    psnr = result.psnr()
    assert np.all(psnr[0] > psnr[1] + 10), psnr  # (layer, image)
    assert np.all(psnr[0] > 28), psnr
    # the reconstructions' features are Phi_0's within 10% (relative L2 error)
    assert np.all(result.feature_error < 0.1), result.feature_error
    targets = fv.Inverter(model, "conv3b").features(test[:3])["conv3b"]
    got = fv.Inverter(model, "conv3b").features(result["conv3b"])["conv3b"]
    rel = np.linalg.norm((got - targets).reshape(3, -1), axis=1) / np.linalg.norm(
        targets.reshape(3, -1), axis=1)
    np.testing.assert_allclose(rel, result.feature_error[1], rtol=1e-4, atol=1e-6)
    # the relative feature error fell from the start
    assert np.all(result.values[:, -1] > result.values[:, 0])
    assert fingerprint(model) == before
    fig = result.figure()
    assert len(fig.axes) == 3 * 3
    assert [ax.get_title() for ax in fig.axes[:3]] == ["original", "conv1a", "conv3b"]


def test_seeded_bitwise_and_other_images_do_not_retrace():
    model = gap_dense_model()
    rng = np.random.default_rng(3)
    a, b = rng.random((2, 3, 16, 20, 3)).astype(np.float32)
    inverter = fv.Inverter(model, ["c1", "c2"])
    first = inverter.run(a, steps=5, seed=1, verbose=0)
    again = inverter.run(a, steps=5, seed=1, verbose=0)
    assert np.array_equal(first.images, again.images)  # bitwise
    assert first.seeds == (1, 2, 3)
    assert not np.allclose(inverter.run(a, steps=5, seed=2, verbose=0).images, first.images)
    traces = inverter.traces
    assert traces == 2  # one step per layer
    other = inverter.run(b, steps=5, seed=1, verbose=0)
    assert inverter.traces == traces
    assert not np.allclose(other.images, first.images)
    # an image's reconstruction does not depend on the batch it is in
    alone = inverter.run(a[1:2], steps=5, seed=[2], verbose=0)
    np.testing.assert_allclose(alone.images[:, 0], first.images[:, 1], atol=1e-5)
    fresh = fv.invert(model, ["c1", "c2"], a, steps=5, seed=1, verbose=0)
    assert np.array_equal(fresh.images, first.images)


def test_nested_layer_path(fingerprint):
    model = nested_model()  # Rescaling(1/255) then the nested "base" model: input in 0..255
    before = fingerprint(model)
    # white noise: the natural-image prior would smooth it away, so it is off here
    images = np.random.default_rng(4).random((2, 16, 20, 3)).astype(np.float32)
    result = fv.invert(model, "base/convA", images, lambda_alpha=0, lambda_tv=0, steps=60,
                       input_range=(0, 255), seed=0, verbose=0)
    assert result.layers == ("base/convA",)
    assert np.all(result.feature_error < 0.05), result.feature_error
    assert np.all(result.psnr() > 30), result.psnr()
    assert fingerprint(model) == before


def test_bad_inputs_raise_clear_errors():
    model = gap_dense_model()
    images = np.random.default_rng(5).random((2, 16, 20, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="nope"):
        fv.invert(model, "nope", images, verbose=0)
    with pytest.raises(ValueError, match="is the input of model"):
        fv.invert(model, model.layers[0], images, verbose=0)
    with pytest.raises(ValueError, match=r"takes images of shape \(16, 20, 3\).*resize"):
        fv.invert(model, "c1", images[:, :12], verbose=0)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        fv.invert(model, "c1", images[0, :, :, 0], verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fv.invert(model, "c1", images * 255, verbose=0)
    with pytest.raises(ValueError, match="empty"):
        fv.Inverter(model, [])
    with pytest.raises(ValueError, match="lambda_alpha"):
        fv.Inverter(model, "c1", lambda_alpha=-1)
    with pytest.raises(KeyError, match="c1"):
        fv.invert(model, "c1", images, steps=1, verbose=0)["c2"]
