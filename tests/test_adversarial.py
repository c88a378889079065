"""Adversarial examples (FGSM, PGD), fooling images and explaining an attack."""

import keras
import numpy as np
import pytest
import tfvis
from tfvis.featurevis.adversarial import Attack, adversarial, explain_adversarial
from tfvis.featurevis.fooling import fooling_image

EPS = 8 / 255


@pytest.fixture(scope="module")
def demo():
    """The demo CNN trained on 1000 48x48 shapes, and 32 held-out test images."""
    from tfvis.datasets import shapes
    from tfvis.demo import train

    keras.utils.set_random_seed(0)
    model = train(shapes(1000, 48, seed=0), epochs=5, verbose=0)
    test = shapes(32, 48, seed=1)
    return model, test.images, test.labels


def linear_model(activation="softmax", shape=(5, 4, 3), classes=4, scale=1.0):
    """Flatten -> Dense: logits of order 1 for inputs in [0, scale] (softmax not saturated)."""
    inp = keras.Input(shape)
    x = keras.layers.Flatten()(inp)
    kernel = keras.initializers.RandomNormal(stddev=0.3 / scale, seed=5)
    out = keras.layers.Dense(classes, activation=activation, kernel_initializer=kernel,
                             bias_initializer=keras.initializers.RandomNormal(seed=6))(x)
    return keras.Model(inp, out)


def linear_grad(model, x, y, scale=1.0):
    """d CE(softmax(W . (scale * x) + b), y) / d x, in float64, by hand."""
    w, b = (np.asarray(v, np.float64) for v in model.layers[-1].get_weights())
    flat = scale * x.reshape(len(x), -1).astype(np.float64)
    logits = flat @ w + b
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    return (scale * (p - np.eye(w.shape[1])[y]) @ w.T).reshape(x.shape)


@pytest.mark.parametrize("scale", [1.0, 255.0])
def test_fgsm_is_the_closed_form_on_a_linear_softmax_model(scale, fingerprint):
    model = linear_model(scale=scale)
    before = fingerprint(model)
    x = np.random.default_rng(0).random((6, 5, 4, 3)).astype("float32")
    kw = dict(input_range=(0, scale)) if scale != 1 else {}
    pred = (np.asarray(model(scale * x)).argmax(1))
    g = linear_grad(model, x, pred, scale)
    assert np.abs(g).min() > 1e-4 * np.abs(g).max()  # no sign is decided by rounding
    # untargeted: ascend the predicted class's cross-entropy (the softmax is bypassed)
    got = adversarial(model, x, eps=EPS, method="fgsm", verbose=0, **kw)
    want = np.clip(x + np.float32(EPS) * np.sign(g).astype("float32"), 0, 1)
    np.testing.assert_array_equal(got.images, want)
    np.testing.assert_array_equal(got.labels, pred)
    assert got.losses.shape == (1, 6)
    # targeted: descend the target's cross-entropy
    target = (pred + 1) % 4
    got = adversarial(model, x, target=target, eps=EPS, method="fgsm", verbose=0, **kw)
    g = linear_grad(model, x, target, scale)
    np.testing.assert_array_equal(got.images,
                                  np.clip(x - np.float32(EPS) * np.sign(g).astype("float32"), 0, 1))
    np.testing.assert_array_equal(got.targets, target)
    assert fingerprint(model) == before


def test_l2_fgsm_steps_along_the_normalised_gradient():
    model = linear_model(activation=None)  # a logits model: nothing to bypass
    x = np.random.default_rng(1).uniform(0.3, 0.7, (3, 5, 4, 3)).astype("float32")
    labels = np.array([0, 2, 3])
    got = adversarial(model, x, labels=labels, eps=0.5, norm=2, method="fgsm", verbose=0)
    g = linear_grad(model, x, labels)
    unit = g / np.linalg.norm(g.reshape(3, -1), axis=1)[:, None, None, None]
    want = np.clip(x + 0.5 * unit, 0, 1)
    np.testing.assert_allclose(got.images, want, atol=2e-6)
    assert np.all(got.perturbation_norms() <= 0.5 + 1e-5)


def test_pgd_stays_in_the_ball_and_range_and_flips_the_demo_cnn(demo, fingerprint):
    model, x, _ = demo
    before = fingerprint(model)
    for norm, eps in (("inf", EPS), ("2", 0.5)):
        r = adversarial(model, x, eps=eps, norm=norm, seed=0, steps=4, verbose=0)
        delta = (r.images.astype(np.float64) - x).reshape(len(x), -1)
        size = np.abs(delta).max(1) if norm == "inf" else np.linalg.norm(delta, axis=1)
        assert np.all(size <= eps + 1e-6), size.max()  # float32 rounding of x0 +- eps only
        assert r.images.min() >= 0 and r.images.max() <= 1
        np.testing.assert_allclose(r.perturbations, r.images - x, atol=0)
    # L-inf: the model's own prediction flips on at least 90% of the images
    pred = model.predict(x, verbose=0).argmax(1)
    np.testing.assert_array_equal(r.original_classes, pred)
    r = adversarial(model, x, eps=EPS, seed=0, verbose=0)
    flipped = model.predict(r.images, verbose=0).argmax(1) != pred
    assert flipped.mean() >= 0.9, flipped.mean()
    np.testing.assert_array_equal(r.success, flipped)
    np.testing.assert_allclose(r.adversarial_probabilities,
                               model.predict(r.images, verbose=0), atol=1e-5)
    # the loss of the attacked class rises over the steps
    assert np.mean(r.losses[-1] > r.losses[0]) >= 0.9
    assert fingerprint(model) == before


def test_targeted_pgd_reaches_the_target_and_reuses_the_trace(demo):
    model, x, labels = demo
    attack = Attack(model, batch_size=16)
    pred = attack.predict(x).argmax(1)
    target = (pred + 1 + np.arange(len(x)) % 3) % 4  # every other class
    r = attack.run(x, target=target, labels=labels, eps=16 / 255, steps=20, verbose=0)
    traces = attack.traces
    got = model.predict(r.images, verbose=0).argmax(1)
    assert np.mean(got == target) >= 0.75, np.mean(got == target)
    np.testing.assert_array_equal(r.success, got == target)
    np.testing.assert_array_equal(r.labels, labels)
    assert np.mean(r.losses[-1] < r.losses[0]) >= 0.9  # the target's loss falls
    # other images, other targets, untargeted, FGSM, another eps: the same compiled steps
    attack.run(x[5:21][::-1], target=3, eps=4 / 255, steps=3, verbose=0)
    attack.run(x[3:19], labels=labels[:16], steps=2, verbose=0)
    attack.run(x[:16], method="fgsm", verbose=0)
    assert attack.traces == traces == 2  # one step, one prediction
    # a smaller batch traces each once more, shape-relaxed, for every later size
    attack.run(x[:7], steps=2, verbose=0)
    attack.run(x[:5], steps=2, verbose=0)
    assert attack.traces == 4


def test_seeded_random_start(demo):
    model, x, _ = demo
    attack = Attack(model)
    common = dict(eps=EPS, steps=3, verbose=0)
    a = attack.run(x[:8], seed=4, **common)
    b = attack.run(x[:8], seed=4, **common)
    c = attack.run(x[:8], seed=5, **common)
    np.testing.assert_array_equal(a.images, b.images)
    assert not np.array_equal(a.images, c.images)
    # image i's start depends on seed + i only, not on the batch it is attacked in
    d = attack.run(x[2:8], seed=6, batch_size=4, **common)
    np.testing.assert_allclose(d.images, a.images[2:], atol=1e-6)
    # so a slice of a result is the attack of those images alone
    part = a[2:8]
    assert tuple(part.settings["seeds"]) == tuple(d.settings["seeds"]) == (6, 7, 8, 9, 10, 11)
    np.testing.assert_allclose(part.images, d.images, atol=1e-6)
    for name in ("original_classes", "labels", "targets", "success"):
        np.testing.assert_array_equal(getattr(part, name), getattr(a, name)[2:8])
    np.testing.assert_array_equal(part.losses, a.losses[:, 2:8])
    picked = a[a.success]
    assert len(picked) == int(a.success.sum()) and picked.success.all()
    # without a random start PGD is deterministic (BIM) whatever the seed
    e = attack.run(x[:4], seed=1, random_start=False, **common)
    f = attack.run(x[:4], seed=2, random_start=False, **common)
    np.testing.assert_array_equal(e.images, f.images)


def test_fooling_images_reach_the_threshold_for_every_class(demo, fingerprint):
    model, _, _ = demo
    before = fingerprint(model)
    v = fooling_image(model, range(4), seed=0, verbose=0)
    probs = model.predict(v.images, verbose=0)
    assert np.all(probs[np.arange(4), np.arange(4)] >= 0.99), probs
    np.testing.assert_allclose(v.final_probability, probs[np.arange(4), np.arange(4)],
                               atol=1e-5)
    assert np.all(v.reached) and v.steps_used <= 512 and v.steps_used % 16 == 0
    assert v.probabilities.shape == (v.steps_used, 4)
    np.testing.assert_allclose(v.probabilities, np.exp(v.values), rtol=1e-6)
    assert v.images.min() >= 0 and v.images.max() <= 1
    # from noise: the images stay far from any natural shape image (high total variation)
    from tfvis.featurevis.regularizers import total_variation_np

    assert total_variation_np(v.images).min() > 10 * total_variation_np(demo[1]).max()
    # regularised: smoother images, at a lower confidence after the same steps
    from tfvis.featurevis import regularizers as R

    reg = fooling_image(model, [0, 2], steps=32, check_every=32, seed=0, verbose=0,
                        regularizers=[R.L2(0.05, center=0.5), R.TotalVariation(0.5)])
    plain = fooling_image(model, [0, 2], steps=32, check_every=32, seed=0, verbose=0)
    assert np.all(total_variation_np(reg.images) < total_variation_np(plain.images) / 3)
    assert np.all(reg.probabilities.mean(0) < plain.probabilities.mean(0))
    assert fingerprint(model) == before


def test_explain_adversarial_with_gradcam(demo):
    model, x, labels = demo
    x = x[:6]
    r = adversarial(model, x, eps=EPS, seed=0, verbose=0)
    e = explain_adversarial(tfvis.GradCAM(model, verbose=0), x, r)
    for part, images, classes in ((e.original, x, r.labels), (e.attacked, r.images, r.labels),
                                  (e.adversarial, r.images, r.adversarial_classes)):
        assert part.maps.shape == (6, 48, 48)
        np.testing.assert_array_equal(part.targets, classes)
        # the same maps as explaining directly
        np.testing.assert_allclose(part.maps, tfvis.GradCAM(model, verbose=0)(images, classes)
                                   .maps, atol=1e-5)
    from scipy.stats import spearmanr

    want = [spearmanr(a.ravel(), b.ravel())[0] for a, b in zip(e.original.maps, e.attacked.maps)]
    np.testing.assert_allclose(e.rank_correlation, want, atol=1e-9)
    assert np.all(e.rank_correlation < 1)
    np.testing.assert_allclose(e.original_confidence,
                               r.original_probabilities[np.arange(6), r.labels])
    fig = e.figure(class_names=["circle", "square", "triangle", "cross"])
    assert len(fig.axes) == 6 * 6
    with pytest.raises(ValueError, match="not the images the attack was run on"):
        explain_adversarial(tfvis.GradCAM(model, verbose=0), x[::-1], r)
    with pytest.raises(TypeError, match="tfvis explainer"):
        explain_adversarial(model, x, r)


def test_confidence_curves_figure(demo):
    from tfvis.plotting.adversarial import confidence_curves

    model, _, _ = demo
    v = fooling_image(model, 1, steps=16, verbose=0)
    fig = confidence_curves({"plain": v, "again": v})
    ax = fig.axes[0]
    assert len(ax.lines) == 3  # one per run and image, and the threshold
    np.testing.assert_allclose(ax.lines[0].get_ydata(), v.probabilities[:, 0])


def test_preprocess_convention_matches_a_model_taking_that_range():
    """Attacking ``f(255 x)`` with input_range=(0, 255) equals attacking a model that scales
    inside itself: the convention is applied in the graph, in display space."""
    inner = linear_model(shape=(5, 4, 3))
    inp = keras.Input((5, 4, 3))
    outer = keras.Model(inp, inner(keras.layers.Rescaling(255.0)(inp)))
    x = np.random.default_rng(3).random((4, 5, 4, 3)).astype("float32")
    a = adversarial(inner, x, preprocess=lambda t: t, seed=1, steps=4, verbose=0)
    b = adversarial(outer, x, seed=1, steps=4, verbose=0)
    assert a.settings["input_range"] == (0.0, 255.0)
    np.testing.assert_allclose(a.images, b.images, atol=1e-6)


@pytest.mark.parametrize("kwargs, error, match", [
    (dict(eps=0), ValueError, "eps must be a finite number > 0"),
    (dict(eps=float("nan")), ValueError, "eps must be a finite number > 0"),
    (dict(eps=2.0), ValueError, "exceeds the"),
    (dict(eps="big"), TypeError, "eps must be a number"),
    (dict(norm="1"), ValueError, "norm must be 'inf'"),
    (dict(method="cw"), ValueError, "method must be 'pgd' or 'fgsm'"),
    (dict(method="fgsm", steps=5), ValueError, "FGSM takes one step"),
    (dict(steps=0), ValueError, "steps must be a positive int"),
    (dict(step_size=-1), ValueError, "step_size must be a finite number > 0"),
    (dict(target=4), ValueError, r"class ids in 0\.\.3"),
    (dict(target=[0, 1]), ValueError, "target has 2 entries for 3 images"),
    (dict(target=True), TypeError, "target must be a class id"),
    (dict(labels=[0.5, 1, 2]), ValueError, "labels must be an int class id"),
    (dict(batch_size=0), ValueError, "batch_size must be a positive int"),
])
def test_clear_errors(kwargs, error, match, fingerprint):
    model = linear_model()
    before = fingerprint(model)
    x = np.random.default_rng(0).random((3, 5, 4, 3)).astype("float32")
    with pytest.raises(error, match=match):
        adversarial(model, x, verbose=0, **kwargs)
    assert fingerprint(model) == before


def test_clear_errors_for_images_models_and_fooling_arguments():
    model = linear_model()
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        adversarial(model, np.full((1, 5, 4, 3), 2.0, "float32"), verbose=0)
    with pytest.raises(ValueError, match=r"\(N, H, W, C\)"):
        adversarial(model, np.zeros((5, 4), "float32"), verbose=0)
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        Attack(model).run(np.zeros((2, 5, 4, 3), "float32"), batch_size=0, verbose=0)
    regression = linear_model(activation=None, classes=1)
    with pytest.raises(ValueError, match="K >= 2"):
        Attack(regression)
    with pytest.raises(ValueError, match="threshold must be a probability"):
        fooling_image(model, 0, threshold=1.0)
    with pytest.raises(ValueError, match=r"target_class must be in 0\.\.3"):
        fooling_image(model, [1, 7])
