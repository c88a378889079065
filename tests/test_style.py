"""Neural style transfer (Gatys et al. 2016) and its Gram-matrix loss on the one loop."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, seeded

import tfvis.featurevis as fv
from tfvis.featurevis import objectives as O


def mini_vgg(size=None, width=4):
    """keras.applications VGG's layer names on a tiny seeded network (fast on CPU); any image
    size by default, like ``VGG16(include_top=False)``."""
    inp = keras.Input((size, size, 3))
    x, k = inp, 0
    for block, convs in enumerate((2, 2, 3, 3, 3), 1):
        for c in range(1, convs + 1):
            k += 1
            x = keras.layers.Conv2D(width * min(2 ** (block - 1), 4), 3, padding="same",
                                    activation="relu", name=f"block{block}_conv{c}",
                                    kernel_initializer=seeded(k))(x)
        x = keras.layers.MaxPooling2D(name=f"block{block}_pool")(x)
    return keras.Model(inp, x, name="mini_vgg")


@pytest.fixture(scope="module")
def pictures():
    """Two content images (shapes) and a striped style image of another size."""
    from tfvis.datasets import shapes

    content = shapes(3, 32, seed=1).images
    yy, xx = np.mgrid[:40, :40]
    style = 0.5 + 0.4 * np.sin(yy[..., None] / 1.5 + xx[..., None] / 2.0 + np.arange(3) * 2.0)
    return content, np.clip(style, 0, 1).astype(np.float32)


def test_gram_matrix_closed_form_and_style_loss():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    expected = np.einsum("nhwc,nhwd->ncd", feats.astype(np.float64), feats)
    got = fv.gram_matrix(feats)
    assert got.shape == (2, 6, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(fv.gram_matrix(feats, normalize=True), expected / 35, rtol=1e-5,
                               atol=1e-5)
    # gram_match scores -E_l = -sum (G - A)^2 / (4 N^2 M^2) (Gatys et al. eq. 4)
    style = rng.normal(size=(2, 5, 7, 6)).astype(np.float32)
    a = np.einsum("nhwc,nhwd->ncd", style.astype(np.float64), style)
    e_l = ((expected - a) ** 2).sum((1, 2)) / (4 * 6**2 * 35**2)
    term = O.gram_match("any", fv.gram_matrix(style, normalize=True)).terms[0]
    score = O.evaluate("gram_match", tf.constant(feats),
                       [tf.constant(v) for v in term.arrays().values()])
    np.testing.assert_allclose(-np.asarray(score), e_l, rtol=1e-4)
    with pytest.raises(ValueError, match="square"):
        O.gram_match("any", np.zeros((2, 3, 4)))
    # the one-matmul gradient F (dG + dG^T) equals TensorFlow's own matmul gradient
    weights = tf.constant(rng.normal(size=(2, 6, 6)).astype(np.float32))
    x = tf.constant(feats)
    grads = []
    for fn in (O.gram_sums, lambda a: tf.einsum("nhwc,nhwd->ncd", a, a)):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(fn(x) * weights)
        grads.append(tape.gradient(total, x).numpy())
    np.testing.assert_allclose(grads[0], grads[1], rtol=1e-4, atol=1e-4)
    # symmetric=True (2 F dG, no transpose) is exact when dG is symmetric, as gram_match's is
    sym = weights + tf.transpose(weights, [0, 2, 1])
    grads = []
    for flag in (False, True):
        with tf.GradientTape() as tape:
            tape.watch(x)
            total = tf.reduce_sum(O.gram_sums(x, symmetric=flag) * sym)
        grads.append(tape.gradient(total, x).numpy())
    np.testing.assert_allclose(grads[1], grads[0], rtol=1e-5, atol=1e-5)
    lopsided = rng.normal(size=(6, 6)).astype(np.float32)
    (stored,) = O.gram_match("any", lopsided).terms[0].arrays().values()
    np.testing.assert_allclose(stored[0], (lopsided + lopsided.T) / 2, rtol=1e-6)


def test_style_transfer_lowers_style_loss_keeps_content(pictures, fingerprint):
    content, style = pictures
    model = mini_vgg()
    before = fingerprint(model)
    result = fv.style_transfer(model, content[:2], style, beta=100.0, steps=60, seed=0,
                               verbose=0)
    # the VGG default layers were found by name
    assert result.style_layers == ("block1_conv1", "block2_conv1", "block3_conv1",
                                   "block4_conv1", "block5_conv1")
    assert result.content_layers == ("block4_conv2",)
    images = result.images
    assert images.shape == (2, 32, 32, 3) and images.dtype == np.float32
    assert images.min() >= 0 and images.max() <= 1
    start, end = result.style_loss
    assert np.all(end * 10 <= start), result.style_loss
    # started from the content, whose loss is 0 there, and kept it: relative feature error
    # at block4_conv2 below 0.3, and below that of the other content image and of the style
    # image itself
    assert np.all(result.content_error < 0.3), result.content_error
    transfer = fv.StyleTransfer(model)
    content_obj, _ = transfer.objectives(content[:2], style[None])
    relative = O.feature_match("block4_conv2", content_obj.terms[0].arrays()["target"])
    for other in (content[[1, 0]], np.stack([style[:32, :32]] * 2)):
        error = np.sqrt(-fv.score_images(model, relative, other))
        assert np.all(result.content_error < error), (result.content_error, error)
    np.testing.assert_allclose(result.content_error,
                               np.sqrt(-fv.score_images(model, relative, images)), rtol=1e-5)
    assert np.all(result.content_loss[0] == 0)
    tv = fv.regularizers.total_variation_np(images)
    assert np.all(np.isfinite(tv)) and np.all(np.isfinite(result.losses))
    # the loss the loop minimised fell
    assert np.all(result.losses[-1] < result.losses[0])
    assert fingerprint(model) == before


def test_noise_start_is_seeded_and_other_images_do_not_retrace(pictures):
    content, style = pictures
    model = mini_vgg()
    transfer = fv.StyleTransfer(model, tv_weight=1e-4)
    first = transfer.run(content[:2], style, steps=4, init="noise", seed=3, verbose=0)
    again = transfer.run(content[:2], style, steps=4, init="noise", seed=3, verbose=0)
    assert np.array_equal(first.images, again.images)  # bitwise
    other_seed = transfer.run(content[:2], style, steps=4, init="noise", seed=4, verbose=0)
    assert not np.allclose(other_seed.images, first.images)
    traces = transfer.traces
    assert traces == 1
    # other content and another style image of the same shapes: same compiled step
    flipped = np.ascontiguousarray(style[::-1])
    other = transfer.run(content[1:], flipped, steps=4, init="noise", seed=3, verbose=0)
    assert transfer.traces == traces
    assert not np.allclose(other.images, first.images)
    # the one-call function gives the same images as the reused object
    fresh = fv.style_transfer(model, content[:2], style, tv_weight=1e-4, steps=4,
                              init="noise", seed=3, verbose=0)
    assert np.array_equal(fresh.images, first.images)


def test_explicit_layers_on_a_nested_model_and_one_style_per_image(pictures):
    from conftest import nested_model

    content, style = pictures
    model = nested_model()  # input 16x20, values in 0..255 (a Rescaling layer first)
    small = content[:2, :16, :20]
    styles = np.stack([style[:16, :20], content[2, 8:24, 4:24]])  # stripes, a shape
    result = fv.style_transfer(model, small, styles, content_layers="base/convB",
                               style_layers=["base/convA", "base/convB"], style_weights=[1, 2],
                               input_range=(0, 255), alpha=0.0, init="noise", steps=40,
                               verbose=0)
    assert result.style_layers == ("base/convA", "base/convB")
    assert np.all(result.style_loss[1] * 10 < result.style_loss[0])
    # one style image per content image (texture synthesis, alpha=0): image i matched style
    # i's Gram matrices, closer than to the other style's
    transfer = fv.StyleTransfer(model, content_layers="base/convB",
                                style_layers=["base/convA", "base/convB"],
                                style_weights=[1, 2], input_range=(0, 255))
    own = [transfer.objectives(small, styles[[i, i]])[1] for i in range(2)]
    scores = np.stack([fv.score_images(model, o, result.images, input_range=(0, 255))
                       for o in own])  # (style, image): minus the style loss
    assert scores[0, 0] > scores[1, 0] and scores[1, 1] > scores[0, 1], scores


def test_bad_inputs_raise_clear_errors(pictures):
    content, style = pictures
    plain = gap_dense_model()
    with pytest.raises(ValueError, match=r"not a keras.applications VGG16/VGG19.*c1, c2"):
        fv.style_transfer(plain, content[:1, :16, :20], style[:16, :20], verbose=0)
    with pytest.raises(ValueError, match="content_layers"):
        fv.StyleTransfer(plain, style_layers=["c1"])
    with pytest.raises(ValueError, match="nope"):
        fv.StyleTransfer(mini_vgg(), style_layers=["nope"])
    model = mini_vgg(32)
    with pytest.raises(ValueError, match="init"):
        fv.style_transfer(model, content[:1], style, init="zeros", verbose=0)
    with pytest.raises(ValueError, match="model 'mini_vgg' takes images of shape"):
        fv.style_transfer(model, content[:1, :30], style, verbose=0)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        fv.style_transfer(model, content[:1] * 255, style, verbose=0)
    with pytest.raises(ValueError, match="style_weights"):
        fv.StyleTransfer(model, style_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match="one style image, or one per content image"):
        fv.style_transfer(model, content[:3], np.stack([style[:32, :32]] * 2), verbose=0)


def test_vgg16_defaults_resolve_without_weights():
    vgg = keras.applications.VGG16(weights=None, include_top=False, input_shape=(32, 32, 3))
    transfer = fv.StyleTransfer(vgg)
    assert transfer.style_layers[0] == "block1_conv1"
    assert transfer.content_layers == ("block4_conv2",)
