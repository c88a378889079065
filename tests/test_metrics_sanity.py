"""Sanity checks (Adebayo et al. 2018): model-parameter randomisation on a copy of the model.

The demo CNN trained 2 epochs on 32 px shapes; Grad-CAM's and saliency's rank correlation must
fall well below its start (1.0) once the top layers are random. The user's model and weights
stay bitwise equal, also when the explainer factory raises half-way.
"""

import numpy as np
import pytest

import tfvis
from tfvis.metrics.sanity import (
    SanityCheck,
    compare,
    hog,
    pearson,
    rank,
    spearman,
    ssim,
    weighted_layers,
)


@pytest.fixture(scope="module")
def trained():
    import keras

    from tfvis.datasets import shapes
    from tfvis.demo import build_model

    data = shapes(256, 32, seed=0)
    model = build_model((32, 32, 3), seed=0)
    model.compile(optimizer=keras.optimizers.Adam(2e-3), loss="sparse_categorical_crossentropy")
    model.fit(data.images, data.labels, batch_size=32, epochs=2, shuffle=False, verbose=0)
    return model, data.images[:8]


def snapshot(model):
    return [w.copy() for w in model.get_weights()], model.to_json()


def assert_untouched(model, before):
    weights, config = before
    after = model.get_weights()
    assert len(after) == len(weights)
    assert all(a.dtype == b.dtype and a.tobytes() == b.tobytes() for a, b in zip(after, weights))
    assert model.to_json() == config


# ------------------------------------------------------------------------------- the similarities
def test_spearman_is_pearson_of_average_ranks():
    assert rank([10, 20, 20, 30]).tolist() == [1, 2.5, 2.5, 4]
    # by hand: ranks [1, 2.5, 2.5, 4] and [1, 3, 2, 4] -> 4.5 / sqrt(4.5 * 5)
    assert spearman([1, 2, 2, 3], [1, 3, 2, 4]) == pytest.approx(4.5 / np.sqrt(22.5))
    x = np.random.default_rng(0).normal(size=(6, 7))
    assert spearman(x, np.exp(x)) == pytest.approx(1.0)
    assert spearman(x, -x ** 3) == pytest.approx(-1.0)
    assert spearman(x, np.zeros_like(x)) == 0.0  # a constant map has no ranking
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(np.corrcoef([1, 2, 3], [2, 4, 7])[0, 1])


def test_ssim_and_hog_on_known_cases():
    rng = np.random.default_rng(0)
    x = rng.random((32, 32))
    assert ssim(x, x) == pytest.approx(1.0)
    assert ssim(x, 1 - x) < 0
    assert -1 <= ssim(x, rng.random((32, 32))) < 0.5
    assert pearson(hog(x), hog(x)) == pytest.approx(1.0)
    ramp = np.tile(np.arange(32.0), (32, 1))  # horizontal gradient: all energy in bin 0
    features = hog(ramp).reshape(4, 4, 9)
    np.testing.assert_allclose(features[..., 0], 1.0)
    np.testing.assert_allclose(features[..., 1:], 0.0)
    same = compare(x[None], x[None])
    assert {k: round(float(v[0]), 6) for k, v in same.items()} == {
        "spearman_abs": 1.0, "spearman": 1.0, "ssim": 1.0, "hog": 1.0}
    with pytest.raises(ValueError, match=r"\(1, 16, 16\).*\(1, 32, 32\)"):
        compare(x[None], x[None, :16, :16])


# ------------------------------------------------------------- step semantics with a fake explainer
def small_model():
    import keras

    inp = keras.Input((8, 8, 1))
    h = keras.layers.Conv2D(2, 3, name="c1")(inp)
    h = keras.layers.BatchNormalization(name="bn")(h)
    h = keras.layers.Conv2D(2, 3, name="c2")(h)
    h = keras.layers.GlobalAveragePooling2D()(h)
    out = keras.layers.Dense(3, name="head")(h)
    return keras.Model(inp, out)


class Recorder:
    """A factory whose explainers record which layers of the copy differ from the original."""

    def __init__(self, model, fail_on=None):
        self.original = {layer.name: [w.copy() for w in layer.get_weights()]
                         for layer in model.layers}
        self.models, self.changed, self.weights, self.targets = [], [], [], []
        self.fail_on = fail_on

    def __call__(self, copy):
        self.models.append(copy)
        if self.fail_on is not None and len(self.models) == self.fail_on:
            raise RuntimeError("explainer failed half-way")

        def explain(images, targets=None):
            self.targets.append(targets)
            changed = set()
            for layer in copy.layers:
                for w, o in zip(layer.get_weights(), self.original.get(layer.name, [])):
                    if w.tobytes() != o.tobytes():
                        changed.add(layer.name)
            self.changed.append(changed)
            self.weights.append({layer.name: [w.copy() for w in layer.get_weights()]
                                 for layer in copy.layers})
            return np.arange(2 * 5 * 5, dtype=float).reshape(2, 5, 5)  # weight-independent

        return explain


@pytest.mark.parametrize("mode", ["cascading", "independent"])
def test_steps_randomise_top_down_on_a_copy(mode):
    model = small_model()
    before = snapshot(model)
    factory = Recorder(model)
    result = SanityCheck(factory, model, mode=mode, seed=3)(np.zeros((2, 8, 8, 1)), targets=1)
    order = ["head", "c2", "bn", "c1"]
    assert result.name == "sanity_check" and result.extras["layers"] == tuple(order)
    assert all(m is not model for m in factory.models)
    assert factory.changed[0] == set()  # the unrandomised start
    for k, changed in enumerate(factory.changed[1:]):
        expected = set(order[: k + 1]) if mode == "cascading" else {order[k]}
        # BatchNormalization re-initialised from its own initialisers may equal its
        # untrained start (gamma 1, beta 0, moving stats 0 / 1): it cannot show as changed
        assert changed - {"bn"} == expected - {"bn"}, (k, changed)
    assert factory.targets == [1] * 5
    # identical maps at every step: every similarity is 1
    assert result.values.shape == (4,) and np.allclose(result.values, 1.0)
    assert result.curves.shape == (2, 4)
    for key in ("spearman", "ssim", "hog"):
        assert np.allclose(result.extras[key], 1.0)
        assert result.extras[f"{key}_per_image"].shape == (4, 2)
    assert_untouched(model, before)


def test_randomisation_is_seeded_and_the_same_in_both_modes():
    model = small_model()
    x = np.zeros((2, 8, 8, 1))
    runs = {}
    for key, mode, seed in [("a", "cascading", 0), ("b", "cascading", None),
                            ("c", "independent", 0), ("d", "cascading", 1)]:
        factory = Recorder(model)
        SanityCheck(factory, model, mode=mode, seed=seed)(x)
        runs[key] = factory.weights
    head = lambda run, step: run[step]["head"][0]  # noqa: E731
    c2 = lambda run, step: run[step]["c2"][0]  # noqa: E731
    assert np.array_equal(head(runs["a"], 1), head(runs["b"], 1))      # seed None is 0
    assert np.array_equal(c2(runs["a"], 2), c2(runs["c"], 2))          # same layer, same draw
    assert not np.array_equal(head(runs["a"], 1), head(runs["d"], 1))  # another seed differs
    assert np.array_equal(runs["c"][2]["head"][0], runs["c"][0]["head"][0])  # independent


def test_weights_untouched_when_the_explainer_raises_half_way():
    model = small_model()
    before = snapshot(model)
    factory = Recorder(model, fail_on=2)
    with pytest.raises(RuntimeError, match="half-way"):
        SanityCheck(factory, model)(np.zeros((2, 8, 8, 1)))
    assert len(factory.models) == 2 and all(m is not model for m in factory.models)
    assert_untouched(model, before)


def test_layers_selection_and_errors():
    model = small_model()
    factory = Recorder(model)
    result = SanityCheck(factory, model, layers=2)(np.zeros((2, 8, 8, 1)))
    assert result.extras["layers"] == ("head", "c2")
    result = SanityCheck(Recorder(model), model, layers=["c1", "head"])(np.zeros((2, 8, 8, 1)))
    assert result.extras["layers"] == ("head", "c1")
    with pytest.raises(ValueError, match=r"\['nope'\].*'head'"):
        SanityCheck(Recorder(model), model, layers=["nope"])(np.zeros((2, 8, 8, 1)))
    with pytest.raises(ValueError, match="mode"):
        SanityCheck(Recorder(model), model, mode="random")
    with pytest.raises(TypeError, match="factory"):
        SanityCheck(None, model)


def test_nested_models_are_randomised_layer_by_layer():
    import keras

    base = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(2, 3, name="inner1"),
                             keras.layers.Conv2D(2, 3, name="inner2")], name="base")
    inp = keras.Input((8, 8, 1))
    out = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(base(inp)))
    model = keras.Model(inp, out)
    assert [p for p, _ in weighted_layers(model)] == ["base/inner1", "base/inner2", "head"]
    before = snapshot(model)
    seen = []

    def factory(copy):
        def explain(images, targets=None):
            seen.append(copy.get_layer("base").get_layer("inner1").get_weights()[0].copy())
            return np.random.default_rng(len(seen)).random((1, 4, 4))
        return explain

    result = SanityCheck(factory, model)(np.zeros((1, 8, 8, 1)))
    assert result.extras["layers"] == ("head", "base/inner2", "base/inner1")
    assert np.array_equal(seen[0], seen[2]) and not np.array_equal(seen[0], seen[3])
    assert_untouched(model, before)


# ------------------------------------------------------------------------------ the demo CNN
def test_gradcam_and_saliency_fail_to_stay_similar_guided_backprop_reported(trained):
    model, images = trained
    before = snapshot(model)
    results = {}
    for name, factory in [("Grad-CAM", lambda m: tfvis.GradCAM(m, verbose=0)),
                          ("Saliency", lambda m: tfvis.Saliency(m, verbose=0)),
                          ("Guided backprop", lambda m: tfvis.GuidedBackprop(m, verbose=0))]:
        results[name] = SanityCheck(factory, model, mode="cascading", seed=0, layers=3)(images)
        print(name, np.round(results[name].values, 3), np.round(results[name].extras["ssim"], 3))
    for name in ("Grad-CAM", "Saliency"):
        r = results[name]
        assert r.extras["layers"] == ("predictions", "conv3b", "conv3a")
        assert np.all(np.isfinite(r.values)) and np.all(np.abs(r.values) <= 1)
        assert r.values.max() < 0.6, (name, r.values)  # well below the start (1.0)
    # Adebayo et al.: guided backprop stays similar; reported (printed), not gated
    assert np.all(np.isfinite(results["Guided backprop"].values))
    assert_untouched(model, before)

    fig = tfvis.plotting.sanity_curves(results["Grad-CAM"])
    assert type(fig).__name__ == "Figure" and len(fig.axes[0].lines) == 5  # 4 curves + zero line
    fig = tfvis.plotting.sanity_curves(results)
    assert len(fig.axes[0].lines) == 4  # one per method + zero line
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert ticks == ["original", "predictions", "conv3b", "conv3a"]


def test_independent_mode_on_the_demo_cnn_keeps_weights(trained):
    model, images = trained
    before = snapshot(model)
    result = SanityCheck(lambda m: tfvis.GradCAM(m, verbose=0), model, mode="independent",
                         layers=2)(images[:4])
    assert result.values.shape == (2,) and result.curves.shape == (4, 2)
    assert result.values[0] < 0.6
    assert_untouched(model, before)


def test_sanity_curves_refuses_other_results():
    from tfvis.metrics.result import MetricResult

    with pytest.raises(ValueError, match="not a SanityCheck result"):
        tfvis.plotting.sanity_curves(MetricResult("deletion", np.zeros(3)))
