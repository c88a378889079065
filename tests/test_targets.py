"""Targets: every form resolves to the same thing, and changing targets never retraces."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, seeded

import tfvis
from tfvis.targets import class_scores, resolve_targets

# -- resolution (pure numpy) ------------------------------------------------------------------


def test_forms_resolve_to_weights():
    eye = np.eye(4, dtype=np.float32)
    none = resolve_targets(None, 3, 4)
    assert none.auto.tolist() == [True] * 3 and none.fn is None
    assert none.weights.shape == (3, 4) and not none.weights.any()
    for form in (2, np.int64(2), [2, 2, 2], np.array([2, 2, 2]), tf.constant([2, 2, 2]),
                 eye[[2, 2, 2]], -2):
        resolved = resolve_targets(form, 3, 4)
        np.testing.assert_array_equal(resolved.weights, eye[[2, 2, 2]])
        assert not resolved.auto.any() and not resolved.soft
    mixed = resolve_targets([0, 3, 1], 3, 4)
    np.testing.assert_array_equal(mixed.weights, eye[[0, 3, 1]])
    np.testing.assert_array_equal(resolve_targets([0.0, 3.0, 1.0], 3, 4).weights, eye[[0, 3, 1]])
    soft = resolve_targets([[0.25, 0.75, 0, 0]] * 3, 3, 4)
    assert soft.soft and soft.weights.dtype == np.float32
    assert resolve_targets([[0, 2.0, 0, 0]] * 3, 3, 4).soft  # not one-hot: a weighting

    def fn(out):
        return out[:, 0]

    called = resolve_targets(fn, 3, None)
    assert called.fn is fn and called.weights is None


@pytest.mark.parametrize(
    ("targets", "error", "match"),
    [
        (4, ValueError, r"class 4 is out of range.*0\.\.3"),
        (-5, ValueError, "out of range"),
        ([0, 1], ValueError, "got 2 targets for 3 samples"),
        ([0.5, 1, 2], TypeError, "integer class indices"),
        ([True, False, True], TypeError, "integer class indices"),
        (True, TypeError, "not True"),
        ("cat", TypeError, "callable"),
        (np.zeros((3, 5)), ValueError, r"expected \(N, K\) = \(3, 4\)"),
        (np.full((3, 4), np.nan), ValueError, "NaN"),
        (np.zeros((3, 4, 1)), ValueError, "rank 3"),
        ([[0, 1], [2]], TypeError, "callable"),
    ],
)
def test_bad_targets_are_clear_errors(targets, error, match):
    with pytest.raises(error, match=match):
        resolve_targets(targets, 3, 4)


def test_class_targets_need_a_class_output():
    with pytest.raises(ValueError, match="output=.*callable"):
        resolve_targets(1, 2, None)


def test_class_scores_pick_top1_where_auto():
    outputs = tf.constant([[1.0, 5.0, 2.0], [3.0, 0.0, -1.0]])
    weights = tf.constant([[0.0, 0.0, 0.0], [0.5, 0.0, 0.5]])
    scores, used = class_scores(outputs, weights, tf.constant([True, False]))
    np.testing.assert_allclose(scores.numpy(), [5.0, 1.0])
    np.testing.assert_array_equal(used.numpy(), [[0, 1, 0], [0.5, 0, 0.5]])


# -- through an explainer ---------------------------------------------------------------------


@pytest.fixture
def explainer(model):
    return tfvis.GradCAM(model, relu=False, verbose=0)


def test_target_forms_agree(explainer, model, images):
    n = len(images)
    chosen = np.array([3, 0, 2, 2, 1])
    logits = gap_dense_model(activation=None)
    logits.set_weights(model.get_weights())
    logits = logits(images).numpy()
    results = {
        "list": explainer.explain(images, list(chosen)),
        "array": explainer.explain(images, chosen),
        "one_hot": explainer.explain(images, np.eye(4)[chosen]),
        "callable": explainer.explain(
            images, lambda out: tf.reduce_sum(out * tf.one_hot(chosen, 4), axis=-1)
        ),
    }
    reference = results["list"]
    assert np.abs(reference.raw).max() > 0
    np.testing.assert_allclose(reference.scores, logits[np.arange(n), chosen], rtol=1e-5)
    for name, e in results.items():
        np.testing.assert_allclose(e.raw, reference.raw, rtol=1e-5, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(e.scores, reference.scores, rtol=1e-6, err_msg=name)
    for name in ("list", "array", "one_hot"):
        np.testing.assert_array_equal(results[name].targets, chosen)
    assert callable(results["callable"].targets)
    # An int explains every sample for that class, like a per-sample list of it.
    np.testing.assert_allclose(explainer.explain(images, 2).raw,
                               explainer.explain(images, [2] * n).raw, rtol=1e-6)
    # None explains the top-1 logit of each sample.
    top = explainer.explain(images)
    np.testing.assert_array_equal(top.targets, logits.argmax(-1))
    np.testing.assert_allclose(top.raw, explainer.explain(images, logits.argmax(-1)).raw,
                               rtol=1e-6)


def test_soft_targets_are_the_weighted_sum(explainer, images):
    weights = np.zeros((5, 4), np.float32)
    weights[:, 1], weights[:, 3] = 0.3, 0.7
    weights[2] = [0.1, 0.2, 0.3, 0.4]
    soft = explainer.explain(images, weights)
    per_class = [explainer.explain(images, k) for k in range(4)]
    expected_raw = sum(weights[:, k, None, None] * per_class[k].raw for k in range(4))
    expected_scores = sum(weights[:, k] * per_class[k].scores for k in range(4))
    atol = 1e-5 * np.abs(expected_raw).max()  # sums of signed terms: absolute tolerance
    np.testing.assert_allclose(soft.raw, expected_raw, rtol=1e-5, atol=atol)
    np.testing.assert_allclose(soft.scores, expected_scores, rtol=1e-5)
    np.testing.assert_array_equal(soft.targets, weights)  # soft targets are reported as weights
    cam = tfvis.CAM(explainer.model, relu=False, verbose=0)
    np.testing.assert_allclose(cam.explain(images, weights).raw, soft.raw * 16 * 20, rtol=1e-4,
                               atol=atol * 16 * 20)


def test_changing_targets_does_not_retrace(explainer, images):
    explainer.explain(images, 0)
    assert explainer.traces() == 1
    for targets in (3, [1, 2, 3, 0, 1], np.eye(4)[[0, 0, 1, 1, 2]], None, np.full((5, 4), 0.25)):
        explainer.explain(images, targets)
    explainer.explain(images, 1, batch_size=2)  # 3 chunks of 2, the last one padded
    assert explainer.traces() == 2  # one more only for the new chunk size
    explainer.explain(images[:3], 2, batch_size=2)
    assert explainer.traces() == 2

    def fn(out):
        return out[:, 2]

    explainer.explain(images, fn)
    explainer.explain(images, fn)
    assert explainer.traces() == 3


def test_out_of_range_target_changes_nothing(model, images, fingerprint):
    before = fingerprint(model)
    x = images.copy()
    explainer = tfvis.GradCAM(model, verbose=0)
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(x, targets=[0, 1, 4, 0, 0])
    with pytest.raises(ValueError, match="shape"):
        explainer.explain(x, targets=lambda out: out)  # (N, K): not one score per sample
    assert fingerprint(model) == before
    np.testing.assert_array_equal(x, images)
    explainer.explain(x, targets=1)  # still usable


def test_regression_output_needs_a_callable(images):
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="feat",
                            kernel_initializer=seeded(17))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Reshape((2, 2))(x)  # not a (N, K) class output
    model = keras.Model(inp, out)
    explainer = tfvis.GradCAM(model, relu=False, verbose=0)
    with pytest.raises(ValueError, match="callable"):
        explainer.explain(images, 0)
    e = explainer.explain(images, lambda out: out[:, 1, 0])
    grads = tfvis.GradCAM(model, relu=False, verbose=0).explain(images, lambda o: o[:, 1, 0] * 2)
    np.testing.assert_allclose(grads.raw, 2 * e.raw, rtol=1e-5, atol=1e-9)
