"""The CAM family: closed-form answers on tiny hand-set models, and every model kind."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, mixed_float16_twin, seeded

import tfvis
from tfvis.surgery import run_graph

CAM_FAMILY = (tfvis.CAM, tfvis.GradCAM, tfvis.GradCAMPlusPlus, tfvis.CounterfactualGradCAM)


def line_detector(shape=(12, 12, 1)):
    """Conv "det" with channel 0 firing on vertical lines, channel 1 on horizontal ones,
    then GAP -> Dense(identity, softmax): class 0 = "vertical", class 1 = "horizontal"."""
    inp = keras.Input(shape)
    det = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="det")
    head = keras.layers.Dense(2, activation="softmax", name="head")
    out = head(keras.layers.GlobalAveragePooling2D(name="gap")(det(inp)))
    model = keras.Model(inp, out, name="lines")
    kernel = np.zeros((3, 3, 1, 2), np.float32)
    kernel[:, :, 0, 0] = [[-1, 2, -1]] * 3
    kernel[:, :, 0, 1] = kernel[:, :, 0, 0].T
    det.set_weights([kernel, np.zeros(2, np.float32)])
    head.set_weights([np.eye(2, dtype=np.float32), np.zeros(2, np.float32)])
    return model


def vertical_line(col=7, size=12):
    x = np.zeros((1, size, size, 1), np.float32)
    x[0, :, col, 0] = 1.0
    return x


def feature_acts(model, layer, x):
    """The activations of ``layer`` on ``x``, via the graph runner."""
    captured = {}

    def hook(a):
        captured["a"] = a
        return a

    run_graph(model, tf.constant(x), hooks={layer: hook})
    return captured["a"].numpy()


# -- closed forms -----------------------------------------------------------------------------


def test_line_detector_gradcam_is_exact():
    model = line_detector()
    e = tfvis.GradCAM(model, layer="det", verbose=0).explain(vertical_line(7), targets=0)
    # A_0 = 2 * (rows the kernel sees) on column 7, ReLU(-rows) = 0 elsewhere; the logit is
    # mean(A_0), so d logit / d A_0 = 1 / (12 * 12) everywhere and the map is A_0 / 144.
    expected = np.zeros((12, 12), np.float32)
    expected[:, 7] = 6.0
    expected[[0, -1], 7] = 4.0
    np.testing.assert_allclose(e.raw[0], expected / 144, atol=1e-7)
    np.testing.assert_allclose(e.scores, [expected.sum() / 144], rtol=1e-6)  # the logit
    assert np.unravel_index(e.maps[0].argmax(), (12, 12))[1] == 7
    np.testing.assert_allclose(e.maps[0], expected / 6.0, atol=1e-6)
    # Grad-CAM++ weights one channel here, so it normalises to the same map.
    pp = tfvis.GradCAMPlusPlus(model, layer="det", verbose=0).explain(vertical_line(7), 0)
    np.testing.assert_allclose(pp.maps, e.maps, atol=1e-6)


@pytest.mark.parametrize("relu", [True, False])
def test_cam_equals_gradcam_times_area(relu):
    """On Conv -> GAP -> Dense with logit targets, Grad-CAM = CAM / (h * w)."""
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(5, 3, strides=2, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(4))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activation="softmax", name="head",
                             kernel_initializer=seeded(5))(x)
    model = keras.Model(inp, out)
    x = np.random.default_rng(1).random((4, 16, 20, 3)).astype(np.float32)
    targets = [0, 1, 2, 1]
    cam = tfvis.CAM(model, relu=relu, verbose=0).explain(x, targets)
    grad = tfvis.GradCAM(model, relu=relu, verbose=0).explain(x, targets)
    assert cam.layer == grad.layer == "c1"
    area = 8 * 10  # the c1 feature map is 8 x 10, upsampled to 16 x 20
    assert np.abs(cam.raw).max() > 1e-3
    np.testing.assert_allclose(grad.raw * area, cam.raw, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(grad.maps, cam.maps, atol=1e-4)
    np.testing.assert_allclose(cam.scores, grad.scores, rtol=1e-6)
    # CAM closed form: ReLU(sum_k W[k, c] A_k), upsampled.
    acts = feature_acts(model, "c1", x)
    kernel = model.get_layer("head").kernel.numpy()
    manual = np.einsum("nhwk,nk->nhw", acts, kernel[:, targets].T)
    manual = np.maximum(manual, 0) if relu else manual
    manual = tf.image.resize(manual[..., None], (16, 20), method="bilinear")[..., 0].numpy()
    np.testing.assert_allclose(cam.raw, manual, rtol=1e-4, atol=1e-6)


def _gradcampp_numpy(acts, grads):
    """Grad-CAM++ weights (Chattopadhay et al., eq. 19 with Y = exp(S)), the exp(S) dropped."""
    g2, g3 = grads**2, grads**3
    denom = 2 * g2 + acts.sum(axis=(1, 2), keepdims=True) * g3
    alpha = np.divide(g2, denom, out=np.zeros_like(g2), where=denom != 0)
    return (alpha * np.maximum(grads, 0)).sum(axis=(1, 2))


def test_gradcampp_channel_weights_match_hand_computation(model):
    rng = np.random.default_rng(2)
    acts = rng.random((2, 3, 4, 5)).astype(np.float32)
    grads = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    grads[:, :, :, 1] = 0.0  # a dead channel: 0 / 0 must give weight 0, not NaN
    grads[0, 0, 0, 2] = 1e-3
    explainer = tfvis.GradCAMPlusPlus(model, verbose=0)
    got = explainer.channel_weights(tf.constant(acts), tf.constant(grads), None).numpy()
    assert got.shape == (2, 5)
    np.testing.assert_allclose(got, _gradcampp_numpy(acts, grads), rtol=1e-5, atol=1e-7)
    assert np.all(got[:, 1] == 0)
    # A denominator that cancels exactly (2 g^2 + S g^3 = 0 for g = -2 / S) stays finite.
    acts = np.ones((1, 1, 2, 1), np.float32)  # S = 2, so g = -1 zeroes the denominator
    grads = np.array([[[[-1.0], [0.5]]]], np.float32)
    got = explainer.channel_weights(tf.constant(acts), tf.constant(grads), None).numpy()
    assert np.all(np.isfinite(got))
    np.testing.assert_allclose(got, _gradcampp_numpy(acts, grads), rtol=1e-6)


def test_gradcampp_end_to_end_matches_hand_computation(model, images):
    """On a GAP -> Dense head, d logit_c / d A_k = W[k, c] / (h w) in every position."""
    e = tfvis.GradCAMPlusPlus(model, verbose=0).explain(images, targets=2)
    acts = feature_acts(model, "c2", images)
    kernel = model.get_layer("head").kernel.numpy()
    grads = np.broadcast_to(kernel[:, 2] / (16 * 20), acts.shape).astype(np.float32)
    weights = _gradcampp_numpy(acts, grads)
    manual = np.maximum(np.einsum("nhwk,nk->nhw", acts, weights), 0)
    np.testing.assert_allclose(e.raw, manual, rtol=1e-4, atol=1e-8)
    assert np.all(np.isfinite(e.maps))


def test_counterfactual_is_gradcam_with_negated_weights(model, images):
    signed = tfvis.GradCAM(model, relu=False, verbose=0).explain(images, targets=1)
    counter = tfvis.CounterfactualGradCAM(model, relu=False, verbose=0).explain(images, 1)
    assert np.abs(signed.raw).max() > 0
    np.testing.assert_allclose(counter.raw, -signed.raw, rtol=1e-6, atol=1e-9)
    relu = tfvis.CounterfactualGradCAM(model, verbose=0).explain(images, targets=1)
    np.testing.assert_allclose(relu.raw, np.maximum(-signed.raw, 0), rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(relu.scores, signed.scores)


def test_constant_maps_are_zero_with_a_warning():
    model = line_detector()
    blank = np.zeros((2, 12, 12, 1), np.float32)  # no line: every activation is 0
    for cls in CAM_FAMILY:
        with pytest.warns(RuntimeWarning, match="constant"):
            e = cls(model, verbose=0).explain(blank, targets=0)
        assert np.all(e.maps == 0) and np.all(np.isfinite(e.raw))
        assert e.maps.dtype == np.float32


def test_all_negative_evidence_gives_zero_map_not_nan():
    model = line_detector()
    x = vertical_line(5)
    with pytest.warns(RuntimeWarning):
        e = tfvis.CounterfactualGradCAM(model, layer="det", verbose=0).explain(x, targets=0)
    assert np.all(e.maps == 0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real map: no warning
        tfvis.GradCAM(model, layer="det", verbose=0).explain(x, targets=0)


# -- invariances ------------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CAM_FAMILY, ids=lambda c: c.name)
def test_batch_and_chunk_invariance(cls, model, images):
    explainer = cls(model, verbose=0)
    full = explainer.explain(images)
    for i in (0, 3):
        one = explainer.explain(images[i : i + 1])
        np.testing.assert_allclose(one.raw[0], full.raw[i], rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(one.maps[0], full.maps[i], atol=1e-5)
        assert one.targets[0] == full.targets[i]
    for batch_size in (1, 2, len(images)):
        chunked = explainer.explain(images, batch_size=batch_size)
        np.testing.assert_allclose(chunked.raw, full.raw, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(chunked.targets, full.targets)
        np.testing.assert_allclose(chunked.scores, full.scores, rtol=1e-6)


def test_saved_and_reloaded_model_gives_the_same_maps(model, images, tmp_path):
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.models.load_model(path)
    for cls in CAM_FAMILY:
        a = cls(model, verbose=0).explain(images, targets=[0, 1, 2, 3, 0])
        b = cls(reloaded, verbose=0).explain(images, targets=[0, 1, 2, 3, 0])
        assert a.layer == b.layer
        np.testing.assert_allclose(b.raw, a.raw, rtol=1e-6, atol=1e-8)
        np.testing.assert_allclose(b.maps, a.maps, atol=1e-6)


# -- model kinds ------------------------------------------------------------------------------


def test_sequential_equals_functional(model, images):
    seq = keras.Sequential(
        [
            keras.Input((16, 20, 3)),
            keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1"),
            keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2"),
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(4, activation="softmax", name="head"),
        ]
    )
    seq.set_weights(model.get_weights())
    for cls in CAM_FAMILY:
        a = cls(model, verbose=0).explain(images, targets=2)
        b = cls(seq, verbose=0).explain(images, targets=2)
        assert b.layer == "c2"
        np.testing.assert_allclose(b.raw, a.raw, rtol=1e-6, atol=1e-8)


def two_head_model():
    base = gap_dense_model(classes=4)
    pooled = base.get_layer("gap").output
    aux = keras.layers.Dense(3, name="aux", kernel_initializer=seeded(9))(pooled)
    return keras.Model(base.input, [base.output, aux], name="twohead")


def test_multi_output_needs_a_selector_or_a_callable(images):
    model = two_head_model()
    by_name = tfvis.GradCAM(model, output="head", verbose=0).explain(images, targets=1)
    by_index = tfvis.GradCAM(model, output=0, verbose=0).explain(images, targets=1)
    np.testing.assert_allclose(by_index.raw, by_name.raw)
    single = gap_dense_model(classes=4)
    single_e = tfvis.GradCAM(single, verbose=0).explain(images, targets=1)
    np.testing.assert_allclose(by_name.raw, single_e.raw, rtol=1e-6, atol=1e-8)
    aux = tfvis.GradCAM(model, output="aux", verbose=0).explain(images, targets=2)
    aux_last = tfvis.GradCAM(model, output=-1, verbose=0).explain(images, targets=2)
    np.testing.assert_allclose(aux_last.raw, aux.raw)
    assert not np.allclose(aux.raw, by_name.raw)

    unselected = tfvis.GradCAM(model, verbose=0)
    with pytest.raises(ValueError, match="output="):
        unselected.explain(images, targets=1)
    with pytest.raises(ValueError, match="output="):
        unselected.explain(images)
    # A callable sees every output (logits for the softmax head).
    fn = unselected.explain(images, targets=lambda out: out[0][:, 1])
    np.testing.assert_allclose(fn.raw, by_name.raw, rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(fn.scores, by_name.scores, rtol=1e-6)
    with pytest.raises(ValueError, match="no output 'nope'"):
        tfvis.GradCAM(model, output="nope")
    with pytest.raises(ValueError, match="index below 2"):
        tfvis.GradCAM(model, output=2)


def test_dict_outputs_select_the_named_output(images):
    base = gap_dense_model(classes=4)
    pooled = base.get_layer("gap").output
    aux = keras.layers.Dense(3, name="aux", kernel_initializer=seeded(8))(pooled)
    # Dict keys sort differently from insertion order: the selector must follow the graph.
    model = keras.Model(base.input, {"z_class": base.output, "a_aux": aux})
    e = tfvis.GradCAM(model, output="head", verbose=0).explain(images, targets=3)
    ref = tfvis.GradCAM(base, verbose=0).explain(images, targets=3)
    np.testing.assert_allclose(e.raw, ref.raw, rtol=1e-6, atol=1e-8)


def test_mixed_float16_gives_finite_float32_maps(images):
    reference, model = mixed_float16_twin()
    results = {cls.name: cls(model, verbose=0).explain(images, 1) for cls in CAM_FAMILY}
    for cls in CAM_FAMILY:
        e = results[cls.name]
        assert e.maps.dtype == np.float32 and e.raw.dtype == np.float32
        assert e.scores.dtype == np.float32
        assert np.all(np.isfinite(e.maps)) and e.maps.max() == 1.0
        full = cls(reference, verbose=0).explain(images, 1)
        np.testing.assert_allclose(e.maps, full.maps, atol=0.05)  # float16 rounding only


@pytest.mark.slow
def test_resnet152_smoke():
    """The deepest standard backbone, at a small input: auto layer, finite maps."""
    model = keras.applications.ResNet152(weights=None, input_shape=(64, 64, 3), classes=5)
    x = np.random.default_rng(3).random((2, 64, 64, 3)).astype(np.float32) * 255
    e = tfvis.GradCAM(model, relu=False, verbose=0).explain(x, targets=[1, 4])
    assert e.layer == "conv5_block3_out"
    assert e.maps.shape == (2, 64, 64) and e.maps.dtype == np.float32
    np.testing.assert_array_equal(e.maps.max(axis=(1, 2)), [1, 1])
    np.testing.assert_array_equal(e.targets, [1, 4])
    logits = run_graph(model, tf.constant(x), replace=tfvis.GradCAM(model).replace).numpy()
    np.testing.assert_allclose(e.scores, logits[[0, 1], [1, 4]], rtol=1e-4, atol=1e-5)


# -- CAM requirements -------------------------------------------------------------------------


def test_cam_requires_a_gap_dense_head(images):
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(4, 3, name="conv", kernel_initializer=seeded(6))(inp)
    out = keras.layers.Dense(2, name="fc", kernel_initializer=seeded(7))(keras.layers.Flatten()(x))
    flat = keras.Model(inp, out)
    with pytest.raises(ValueError, match="GlobalAveragePooling2D.*GradCAM"):
        tfvis.CAM(flat)
    tfvis.GradCAM(flat, verbose=0).explain(images[:1])  # Grad-CAM works on any head


def test_cam_layer_must_feed_the_head(model, images):
    with pytest.raises(ValueError, match="'c2'"):
        tfvis.CAM(model, layer="c1")
    with pytest.raises(ValueError, match=r"'head' \(Dense\).*rank-4"):
        tfvis.CAM(model, layer="head")
    assert tfvis.CAM(model, layer="c2").layer == "c2"
    with pytest.raises(ValueError, match="class targets"):
        tfvis.CAM(model, verbose=0).explain(images, targets=lambda out: out[:, 0])


def test_cam_head_with_dropout_and_separate_softmax(images):
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat",
                            kernel_initializer=seeded(10))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    x = keras.layers.Dropout(0.5)(x)
    x = keras.layers.Dense(3, name="fc", kernel_initializer=seeded(11))(x)
    out = keras.layers.Softmax()(x)
    model = keras.Model(inp, out)
    cam = tfvis.CAM(model, relu=False, verbose=0).explain(images, targets=2)
    grad = tfvis.GradCAM(model, relu=False, verbose=0).explain(images, targets=2)
    assert cam.layer == "feat"
    atol = 1e-5 * np.abs(cam.raw).max()  # signed maps: values near 0 cancel
    np.testing.assert_allclose(grad.raw * 16 * 20, cam.raw, rtol=1e-4, atol=atol)


def test_automatic_layer_skips_a_1x1_logits_conv():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat",
                            kernel_initializer=seeded(12))(inp)
    x = keras.layers.Conv2D(4, 8, name="logits_conv", kernel_initializer=seeded(13))(x)  # 1 x 1
    out = keras.layers.Flatten()(x)
    model = keras.Model(inp, out)
    assert model.get_layer("logits_conv").output.shape == (None, 1, 1, 4)
    e = tfvis.GradCAM(model, relu=False, verbose=0).explain(np.ones((1, 8, 8, 3)), 0)
    assert e.layer == "feat"
    with pytest.raises(ValueError, match="H and W > 1"):
        tfvis.GradCAM(model, layer="logits_conv")
