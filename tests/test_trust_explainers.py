"""Answers users can trust: SavedModel semantics, ReLU gates, unbuilt models, CAM as in its
paper, the retrace rule, and no state recorded on the user's layers."""

import warnings

import keras
import numpy as np
import pytest

import tfvis
from conftest import gap_dense_model, seeded

SOFTMAX_HIDDEN = "a final softmax inside a SavedModel cannot be bypassed"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """``(original, wrapped)``: a softmax model, and the same exported as a SavedModel and
    wrapped in a TFSMLayer (its softmax inside the SavedModel graph)."""
    original = gap_dense_model(input_shape=(8, 8, 3), classes=3, activation="softmax")
    path = str(tmp_path_factory.mktemp("saved") / "export")
    original.export(path, verbose=False)
    wrapped = keras.Sequential([keras.Input((8, 8, 3)),
                                keras.layers.TFSMLayer(path, call_endpoint="serve")])
    return original, wrapped


@pytest.fixture
def pixels():
    return np.random.default_rng(3).random((4, 8, 8, 3)).astype("float32")


# -- SavedModels: outputs explained as they are, said so ---------------------------------------


def test_savedmodel_warns_once_and_records_probabilities(saved, pixels):
    original, wrapped = saved
    with pytest.warns(UserWarning, match=SOFTMAX_HIDDEN) as record:
        explainer = tfvis.Saliency(wrapped, verbose=0)
    assert sum(SOFTMAX_HIDDEN in str(w.message) for w in record) == 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no second warning when explaining
        e = explainer(pixels, targets=1)
        explainer(pixels, targets=2)
    assert e.extras["logits"] is False and e.logits is False
    probs = original.predict(pixels, verbose=0)
    np.testing.assert_allclose(e.scores, probs[:, 1], rtol=1e-5, atol=1e-6)  # probabilities
    # the original Keras model's softmax is bypassed, and says so
    direct = tfvis.Saliency(original, verbose=0)(pixels, targets=1)
    assert direct.extras["logits"] is True
    assert not np.allclose(direct.scores, probs[:, 1], atol=1e-3)


def test_logits_record_follows_what_is_explained(pixels):
    softmax = gap_dense_model(input_shape=(8, 8, 3), classes=3, activation="softmax")
    linear = gap_dense_model(input_shape=(8, 8, 3), classes=3, activation=None)
    assert tfvis.GradCAM(softmax, verbose=0)(pixels).logits is True
    assert tfvis.GradCAM(softmax, logits=False, verbose=0)(pixels).logits is False
    assert tfvis.GradCAM(linear, logits=False, verbose=0)(pixels).logits is True  # no softmax


def test_savedmodel_with_logits_false_does_not_warn(saved, pixels):
    _, wrapped = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        e = tfvis.Saliency(wrapped, logits=False, verbose=0)(pixels)
    assert e.logits is False


@pytest.mark.parametrize("cls", [tfvis.GuidedBackprop, tfvis.Deconvnet, tfvis.GuidedGradCAM],
                         ids=lambda c: c.name)
def test_relu_rules_refuse_a_savedmodel(saved, cls):
    _, wrapped = saved
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "no ReLU" warning, no softmax warning: an error
        with pytest.raises(TypeError, match=r"hidden inside the SavedModel.*tfvis.Saliency"):
            cls(wrapped, verbose=0)


def test_relu_rule_refusal_names_the_rule_and_layer(saved):
    _, wrapped = saved
    with pytest.raises(TypeError) as info:
        tfvis.GuidedBackprop(wrapped)
    message = str(info.value)
    assert "guided backprop" in message and wrapped.layers[-1].name in message


# -- ReLU-family layers the rules do not gate --------------------------------------------------


def relu_family_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c_relu",
                            kernel_initializer=seeded(1))(inp)
    x = keras.layers.Conv2D(4, 3, padding="same", name="c2", kernel_initializer=seeded(2))(x)
    x = keras.layers.LeakyReLU(name="leaky")(x)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="elu", name="c_elu",
                            kernel_initializer=seeded(3))(x)
    x = keras.layers.PReLU(name="prelu")(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    return keras.Model(inp, keras.layers.Dense(3, kernel_initializer=seeded(4))(x))


@pytest.mark.parametrize("cls,rule", [(tfvis.GuidedBackprop, "guided backprop"),
                                      (tfvis.Deconvnet, "deconvnet")])
def test_ungated_relu_family_layers_are_named(cls, rule):
    model = relu_family_model()
    with pytest.warns(UserWarning, match="left ungated") as record:
        explainer = cls(model, verbose=0)
    message = " ".join(str(w.message) for w in record if "ungated" in str(w.message))
    for path in ("leaky", "c_elu", "prelu"):
        assert repr(path) in message
    assert "'c_relu'" not in message and rule in message
    assert explainer.gates == 1


def test_a_pure_relu_model_gets_no_ungated_warning():
    model = gap_dense_model(input_shape=(8, 8, 3), classes=3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tfvis.GuidedBackprop(model, verbose=0).gates == 2
        tfvis.Saliency(relu_family_model(), verbose=0)  # no rule: nothing to warn about


# -- unbuilt Sequential models are refused, never built -----------------------------------------


def unbuilt_sequential():
    return keras.Sequential([
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(3),
    ])


@pytest.mark.parametrize("name", tfvis.methods())
def test_unbuilt_sequential_is_refused_and_left_unbuilt(name, fingerprint):
    model = unbuilt_sequential()
    before = fingerprint(model)
    with pytest.raises(ValueError, match=r"not built.*keras.Input.*model.build"):
        tfvis.get_explainer(name, model, verbose=0)
    assert model.built is False and not model.weights
    assert fingerprint(model) == before


# -- CAM as in Zhou et al.: signed; Grad-CAM is its ReLU over the pooled area -------------------


def test_cam_is_signed_and_differs_from_gradcam_by_the_relu(fingerprint):
    model = gap_dense_model(input_shape=(8, 8, 3), classes=3, activation="softmax")
    before = fingerprint(model)
    x = np.random.default_rng(5).normal(size=(4, 8, 8, 3)).astype("float32")
    targets = [0, 1, 2, 1]
    cam = tfvis.CAM(model, verbose=0)(x, targets)
    grad = tfvis.GradCAM(model, verbose=0)(x, targets)
    assert cam.raw.min() < 0  # signed: evidence against the class is kept
    area = 8 * 8  # the pooled feature map is at input resolution (padding="same")
    np.testing.assert_allclose(np.maximum(cam.raw, 0) / area, grad.raw, rtol=1e-5, atol=1e-7)
    # min-max of the signed map: its minimum (not zero) maps to 0
    for raw, m in zip(cam.raw, cam.maps):
        expected = (raw - raw.min()) / (raw.max() - raw.min())
        np.testing.assert_allclose(m, expected, atol=1e-5)
    relu = tfvis.CAM(model, relu=True, verbose=0)(x, targets)
    np.testing.assert_allclose(relu.raw, np.maximum(cam.raw, 0), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(relu.maps, grad.maps, atol=1e-5)
    assert fingerprint(model) == before


# -- the retrace rule -----------------------------------------------------------------------


def test_new_batch_sizes_retrace_at_most_once_per_chunk_shape():
    model = gap_dense_model(input_shape=(8, 8, 3), classes=3)
    explainer = tfvis.GradCAM(model, verbose=0)
    rng = np.random.default_rng(0)
    counts = []
    for n in (5, 3, 7):  # chunk shapes min(4, n): 4, 3, 4 (the 7's last chunk padded to 4)
        explainer(rng.random((n, 8, 8, 3)).astype("float32"), batch_size=4)
        counts.append(explainer.traces())
    assert counts[0] == 1 and counts[-1] <= 2
    assert counts[2] == counts[1]  # shape 4 again: no trace
    for n in (3, 5, 7, 4):  # only shapes seen before: never traced again
        explainer(rng.random((n, 8, 8, 3)).astype("float32"), targets=1, batch_size=4)
    assert explainer.traces() == counts[-1]
    # after a second shape, the shape-relaxed trace serves every later chunk size
    for n, batch_size in ((2, 4), (1, 4), (9, 8), (9, 16)):
        explainer(rng.random((n, 8, 8, 3)).astype("float32"), batch_size=batch_size)
    assert explainer.traces() <= 2


# -- explaining records no losses on the user's layers -----------------------------------------


def regularized_model():
    inp = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="c",
                            activity_regularizer=keras.regularizers.L2(0.1),
                            kernel_initializer=seeded(1))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(3, activity_regularizer="l1", name="d",
                             kernel_initializer=seeded(2))(x)
    return keras.Model(inp, out)


class RegularizedSubclass(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(3, 3, activity_regularizer="l2")
        self.head = keras.layers.Dense(2)

    def call(self, x):
        return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))


@pytest.mark.parametrize("name", ["gradcam", "saliency", "guided_backprop", "occlusion",
                                  "integrated_gradients"])
def test_activity_regularizers_record_no_losses(name, pixels, fingerprint):
    model = regularized_model()
    before = fingerprint(model)
    assert model.losses == []
    options = {"patch_size": 4} if name == "occlusion" else {}
    tfvis.get_explainer(name, model, verbose=0, **options)(pixels, targets=1)
    assert model.losses == [] and all(not layer.losses for layer in model.layers)
    assert fingerprint(model) == before
    # losses the user's own call recorded are kept, as they were
    model(pixels)
    own = list(model.losses)
    assert len(own) == 2
    tfvis.get_explainer(name, model, verbose=0, **options)(pixels, targets=2)
    assert len(model.losses) == 2 and all(a is b for a, b in zip(model.losses, own))


def test_a_subclassed_model_records_no_losses(pixels):
    model = RegularizedSubclass()
    model(pixels[:1])
    own = list(model.losses)
    tfvis.Saliency(model, verbose=0)(pixels, targets=0)
    assert len(model.losses) == len(own) == 1 and model.losses[0] is own[0]
