"""The public contract: registry, Explanation fields, the Explainer base for any method, and
an import of tfvis without side effects."""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvis
from tfvis.explainers import REGISTRY

CAM_NAMES = ("cam", "gradcam", "gradcampp", "counterfactual_gradcam")


# -- registry ---------------------------------------------------------------------------------


def test_registry_lists_the_cam_family_first():
    names = tfvis.methods()
    assert names[:4] == list(CAM_NAMES)
    assert names == list(REGISTRY) and len(set(names)) == len(names)
    assert [REGISTRY[n] for n in CAM_NAMES] == [
        tfvis.CAM, tfvis.GradCAM, tfvis.GradCAMPlusPlus, tfvis.CounterfactualGradCAM
    ]
    for name, cls in REGISTRY.items():
        assert issubclass(cls, tfvis.Explainer) and cls.name == name and cls.title
        assert getattr(tfvis, cls.__name__) is cls  # every registered class is exported
        with pytest.raises(TypeError):
            cls.quick_options["x"] = 1  # read-only, shared by every instance
    with pytest.raises(TypeError):
        REGISTRY["mine"] = tfvis.GradCAM


def test_get_explainer(model, images):
    explainer = tfvis.get_explainer("GradCAM", model, layer="c1", verbose=0)
    assert type(explainer) is tfvis.GradCAM and explainer.layer == "c1"
    counter = tfvis.get_explainer("Counterfactual-GradCAM", model, verbose=0)
    assert type(counter) is tfvis.CounterfactualGradCAM
    np.testing.assert_allclose(
        explainer.explain(images, 1).raw,
        tfvis.GradCAM(model, layer="c1", verbose=0).explain(images, 1).raw,
    )
    for spelling, cls in (("Grad-CAM++", tfvis.GradCAMPlusPlus), ("gradcam_pp", tfvis.GradCAMPlusPlus),
                          ("Integrated Gradients", tfvis.IntegratedGradients),
                          ("Gradient x Input", tfvis.GradientInput), ("RISE", tfvis.RISE)):
        assert type(tfvis.get_explainer(spelling, model, verbose=0)) is cls  # titles work too
    for cls in REGISTRY.values():  # no two methods share a spelling
        assert type(tfvis.get_explainer(cls.title, model, verbose=0)) is cls
    with pytest.raises(ValueError, match=r"unknown method 'gradcma'\. Did you mean 'gradcam'"):
        tfvis.get_explainer("gradcma", model)
    with pytest.raises(ValueError, match="Available: cam, gradcam"):
        tfvis.get_explainer("zzz", model)


def test_quick_options_build_every_cam_method(model, images):
    for name in CAM_NAMES:
        explainer = tfvis.get_explainer(name, model, **REGISTRY[name].quick_options, verbose=0)
        assert explainer.explain(images[:1]).maps.shape == (1, 16, 20)


def test_import_has_no_side_effects():
    script = """
import json, logging, os, sys
import numpy as np
import keras, tensorflow as tf
env = dict(os.environ)
state = (keras.config.dtype_policy().name, keras.config.floatx(),
         keras.config.image_data_format(), logging.getLogger().level,
         len(logging.getLogger().handlers), logging.getLogger("tensorflow").level,
         tf.config.functions_run_eagerly())
rng = np.random.get_state()[1].copy()
py_rng = __import__("random").getstate()
import tfvis
after = (keras.config.dtype_policy().name, keras.config.floatx(),
         keras.config.image_data_format(), logging.getLogger().level,
         len(logging.getLogger().handlers), logging.getLogger("tensorflow").level,
         tf.config.functions_run_eagerly())
print(json.dumps({
    "env": env == dict(os.environ),
    "changed": sorted(set(os.environ.items()) ^ set(env.items())),
    "state": [state, after],
    "numpy_rng": bool((np.random.get_state()[1] == rng).all()),
    "python_rng": __import__("random").getstate() == py_rng,
}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120, check=True)
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["env"], result["changed"]
    assert result["state"][0] == result["state"][1]
    assert result["numpy_rng"] and result["python_rng"]


# -- the Explanation ----------------------------------------------------------------------------


@pytest.mark.parametrize("name", CAM_NAMES)
def test_explanation_fields(name, model, images):
    explainer = tfvis.get_explainer(name, model, verbose=0)
    e = explainer.explain(images, targets=[0, 1, 2, 3, 0])
    assert e.method == name and e.layer == "c2" and len(e) == 5
    assert e.maps.shape == e.raw.shape == (5, 16, 20)
    assert e.maps.dtype == e.raw.dtype == e.scores.dtype == np.float32
    assert e.scores.shape == (5,)
    np.testing.assert_array_equal(e.targets, [0, 1, 2, 3, 0])
    assert e.maps.min() >= 0 and e.maps.max() <= 1
    for raw, m in zip(e.raw, e.maps):  # per-sample min-max of the raw map
        if np.ptp(raw) > 0:
            np.testing.assert_allclose(m, (raw - raw.min()) / np.ptp(raw), atol=1e-5)
    alias = explainer(images, targets=[0, 1, 2, 3, 0])
    np.testing.assert_array_equal(alias.raw, e.raw)
    single = explainer(images[2], targets=2)  # one (H, W, C) image
    assert single.maps.shape == (1, 16, 20)
    np.testing.assert_allclose(single.raw[0], e.raw[2], rtol=1e-5, atol=1e-9)
    overlay = e.overlay(images)
    assert overlay.shape == (5, 16, 20, 3) and overlay.dtype == np.uint8
    assert single.overlay(images[2]).shape == (1, 16, 20, 3)
    assert repr(explainer) == f"{type(explainer).__name__}(model='gapnet', layer='c2')"
    with pytest.raises(AttributeError):
        e.maps = None  # frozen


def test_maps_do_not_depend_on_the_scale_of_the_raw_values(model, images):
    tiny = tfvis.GradCAM(model, verbose=0)
    reference = tiny.explain(images, 1)
    head = model.get_layer("head")
    head.kernel.assign(head.kernel * 1e-9)  # raw maps ~1e-12: small, not constant
    small = tiny.explain(images, 1)
    scale = np.abs(reference.raw).max() * 1e-9
    assert scale < 1e-8  # below the normaliser's absolute epsilon
    np.testing.assert_allclose(small.raw, reference.raw * 1e-9, rtol=1e-3, atol=1e-4 * scale)
    np.testing.assert_allclose(small.maps, reference.maps, atol=1e-3)
    assert np.all(small.maps.max(axis=(1, 2)) == 1)


# -- the Explainer base, for any method ---------------------------------------------------------


class InputGradient(tfvis.Explainer):
    """A minimal method written against the contract: d score / d input (pixel space)."""

    name = "test_input_gradient"
    title = "Input gradient"

    def explain_batch(self, x, score):
        with tf.GradientTape() as tape:
            tape.watch(x)
            scores, class_weights = score(self.forward(x))
        return tape.gradient(scores, x), scores, class_weights


def linear_model():
    inp = keras.Input((4, 5, 2))
    dense = keras.layers.Dense(3, activation="softmax", name="fc")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    kernel = np.random.default_rng(6).normal(size=(40, 3)).astype(np.float32)
    dense.set_weights([kernel, np.zeros(3, np.float32)])
    return model, kernel


def test_base_runs_a_pixel_space_method(images):
    model, kernel = linear_model()
    x = np.random.default_rng(7).random((3, 4, 5, 2)).astype(np.float32)
    e = InputGradient(model, verbose=0).explain(x, targets=[2, 0, 1])
    expected = kernel[:, [2, 0, 1]].T.reshape(3, 4, 5, 2)  # the logit's gradient is its weights
    assert e.raw.shape == (3, 4, 5, 2) and e.maps.shape == (3, 4, 5)
    np.testing.assert_allclose(e.raw, expected, rtol=1e-6)
    grey = np.abs(expected).max(axis=-1)
    grey = (grey - grey.min(axis=(1, 2), keepdims=True)) / np.ptp(grey, axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(e.maps, grey, atol=1e-6)
    assert e.layer is None and e.method == "test_input_gradient"
    np.testing.assert_allclose(e.scores, (x.reshape(3, -1) @ kernel)[[0, 1, 2], [2, 0, 1]],
                               rtol=1e-5)


def test_base_works_on_a_subclassed_model():
    class Linear(keras.Model):
        def __init__(self, kernel):
            super().__init__()
            self.fc = keras.layers.Dense(3)
            self.fc.build((None, 40))
            self.fc.set_weights([kernel, np.zeros(3, np.float32)])

        def call(self, x):
            return self.fc(keras.ops.reshape(x, (-1, 40)))

    _, kernel = linear_model()
    model = Linear(kernel)
    x = np.random.default_rng(8).random((2, 4, 5, 2)).astype(np.float32)
    e = InputGradient(model, verbose=0).explain(x, targets=1)
    np.testing.assert_allclose(e.raw, np.broadcast_to(kernel[:, 1].reshape(4, 5, 2), x.shape),
                               rtol=1e-6)
    np.testing.assert_array_equal(e.targets, [1, 1])
    with pytest.raises(TypeError, match="subclassed"):
        tfvis.GradCAM(model)


def test_non_finite_raw_values_are_an_error_not_a_map():
    class Broken(InputGradient):
        def explain_batch(self, x, score):
            raw, scores, weights = super().explain_batch(x, score)
            return raw / 0.0, scores, weights

    model, _ = linear_model()
    with pytest.raises(FloatingPointError, match=r"samples \[0, 1\]"):
        Broken(model, verbose=0).explain(np.ones((2, 4, 5, 2), np.float32), 0)


def test_constructor_validation(model):
    with pytest.raises(TypeError, match="keras.Model"):
        tfvis.GradCAM(lambda x: x)
    for bad in (0, -1, 1.5, True, "8"):
        with pytest.raises(ValueError, match="batch_size"):
            tfvis.GradCAM(model, batch_size=bad)
    explainer = tfvis.GradCAM(model, verbose=0)
    with pytest.raises(ValueError, match="batch_size"):
        explainer.explain(np.zeros((1, 16, 20, 3)), batch_size=0)


def test_progress_bar_only_when_verbose(model, images, capsys):
    tfvis.GradCAM(model, verbose=0).explain(images, batch_size=2)
    assert capsys.readouterr().out == ""
    tfvis.GradCAM(model, verbose=1).explain(images, batch_size=2)
    assert "3/3" in capsys.readouterr().out
    tfvis.GradCAM(model, verbose=1).explain(images)  # one chunk: nothing to show
    assert capsys.readouterr().out == ""


def test_one_trace_per_explainer_is_not_reported_as_retracing(model, images, caplog):
    for _ in range(6):  # TF warns after 5 traces of the same function within a few calls
        explainer = tfvis.GradCAM(model, verbose=0)
        explainer.explain(images[:2])
        assert explainer.traces() == 1
    assert "retracing" not in caplog.text


@pytest.mark.parametrize("cls", [tfvis.GradCAM, tfvis.RISE])
def test_fresh_callable_targets_keep_a_bounded_number_of_steps(cls, model, images):
    from tfvis.explainers.base import MAX_CALLABLE_STEPS

    options = {"num_masks": 4, "seed": 0} if cls is tfvis.RISE else {}
    explainer = cls(model, verbose=0, **options)
    steps = 2 if cls is tfvis.RISE else 1  # compiled steps per target kind
    reused = lambda out: out[:, 1]  # noqa: E731
    first = explainer.explain(images, reused).raw
    with pytest.warns(UserWarning, match="define the target function once") as caught:
        for k in range(MAX_CALLABLE_STEPS + 3):  # a fresh function object each call
            explainer.explain(images, lambda out, k=k: out[:, k % 2])
    assert len(caught) == 1  # warned once, not on every call
    # Only the most recent callables keep their steps (each traced once), so the reused
    # function was evicted and compiles again, with the same result.
    assert explainer.traces() == MAX_CALLABLE_STEPS * steps
    np.testing.assert_allclose(explainer.explain(images, reused).raw, first, rtol=1e-6)
    assert explainer.traces() == MAX_CALLABLE_STEPS * steps  # it replaced the oldest
    before = explainer.traces()
    explainer.explain(images, reused)  # a kept callable: no new trace
    assert explainer.traces() == before


def test_submodules_are_attributes_without_importing_display_code():
    """``tfvis.callbacks`` / ``tfvis.plotting`` / ``tfvis.targets`` work after ``import tfvis``
    (like ``keras.callbacks``); ``import tfvis`` itself imports neither TensorFlow nor matplotlib."""
    script = """
import sys, tfvis
assert "tensorflow" not in sys.modules and "matplotlib" not in sys.modules
logger = tfvis.callbacks.ExplanationLogger
assert tfvis.targets.Regression and tfvis.plotting.grid and logger.__name__ == "ExplanationLogger"
print(sorted(set(tfvis.__all__) >= {"GradCAM", "ScoreCAM", "Explanation", "methods"} and ["ok"]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "['ok']" in out.stdout
    with pytest.raises(AttributeError, match="no attribute 'GradCam'"):
        tfvis.GradCam  # noqa: B018


def test_bypassed_head_is_logged_once(model, caplog):
    import logging

    with caplog.at_level(logging.INFO, logger="tfvis"):
        tfvis.GradCAM(model, verbose=0)
    assert "softmax/sigmoid of head is bypassed" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="tfvis"):
        tfvis.GradCAM(model, logits=False, verbose=0)
    assert "bypassed" not in caplog.text
