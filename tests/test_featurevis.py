"""The feature-visualisation engine: closed forms, finite differences, batches and seeds."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, nested_model, seeded

from tfvis.featurevis import Visualizer, objectives as O, params as P, regularizers as R
from tfvis.featurevis import transforms as T
from tfvis.featurevis import visualize


def linear_model(w):
    """``S(I) = w . I`` (one logit, no bias)."""
    inp = keras.Input(w.shape)
    x = keras.layers.Flatten()(inp)
    out = keras.layers.Dense(1, use_bias=False, name="score")(x)
    model = keras.Model(inp, out)
    model.get_layer("score").set_weights([w.reshape(-1, 1)])
    return model


def test_linear_model_l2_optimum_is_w_over_2_lambda():
    rng = np.random.default_rng(0)
    lam = 0.5
    w = rng.uniform(0.2, 0.8, (4, 5, 3)).astype("float32")  # optimum w / (2 lam) in (0.2, 0.8)
    model = linear_model(w)
    result = visualize(model, O.class_logit(0), param=P.Pixel("clip"), transforms=(),
                       regularizers=[R.L2(lam)], optimizer=keras.optimizers.SGD(0.5),
                       steps=60, verbose=0)
    expected = w / (2 * lam)
    rel = np.abs(result.images[0] - expected).max() / np.abs(expected).max()
    assert rel < 1e-3, rel
    # the sigmoid-squashed pixels reach the same optimum (more slowly)
    squashed = visualize(model, O.class_logit(0), param="pixel", transforms=(),
                         regularizers=[R.L2(lam)], optimizer=keras.optimizers.SGD(2.0),
                         steps=400, verbose=0)
    rel = np.abs(squashed.images[0] - expected).max() / np.abs(expected).max()
    assert rel < 1e-3, rel
    # the objective value increased monotonically for plain gradient ascent
    total = -result.losses[:, 0]
    assert np.all(np.diff(total) >= -1e-5)


def _fd_check(reg, shape=(2, 5, 6, 3), seed=0, eps=1e-3):
    rng = np.random.default_rng(seed)
    img = rng.uniform(0.1, 0.9, shape)
    x = tf.constant(img, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(x)
        value = reg.penalty(x)
        total = tf.reduce_sum(value)
    grad = tape.gradient(total, x).numpy()
    for _ in range(12):
        idx = tuple(int(rng.integers(s)) for s in shape)
        up, down = img.copy(), img.copy()
        up[idx] += eps
        down[idx] -= eps
        fd = (float(tf.reduce_sum(reg.penalty(tf.constant(up))))
              - float(tf.reduce_sum(reg.penalty(tf.constant(down))))) / (2 * eps)
        assert abs(fd - grad[idx]) <= 1e-5 + 1e-4 * abs(fd), (idx, fd, grad[idx])
    return img, value.numpy()


@pytest.mark.parametrize("beta", [1.0, 2.0, 3.0])
def test_total_variation_value_and_gradient(beta):
    reg = R.TotalVariation(weight=1.0, beta=beta, eps=1e-8 if beta < 2 else 0.0)
    img, value = _fd_check(reg)
    ref = R.total_variation_np(img, beta, 1e-8 if beta < 2 else 0.0)
    np.testing.assert_allclose(value, ref, rtol=1e-9)
    # hand-computed value on a 2x2 image: one pixel with both neighbours
    tiny = np.zeros((1, 2, 2, 1))
    tiny[0, 0, 1, 0], tiny[0, 1, 0, 0] = 3.0, 4.0
    assert float(R.TotalVariation(1.0, beta=1.0, eps=0.0).penalty(tf.constant(tiny))[0]) == \
        pytest.approx(5.0)
    constant = tf.fill((2, 6, 7, 3), 0.3)
    assert np.all(reg.penalty(constant).numpy() == 0.0)
    # the closed-form gradient of a flat image is a subgradient (0), never NaN, even
    # without eps
    for eps in (0.0, 1e-8):
        with tf.GradientTape() as tape:
            tape.watch(constant)
            flat = R.TotalVariation(1.0, beta=beta, eps=eps).penalty(constant)
        assert np.all(tape.gradient(flat, constant).numpy() == 0.0)


@pytest.mark.parametrize("alpha", [2.0, 6.0])
def test_alpha_norm_value_and_gradient(alpha):
    reg = R.AlphaNorm(weight=1.0, alpha=alpha, center=0.5)
    img, value = _fd_check(reg)
    np.testing.assert_allclose(value, (np.abs(img - 0.5) ** alpha).sum(axis=(1, 2, 3)),
                               rtol=1e-9)


def test_batch_of_channels_equals_single_runs_and_seeds():
    model = gap_dense_model()
    vis = Visualizer(model)
    batch = vis.run(O.channel("c2", range(4)), steps=6, seed=3, verbose=0)
    for c in range(4):
        single = vis.run(O.channel("c2", c), steps=6, seed=3 + c, verbose=0)
        np.testing.assert_allclose(single.images[0], batch.images[c], rtol=0, atol=1e-6)
    assert batch.images.dtype == np.float32 and batch.images.shape == (4, 16, 20, 3)
    assert 0.0 <= batch.images.min() and batch.images.max() <= 1.0
    again = vis.run(O.channel("c2", range(4)), steps=6, seed=3, verbose=0)
    assert np.array_equal(again.images, batch.images)  # bitwise
    other = vis.run(O.channel("c2", range(4)), steps=6, seed=4, verbose=0)
    assert not np.allclose(other.images, batch.images)
    # other channels of the same layer reuse the compiled step
    traces = vis.traces
    vis.run(O.channel("c2", [5, 1, 0, 2]), steps=2, verbose=0)
    assert vis.traces == traces
    assert batch.labels == ("channel 0", "channel 1", "channel 2", "channel 3")
    assert batch.values.shape == (6, 4) and batch.values[-1].mean() > batch.values[0].mean()


def test_filters_do_not_depend_on_batch_size():
    from tfvis.featurevis import filters

    model = gap_dense_model()
    a = filters(model, "c1", channels=range(5), steps=4, batch_size=5, verbose=0)
    b = filters(model, "c1", channels=range(5), steps=4, batch_size=2, verbose=0)
    np.testing.assert_allclose(a.images, b.images, rtol=0, atol=1e-6)
    assert a.labels[4] == "channel 4"
    with pytest.raises(ValueError, match="has 8 channels"):
        filters(model, "c1", channels=[9], steps=1, verbose=0)


def test_nested_base_inner_layer_and_model_unchanged(fingerprint):
    from tfvis.featurevis import filters

    model = nested_model()  # Rescaling(1/255) -> base (nested functional) -> GAP -> Dense
    before = fingerprint(model)
    result = filters(model, "base/convB", channels=range(3), steps=10, input_range=(0, 255),
                     redirect_relu=5, verbose=0)
    assert result.images.shape == (3, 16, 20, 3)
    assert result.layer == "base/convB"
    assert fingerprint(model) == before


def test_objectives_compose_and_score():
    model = gap_dense_model(activation="softmax")
    x = np.random.default_rng(1).random((3, 16, 20, 3)).astype("float32")
    from tfvis.featurevis import score_images
    from tfvis.surgery.graph import capture
    from tfvis.surgery.heads import logits_replacements

    c1 = capture(model, x, ["c1"])["c1"].numpy()
    logits = capture(model, x, [], replace=logits_replacements(model), outputs=True)[1].numpy()
    np.testing.assert_allclose(score_images(model, O.channel("c1", 2), x),
                               c1[..., 2].mean((1, 2)), rtol=1e-5)
    np.testing.assert_allclose(score_images(model, O.neuron("c1", 2), x), c1[:, 8, 10, 2],
                               rtol=1e-5)
    np.testing.assert_allclose(score_images(model, O.class_logit([0, 1, 3]), x),
                               logits[[0, 1, 2], [0, 1, 3]], rtol=1e-5)
    combo = 2.0 * O.channel("c1", 2) - O.layer_norm("c1")
    np.testing.assert_allclose(score_images(model, combo, x),
                               2 * c1[..., 2].mean((1, 2)) - (c1**2).mean((1, 2, 3)), rtol=1e-5)
    vec = np.arange(8, dtype="float32")
    np.testing.assert_allclose(score_images(model, O.direction("c1", vec), x),
                               (c1.mean((1, 2)) * vec).sum(-1), rtol=1e-5)
    assert combo.description == "2 * channel('c1', 2) - layer_norm('c1')"
    div = score_images(model, O.diversity("c1"), np.concatenate([x[:1], x[:1]]))
    np.testing.assert_allclose(div, [-1.0, -1.0], rtol=1e-5)  # identical images: similarity 1
    with pytest.raises(ValueError, match="different batch sizes"):
        O.channel("c1", range(3)) + O.channel("c1", range(4))
    with pytest.raises(ValueError, match="no layer 'c3'"):
        visualize(model, O.channel("c3", 0), steps=1, verbose=0)


def test_fourier_and_pixel_invert_and_colour_matrix():
    rng = np.random.default_rng(0)
    images = rng.uniform(0.05, 0.95, (2, 12, 9, 3)).astype("float32")
    for param in (P.Fourier(), P.Pixel(), P.Pixel("clip"),
                  P.Fourier(color=P.color_decorrelation(images))):
        v = param.from_images(images)
        back = param.image(tf.constant(v), 12, 9, 3).numpy()
        np.testing.assert_allclose(back, images, atol=1e-4)
    m = P.color_decorrelation(images)
    assert m.shape == (3, 3) and np.isclose(np.linalg.norm(m, axis=0).max(), 1.0)
    # the matrix is a square root of the colour covariance (up to the normalisation)
    cov = np.cov(images.reshape(-1, 3), rowvar=False)
    ratio = (m @ m.T) / cov
    np.testing.assert_allclose(ratio, ratio[0, 0], rtol=1e-4)
    with pytest.raises(ValueError, match="param='pixel'"):
        Visualizer(gap_dense_model(), param="fourier", regularizers=[R.Blur()])


def test_transforms_are_exact_shifts_and_seeded():
    img = tf.constant(np.random.default_rng(0).random((2, 8, 10, 1)), tf.float32)
    draws = tf.constant([[1.0, 0.0, 0.5, 0.5, 0.0, 0.0], [0.5, 0.5, 0.5, 0.5, 0.25, 0.5]])
    out = T.apply(img, draws, (T.Jitter(2),)).numpy()
    # image 0: shifted by +2 rows and -2 columns
    np.testing.assert_array_equal(out[0, :6, 2:], img.numpy()[0, 2:, :8])
    # borders reflected half-sample symmetrically (the edge pixel repeats: ... b a | a b ...)
    np.testing.assert_array_equal(out[0, 6:, 2:], img.numpy()[0][[7, 6], :8])
    np.testing.assert_array_equal(out[0, :6, :2], img.numpy()[0][2:, [1, 0]])
    np.testing.assert_array_equal(out[1], img.numpy()[1])  # zero shift
    rolled = T.apply(img, draws, (T.Roll(),)).numpy()
    np.testing.assert_array_equal(rolled[1], np.roll(img.numpy()[1], (-2, -5), (0, 1)))
    # a roll's gradient is the inverse roll, exactly
    g = tf.constant(np.random.default_rng(1).random((2, 8, 10, 1)), tf.float32)
    with tf.GradientTape() as tape:
        tape.watch(img)
        back = tape.gradient(T.apply(img, draws, (T.Roll(),)), img, output_gradients=g)
    np.testing.assert_array_equal(back.numpy()[1], np.roll(g.numpy()[1], (2, 5), (0, 1)))
    same = T.apply(img, draws, (T.Scale(1, 1), T.Rotate(0))).numpy()
    np.testing.assert_allclose(same, img.numpy(), atol=1e-6)
    with pytest.raises(TypeError, match="not a transform"):
        T.check(["jitter"])


def test_fourier_images_shift_circularly_by_a_phase_ramp():
    rng = np.random.default_rng(0)
    shift = tf.constant([[2.0, -3.0], [0.0, 0.0], [-5.0, 4.0]])
    for h, w in ((64, 64), (12, 9), (7, 10)):
        param = P.Fourier()
        v = tf.constant(rng.normal(0, 0.5, param.variable_shape(3, h, w, 3)).astype("float32"))
        g = tf.constant(rng.normal(size=(3, h, w, 3)).astype("float32"))
        # the XLA cluster (a CPU) and the plain kernels (elsewhere)
        for render in (P.renderer(param, h, w, 3, device="/device:CPU:0"),
                       P.renderer(param, h, w, 3, device="/device:GPU:0")):
            plain = render(v).numpy()
            with tf.GradientTape(persistent=True) as tape:
                tape.watch(v)
                moved = render(v, shift)
                total = tf.reduce_sum(moved * g)
                unmoved = tf.reduce_sum(render(v) * np.stack(
                    [np.roll(g[i], tuple(shift[i].numpy().astype(int)), (0, 1))
                     for i in range(3)]))
            for i, (dy, dx) in enumerate(shift.numpy().astype(int)):
                # out[y, x] = image[y + dy, x + dx], wrapping around
                np.testing.assert_allclose(moved[i], np.roll(plain[i], (-dy, -dx), (0, 1)),
                                           rtol=0, atol=1e-6)
            # the gradient is the gradient of the unshifted image, shifted back
            a, b = tape.gradient(total, v).numpy(), tape.gradient(unmoved, v).numpy()
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-4 * np.abs(b).max())
    # only integer shifts take this path; with scale / rotate it is the one resampling
    assert T.only_shifts((T.Jitter(2),)) and T.only_shifts((T.Jitter(2), T.Roll()))
    assert not T.only_shifts(()) and not T.only_shifts((T.Jitter(2), T.Scale()))


def test_fourier_jitter_runs_without_resampling_and_batch_invariant():
    model = gap_dense_model(input_shape=(16, 16, 3))
    vis = Visualizer(model, transforms=(T.Jitter(2),), regularizers=[R.L2(0.1)])
    batch = vis.run(O.channel("c2", range(3)), steps=5, seed=3, verbose=0)
    step = next(iter(next(iter(vis._states.values()))["steps"].values()))
    ops = {op.type for f in step._list_all_concrete_functions_for_serialization()
           for op in f.graph.get_operations()}
    assert "ImageProjectiveTransformV3" not in ops  # a phase ramp, no resampling
    for c in range(3):
        single = vis.run(O.channel("c2", c), steps=5, seed=3 + c, verbose=0)
        np.testing.assert_allclose(single.images[0], batch.images[c], rtol=0, atol=1e-5)
    # with a penalty the unshifted image is rendered too; the penalised loss goes down
    assert np.all(np.isfinite(batch.losses)) and np.all(batch.losses[-1] < batch.losses[0])
    pixels = Visualizer(model, param="pixel", transforms=(T.Jitter(2),))
    pixels.run(O.channel("c2", 0), steps=1, verbose=0)
    step = next(iter(next(iter(pixels._states.values()))["steps"].values()))
    assert "ImageProjectiveTransformV3" in {
        op.type for f in step._list_all_concrete_functions_for_serialization()
        for op in f.graph.get_operations()}


def test_redirected_relu_wakes_a_dead_channel():
    inp = keras.Input((6, 6, 1))
    x = keras.layers.Conv2D(2, 3, padding="same", activation="relu", name="conv",
                            kernel_initializer=seeded(0))(inp)
    model = keras.Model(inp, x)
    kernel = np.zeros((3, 3, 1, 2), "float32")
    kernel[1, 1, 0, 0] = 1.0
    kernel[1, 1, 0, 1] = 1.0
    model.get_layer("conv").set_weights([kernel, np.array([0.0, -10.0], "float32")])
    start = np.full((1, 6, 6, 1), 0.5, "float32")  # channel 1: 0.5 - 10 < 0 everywhere
    common = dict(start=start, param=P.Pixel("clip"), transforms=(), steps=1, verbose=0,
                  optimizer=keras.optimizers.SGD(0.1))
    off = visualize(model, O.channel("conv", 1), **common)
    assert np.array_equal(off.images, start)  # the true gradient is exactly zero
    on = visualize(model, O.channel("conv", 1), redirect_relu=1, **common)
    assert np.all(on.images > start)  # pushed towards turning the channel on
    # the gate's rule on hand-picked values: on units keep R; off units pass R only if R < 0
    from tfvis.surgery.gates import gate

    f = tf.constant([-1.0, -1.0, 2.0, 2.0])
    r = tf.constant([-3.0, 3.0, -3.0, 3.0])
    with tf.GradientTape() as tape:
        tape.watch(f)
        y = gate(tf.nn.relu, "redirected")(f)
    np.testing.assert_array_equal(tape.gradient(y, f, output_gradients=r), [-3.0, 0.0, -3.0, 3.0])
    np.testing.assert_array_equal(y, tf.nn.relu(f))


def _is_compiled(fn):
    return fn.xla


def test_fourier_rendering_on_xla_matches_the_kernels():
    rng = np.random.default_rng(0)
    param, h, w = P.Fourier(), 64, 64
    assert h * w >= P.XLA_MIN_PIXELS
    fast = P.renderer(param, h, w, 3, device="/job:localhost/replica:0/task:0/device:CPU:0")
    assert _is_compiled(fast)
    # small images, GPUs and pixels keep the plain kernels
    assert not _is_compiled(P.renderer(param, 16, 20, 3, device="/device:CPU:0"))
    assert not _is_compiled(P.renderer(param, h, w, 3, device="/device:GPU:0"))
    assert not _is_compiled(P.renderer(P.Pixel(), h, w, 3, device="/device:CPU:0"))
    v = tf.Variable(rng.normal(0, 0.5, param.variable_shape(3, h, w, 3)).astype("float32"))
    g = tf.constant(rng.normal(size=(3, h, w, 3)).astype("float32"))
    out = []
    for render in (fast, lambda x: param.image(x, h, w, 3)):
        with tf.GradientTape() as tape:
            img = render(v)
            total = tf.reduce_sum(img * g)
        out.append((img.numpy(), tape.gradient(total, v).numpy()))
    (img, grad), (ref, ref_grad) = out
    assert img.std() > 0.05  # a real image, not a constant
    np.testing.assert_allclose(img, ref, rtol=0, atol=1e-6)
    np.testing.assert_allclose(grad, ref_grad, rtol=0, atol=1e-5 * np.abs(ref_grad).max())
    # one image alone renders as it does in the batch
    alone = P.renderer(param, h, w, 3, device="/device:CPU:0")(tf.constant(v[1:2]))
    np.testing.assert_allclose(alone.numpy()[0], img[1], rtol=0, atol=1e-7)


def test_xla_rendered_runs_are_seeded_and_batch_invariant():
    model = gap_dense_model(input_shape=(64, 64, 3))
    vis = Visualizer(model)
    batch = vis.run(O.channel("c2", range(2)), steps=4, seed=5, verbose=0)
    assert _is_compiled(next(iter(vis._states.values()))["render"])
    for c in range(2):
        single = vis.run(O.channel("c2", c), steps=4, seed=5 + c, verbose=0)
        np.testing.assert_allclose(single.images[0], batch.images[c], rtol=0, atol=1e-6)
    again = vis.run(O.channel("c2", range(2)), steps=4, seed=5, verbose=0)
    assert np.array_equal(again.images, batch.images)  # bitwise
    assert batch.values[-1].mean() > batch.values[0].mean()
    traces = vis.traces
    vis.run(O.channel("c2", [4, 3]), steps=1, verbose=0)
    assert vis.traces == traces


def test_default_adam_is_keras_adam_in_one_kernel():
    from tfvis.featurevis.adam import Adam

    rng = np.random.default_rng(0)
    start = rng.normal(size=(3, 5, 4)).astype("float32")
    grads = [tf.constant(rng.normal(size=start.shape).astype("float32")) for _ in range(6)]
    ours, theirs = tf.Variable(start), tf.Variable(start)
    fused, reference = Adam(0.05), keras.optimizers.Adam(0.05)
    fused.build([ours])
    reference.build([theirs])
    for g in grads:
        fused.apply_gradients([(g, ours)])
        reference.apply_gradients([(g, theirs)])
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-5, atol=2e-6)
    assert float(fused.variables[0].numpy()) == 6.0
    assert not np.allclose(ours.numpy(), start)
    # a Visualizer run resets the state: the same seed gives the same images twice
    model = gap_dense_model()
    vis = Visualizer(model, param="pixel", transforms=())
    a = vis.run(O.channel("c2", range(2)), steps=4, seed=1, verbose=0)
    b = vis.run(O.channel("c2", range(2)), steps=4, seed=1, verbose=0)
    assert np.array_equal(a.images, b.images)
    with_keras = Visualizer(model, param="pixel", transforms=(),
                            optimizer=keras.optimizers.Adam(0.05))
    c = with_keras.run(O.channel("c2", range(2)), steps=4, seed=1, verbose=0)
    np.testing.assert_allclose(a.images, c.images, rtol=0, atol=1e-5)


def test_a_run_stops_early_when_asked_and_carries_its_state():
    model = gap_dense_model()
    vis = Visualizer(model, param="pixel")
    seen = []

    def stop(images):
        seen.append(images.copy())
        return len(seen) == 2  # the second check ends the run

    early = vis.run(O.channel("c2", range(2)), steps=20, seed=4, verbose=0, stop=stop,
                    stop_every=3)
    assert early.values.shape == (6, 2) and early.losses.shape == (6, 2)
    assert [s.shape for s in seen] == [(2, 16, 20, 3)] * 2
    assert all(s.min() >= 0 and s.max() <= 1 for s in seen)
    # the same as a 6-step run: the optimiser and the transforms' draws carried on
    six = vis.run(O.channel("c2", range(2)), steps=6, seed=4, verbose=0)
    assert np.array_equal(early.images, six.images) and np.array_equal(seen[1], six.images)
    never = vis.run(O.channel("c2", range(2)), steps=7, seed=4, verbose=0,
                    stop=lambda images: False, stop_every=2)
    assert never.values.shape == (7, 2)
    with pytest.raises(ValueError, match="stop_every"):
        vis.run(O.channel("c2", 0), steps=2, verbose=0, stop=stop, stop_every=0)
