"""tfvis.engine.imageops: one Gaussian blur for every caller, TF resize and normalisation.

The two blurs it replaces are copied below verbatim as references: occlusion's (numpy in/out,
reflected borders, per-axis sigma) and Integrated Gradients' (tensor sigma, zero padding
renormalised at the borders). They agree away from the borders; at the borders the shared
blur follows occlusion (reflection), and the tests pin down how far the IG rule differs.
"""

import numpy as np
import pytest
import tensorflow as tf

from tfvis.engine.imageops import EPS, gaussian_blur, normalize, normalize_tf, resize


def occlusion_blur_reference(x, sigma):
    """tfvis/explainers/occlusion.py::gaussian_blur before the merge."""
    out = tf.constant(x)
    channels = x.shape[-1]
    for axis, s in zip((1, 2), sigma):
        radius = int(min(np.ceil(3 * s), x.shape[axis] - 1))
        if radius < 1:
            continue
        taps = np.exp(-0.5 * (np.arange(-radius, radius + 1) / s) ** 2)
        taps = (taps / taps.sum()).astype(np.float32)
        shape = (len(taps), 1) if axis == 1 else (1, len(taps))
        kernel = np.tile(taps.reshape(shape + (1, 1)), (1, 1, channels, 1))
        pad = [[0, 0], [0, 0], [0, 0], [0, 0]]
        pad[axis] = [radius, radius]
        out = tf.nn.depthwise_conv2d(
            tf.pad(out, pad, mode="REFLECT"), kernel, strides=[1, 1, 1, 1], padding="VALID"
        )
    return out.numpy()


def integrated_blur_reference(x, sigma):
    """tfvis/explainers/integrated.py::gaussian_blur before the merge."""
    radius = tf.cast(tf.math.ceil(3.0 * sigma), tf.int32)
    t = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    kernel = tf.exp(-0.5 * tf.square(t / sigma))
    kernel = kernel / tf.reduce_sum(kernel)
    channels = tf.shape(x)[-1]

    def blur(images):
        rows = tf.tile(tf.reshape(kernel, [-1, 1, 1, 1]), [1, 1, channels, 1])
        cols = tf.reshape(rows, [1, -1, channels, 1])
        images = tf.nn.depthwise_conv2d(images, rows, [1, 1, 1, 1], "SAME")
        return tf.nn.depthwise_conv2d(images, cols, [1, 1, 1, 1], "SAME")

    return blur(x) / blur(tf.ones_like(x[:1]))


def taps(sigma, radius):
    t = np.exp(-0.5 * (np.arange(-radius, radius + 1) / sigma) ** 2)
    return t / t.sum()


def reflect_blur_by_hand(image, sy, sx):
    """Direct 2D sum over reflected indices (no convolution op) for one (H, W) plane."""
    h, w = image.shape
    ry, rx = min(int(np.ceil(3 * sy)), h - 1), min(int(np.ceil(3 * sx)), w - 1)
    ky = taps(sy, ry) if ry > 0 else np.ones(1)
    kx = taps(sx, rx) if rx > 0 else np.ones(1)
    padded = np.pad(image.astype(np.float64), ((ry, ry), (rx, rx)), mode="reflect")
    out = np.zeros((h, w))
    for i in range(h):
        for j in range(w):
            out[i, j] = np.sum(np.outer(ky, kx) * padded[i:i + 2 * ry + 1, j:j + 2 * rx + 1])
    return out


@pytest.fixture
def batch():
    return np.random.default_rng(0).random((2, 11, 13, 3)).astype(np.float32)


@pytest.mark.parametrize("sigma", [(2.0, 2.0), (0.7, 3.0), (4.0, 0.0), (9.0, 9.0), (0.3, 0.3)])
def test_equals_the_occlusion_blur(batch, sigma):
    """Same numbers as occlusion's numpy blur, including the radius cap (sigma 9 > image)."""
    before = batch.copy()
    out = gaussian_blur(batch, sigma)
    assert isinstance(out, tf.Tensor) and out.dtype == tf.float32
    np.testing.assert_allclose(out.numpy(), occlusion_blur_reference(batch, sigma),
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(batch, before)  # the input is never modified


@pytest.mark.parametrize("sigma", [(1.5, 1.5), (0.8, 2.5), (20.0, 0.5)])
def test_equals_a_direct_reflected_sum(batch, sigma):
    out = gaussian_blur(batch, sigma).numpy()
    for c in range(3):
        np.testing.assert_allclose(out[1, :, :, c], reflect_blur_by_hand(batch[1, :, :, c], *sigma),
                                   rtol=1e-5, atol=1e-6)


def test_scalar_sigma_is_both_axes(batch):
    np.testing.assert_array_equal(gaussian_blur(batch, 1.3).numpy(),
                                  gaussian_blur(batch, (1.3, 1.3)).numpy())
    np.testing.assert_array_equal(gaussian_blur(batch, tf.constant(1.3)).numpy(),
                                  gaussian_blur(batch, np.float32(1.3)).numpy())


def test_agrees_with_the_integrated_gradients_blur_away_from_the_borders(batch):
    """Both are the same normalised Gaussian; only the border rule differs.

    IG's old blur zero-padded and divided by the blurred ones (the kernel renormalised over
    the pixels inside the image); reflection instead mirrors the image. Pixels at least the
    radius ``ceil(3 sigma)`` from every border see no padding in either, so they agree.
    """
    sigma = 0.8
    radius = 3
    new = gaussian_blur(tf.constant(batch), tf.constant(sigma)).numpy()
    old = integrated_blur_reference(tf.constant(batch), tf.constant(sigma)).numpy()
    inner = (slice(None), slice(radius, -radius), slice(radius, -radius))
    np.testing.assert_allclose(new[inner], old[inner], rtol=1e-5, atol=1e-6)
    # at the border they differ (documented: reflection was chosen)
    assert np.abs(new[:, 0] - old[:, 0]).max() > 1e-3


def test_the_two_border_rules_by_hand():
    """On a ramp 0..4 with sigma 1 the first pixel shows the two rules apart, by hand."""
    ramp = np.arange(5, dtype=np.float32).reshape(1, 1, 5, 1)
    k = taps(1.0, 3)  # taps at offsets -3..3
    reflected = np.array([3, 2, 1, 0, 1, 2, 3], np.float64)  # neighbours of pixel 0, mirrored
    new = gaussian_blur(ramp, (0.0, 1.0)).numpy()[0, 0, 0, 0]
    assert new == pytest.approx(float(k @ reflected), rel=1e-6)
    inside = k[3:]  # IG: only offsets 0..3 lie inside, renormalised
    old = integrated_blur_reference(tf.constant(np.broadcast_to(ramp, (1, 5, 5, 1))),
                                    tf.constant(1.0)).numpy()[0, 2, 0, 0]
    assert old == pytest.approx(float(inside @ np.arange(4) / inside.sum()), rel=1e-5)
    assert new > old  # reflection pulls the edge towards its neighbours, IG towards the inside


def test_constants_stay_constant_and_a_spike_is_the_kernel():
    flat = np.full((1, 7, 9, 2), 3.0, np.float32)
    np.testing.assert_allclose(gaussian_blur(flat, 1.5).numpy(), flat, rtol=1e-6)
    spike = np.zeros((1, 15, 15, 1), np.float32)
    spike[0, 7, 7, 0] = 1.0
    out = gaussian_blur(spike, 1.0).numpy()[0, :, :, 0]
    k = taps(1.0, 3)
    np.testing.assert_allclose(out[4:11, 4:11], np.outer(k, k), rtol=1e-5)
    assert out.sum() == pytest.approx(1.0, rel=1e-5)


def test_zero_sigma_and_single_pixel_axes_are_the_identity(batch):
    np.testing.assert_array_equal(gaussian_blur(batch, 0.0).numpy(), batch)
    column = batch[:, :, :1]
    out = gaussian_blur(column, (0.0, 5.0)).numpy()
    np.testing.assert_array_equal(out, column)


def test_inside_tf_function_with_dynamic_shapes_and_tensor_sigma(batch):
    calls = []

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, None], tf.float32),
                                  tf.TensorSpec([], tf.float32)], autograph=False)
    def blurred(x, sigma):
        calls.append(1)
        return gaussian_blur(x, sigma)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32),
                                  tf.TensorSpec([2], tf.float32)], autograph=False)
    def blurred_pair(x, sigma):
        return gaussian_blur(x, sigma)

    for s in (0.5, 1.7):
        np.testing.assert_allclose(blurred(batch, s).numpy(),
                                   occlusion_blur_reference(batch, (s, s)), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(blurred(batch[:, :4, :6], 1.0).numpy(),
                               occlusion_blur_reference(batch[:, :4, :6], (1.0, 1.0)),
                               rtol=1e-6, atol=1e-7)
    assert len(calls) == 1
    np.testing.assert_allclose(blurred_pair(batch, [0.6, 2.2]).numpy(),
                               occlusion_blur_reference(batch, (0.6, 2.2)), rtol=1e-6, atol=1e-7)
    with pytest.raises(tf.errors.InvalidArgumentError, match="sigma must be >= 0"):
        blurred(batch, -1.0)


def test_keeps_float_dtypes_and_casts_integers():
    x = np.arange(2 * 5 * 6 * 1).reshape(2, 5, 6, 1)
    assert gaussian_blur(x, 1.0).dtype == tf.float32
    assert gaussian_blur(x.astype(np.float16), 1.0).dtype == tf.float16
    np.testing.assert_allclose(gaussian_blur(x, 1.0).numpy(),
                               gaussian_blur(x.astype(np.float32), 1.0).numpy())


def test_blur_errors_name_the_problem(batch):
    with pytest.raises(ValueError, match=r"\(N, H, W, C\), got shape \(11, 13, 3\)"):
        gaussian_blur(batch[0], 1.0)
    with pytest.raises(ValueError, match=">= 0"):
        gaussian_blur(batch, -0.5)
    with pytest.raises(ValueError, match="finite"):
        gaussian_blur(batch, (1.0, np.nan))
    with pytest.raises(ValueError, match="pair"):
        gaussian_blur(batch, (1.0, 2.0, 3.0))


def test_normalize_is_the_plotting_normalize():
    import tfvis.plotting.images as images

    assert images.normalize is normalize
    m = np.array([[-2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(normalize(m), [[0, 0.5], [0.75, 1]])


def test_normalize_tf_equals_the_explainer_normalisation():
    rng = np.random.default_rng(1)
    maps = np.stack([
        rng.normal(size=(6, 7)),
        np.zeros((6, 7)),                 # constant -> zeros
        np.full((6, 7), -4.0),            # constant, negative -> zeros
        rng.random((6, 7)) * 1e-11,       # tiny but real -> kept
        np.arange(42.0).reshape(6, 7),    # a ramp: values known by hand
    ]).astype(np.float32)
    out = normalize_tf(maps).numpy()
    peak = np.abs(maps).max(axis=(-2, -1), keepdims=True)
    np.testing.assert_allclose(out, normalize(maps / np.where(peak > 0, peak, 1)), atol=1e-6)
    assert not np.any(np.isnan(out))
    np.testing.assert_array_equal(out[1], 0)
    np.testing.assert_array_equal(out[2], 0)
    assert out[3].min() == 0 and out[3].max() == pytest.approx(1.0)
    np.testing.assert_allclose(out[4], np.arange(42.0).reshape(6, 7) / 41, rtol=1e-6)
    assert EPS == 1e-8


def test_normalize_tf_inside_a_compiled_step():
    f = tf.function(normalize_tf, input_signature=[tf.TensorSpec([None, None, None])])
    maps = np.array([[[1.0, 3.0], [2.0, 5.0]], [[7.0, 7.0], [7.0, 7.0]]], np.float32)
    np.testing.assert_allclose(f(maps).numpy(), [[[0, 0.5], [0.25, 1]], [[0, 0], [0, 0]]],
                               rtol=1e-6)
    with pytest.raises(ValueError, match="rank >= 2"):
        normalize_tf(np.ones(3))


def test_resize_by_hand_and_shapes():
    ramp = np.array([[[0.0, 1.0], [0.0, 1.0]]], np.float32)  # (1, 2, 2)
    out = resize(ramp, 4, 4).numpy()
    # half-pixel centres: source columns -0.25, 0.25, 0.75, 1.25 -> clamped, interpolated
    np.testing.assert_allclose(out[0], np.tile([0.0, 0.25, 0.75, 1.0], (4, 1)), atol=1e-6)
    images = np.zeros((2, 3, 5, 3), np.float32)
    assert resize(images, 6, 10).shape == (2, 6, 10, 3)
    assert resize(images, tf.constant(7), 2).shape == (2, 7, 2, 3)
    with pytest.raises(ValueError, match=r"got shape \(3, 5\)"):
        resize(np.zeros((3, 5)), 4, 4)
