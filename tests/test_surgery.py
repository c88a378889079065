"""Model surgery: the graph runner, layer resolution, the logits bypass, nested models, and
the promise that nothing about the user's model or inputs changes."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import conv_base, gap_dense_model, nested_model, seeded

import tfvis
from tfvis.surgery import (
    gap_dense_head,
    layer_table,
    logits_replacements,
    resolve_layer,
    run_graph,
    with_activation,
)

CAM_FAMILY = (tfvis.CAM, tfvis.GradCAM, tfvis.GradCAMPlusPlus, tfvis.CounterfactualGradCAM)


def flat_model():
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inp)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="convA")(x)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="convB")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="head")(x)
    return keras.Model(inp, out, name="flat")


@pytest.fixture
def pixels():
    return np.random.default_rng(5).integers(0, 256, (3, 16, 20, 3)).astype(np.float32)


# -- the graph runner -------------------------------------------------------------------------


def test_run_graph_reproduces_the_model(images, pixels):
    bn = keras.Sequential(
        [keras.Input((16, 20, 3)), keras.layers.Conv2D(4, 3, kernel_initializer=seeded(14)),
         keras.layers.BatchNormalization(), keras.layers.Dropout(0.5),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, kernel_initializer=seeded(15))]
    )
    bn.layers[1].moving_mean.assign(np.arange(4, dtype=np.float32))
    for model, x in ((gap_dense_model(), images), (nested_model(), pixels), (bn, images)):
        np.testing.assert_allclose(
            run_graph(model, tf.constant(x)).numpy(), model(x, training=False).numpy(),
            rtol=1e-6, atol=1e-7,
        )


def test_layer_table_enters_nested_models():
    paths = [info.path for info in layer_table(nested_model())]
    assert paths == ["rescale", "base", "base/convA", "base/convB", "gap", "head"]
    shapes = {info.path: info.shape for info in layer_table(nested_model())}
    assert shapes["base/convB"] == (None, 8, 10, 6)
    assert tfvis.layer_table is layer_table


def test_with_activation_shares_weights_and_leaves_the_layer_alone(model, images):
    head = model.get_layer("head")
    view = with_activation(head, keras.activations.linear)
    assert head.activation is keras.activations.softmax
    assert view.kernel is head.kernel and view.bias is head.bias
    pooled = np.random.default_rng(0).random((2, 6)).astype(np.float32)
    np.testing.assert_allclose(view(pooled).numpy(), pooled @ head.kernel.numpy() + 1.0,
                               rtol=1e-5, atol=1e-6)
    head.kernel.assign(head.kernel * 2)  # later updates are seen through the view
    np.testing.assert_allclose(view(pooled).numpy(), pooled @ head.kernel.numpy() + 1.0,
                               rtol=1e-5, atol=1e-6)


def test_with_activation_view_records_nothing_on_the_layer(fingerprint):
    inp = keras.Input((6,))
    dense = keras.layers.Dense(3, activation="softmax", activity_regularizer="l2", name="reg",
                               kernel_initializer=seeded(17))
    model = keras.Model(inp, dense(inp))
    x = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    model(x)  # the layer now holds the activity loss of this call
    (own,) = dense.losses
    before = fingerprint(model)
    view = with_activation(dense, keras.activations.linear)
    out = view(2 * x)
    (view_loss,) = view.losses  # the view records its own activity loss ...
    expected = np.sum(np.square(2 * x @ dense.kernel.numpy() + dense.bias.numpy())) / 4 * 0.01
    np.testing.assert_allclose(view_loss.numpy(), expected, rtol=1e-5)
    (still,) = dense.losses  # ... and the layer keeps its own, untouched
    assert still is own and not np.isclose(still.numpy(), view_loss.numpy())
    view(keras.Input((6,)))  # a symbolic call adds a node to the view only
    assert len(dense._inbound_nodes) == 1 and len(view._inbound_nodes) == 1
    assert fingerprint(model) == before
    # Same variables: an update of the layer is seen by the view.
    assert [id(v) for v in view.weights] == [id(v) for v in dense.weights]
    dense.bias.assign(dense.bias + 1.0)
    np.testing.assert_allclose(view(x).numpy(), x @ dense.kernel.numpy() + dense.bias.numpy(),
                               rtol=1e-5, atol=1e-6)
    assert np.allclose(dense.bias.numpy(), 1.0)


# -- logits bypass ----------------------------------------------------------------------------


def _heads(kind):
    """A conv net ending in softmax/sigmoid in the form ``kind``, and its linear twin."""
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="feat",
                            kernel_initializer=seeded(21))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    fused = {"fused_softmax": "softmax", "fused_sigmoid": "sigmoid"}.get(kind)
    dense = keras.layers.Dense(4, activation=fused, name="fc", kernel_initializer=seeded(22))
    out = dense(x)
    if kind == "softmax_layer":
        out = keras.layers.Softmax(name="prob")(out)
    elif kind == "activation_layer":
        out = keras.layers.Activation("softmax", name="prob")(out)
    elif kind == "activation_sigmoid":
        out = keras.layers.Activation("sigmoid", name="prob")(out)
    elif kind == "ops_softmax":
        out = keras.ops.softmax(out)
    model = keras.Model(inp, out)
    twin = keras.Model(inp, keras.layers.Dense(4, name="fc_linear")(x))
    twin.get_layer("fc_linear").set_weights(dense.get_weights())
    return model, twin


@pytest.mark.parametrize(
    "kind",
    ["fused_softmax", "fused_sigmoid", "softmax_layer", "activation_layer",
     "activation_sigmoid", "ops_softmax"],
)
def test_logits_bypass(kind, images, fingerprint):
    model, twin = _heads(kind)
    before = fingerprint(model)
    logits = twin(images).numpy()
    probs = model(images).numpy()
    assert not np.allclose(logits, probs)
    np.testing.assert_allclose(run_graph(model, tf.constant(images),
                                         replace=logits_replacements(model)).numpy(),
                               logits, rtol=1e-5, atol=1e-6)
    e = tfvis.GradCAM(model, relu=False, verbose=0).explain(images, targets=[0, 1, 2, 3, 0])
    np.testing.assert_allclose(e.scores, logits[np.arange(5), [0, 1, 2, 3, 0]], rtol=1e-5)
    np.testing.assert_array_equal(e.targets, [0, 1, 2, 3, 0])
    top = tfvis.GradCAM(model, relu=False, verbose=0).explain(images)
    np.testing.assert_array_equal(top.targets, logits.argmax(-1))
    kept = tfvis.GradCAM(model, logits=False, relu=False, verbose=0).explain(images, 1)
    np.testing.assert_allclose(kept.scores, probs[:, 1], rtol=1e-5)
    assert fingerprint(model) == before
    # The user's model still computes probabilities.
    np.testing.assert_allclose(model(images).numpy(), probs, rtol=1e-6)


def test_logits_bypass_inside_a_nested_model(images, fingerprint):
    inner = gap_dense_model(name="inner")
    inp = keras.Input((16, 20, 3))
    model = keras.Model(inp, inner(inp))
    before = fingerprint(model)
    twin = gap_dense_model(activation=None, name="twin")
    twin.set_weights(inner.get_weights())
    e = tfvis.GradCAM(model, layer="inner/c2", verbose=0).explain(images, targets=2)
    np.testing.assert_allclose(e.scores, twin(images).numpy()[:, 2], rtol=1e-5)
    assert inner.get_layer("head").activation is keras.activations.softmax
    assert fingerprint(model) == before


# -- layer resolution -------------------------------------------------------------------------


def test_resolve_layer_forms():
    model = nested_model()
    base = model.get_layer("base")
    assert resolve_layer(model, "gap").path == "gap"
    assert resolve_layer(model, "base/convA").path == "base/convA"
    assert resolve_layer(model, "convA").path == "base/convA"  # a leaf name inside a nested model
    assert resolve_layer(model, base.get_layer("convB")).path == "base/convB"
    assert resolve_layer(model, base).path == "base"
    assert resolve_layer(model, 1).layer is model.layers[1]
    assert resolve_layer(model, -1).path == "head"
    assert resolve_layer(model, -len(model.layers) + 1).layer is model.layers[1]
    assert resolve_layer(model).path == "base/convB"  # auto: last spatial, inside the base
    for spec in ("base/convA", "convA", base.get_layer("convA")):
        assert tfvis.GradCAM(model, layer=spec).layer == "base/convA"
    assert tfvis.GradCAM(model).layer == "base/convB"


def test_resolve_layer_errors():
    model = nested_model()
    with pytest.raises(ValueError, match=r"(?s)Did you mean 'convB'.*base/convB +\(None, 8, 10, 6"):
        resolve_layer(model, "convb")
    with pytest.raises(ValueError, match="out of range"):
        resolve_layer(model, len(model.layers))
    with pytest.raises(ValueError, match="is the input of model"):
        resolve_layer(model, 0)  # functional models list their InputLayer first
    with pytest.raises(ValueError, match="not part of model"):
        resolve_layer(model, keras.layers.Dense(2))
    with pytest.raises(TypeError, match="name, path, index"):
        resolve_layer(model, True)
    with pytest.raises(TypeError, match="float"):
        resolve_layer(model, 1.5)
    with pytest.raises(ValueError, match=r"(?s)needs a rank-4.*base/convB"):
        tfvis.GradCAM(model, layer="head")  # a Dense layer
    flat = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="no layer with a rank-4 output"):
        tfvis.GradCAM(flat)


def test_ambiguous_leaf_name_lists_full_paths():
    inp = keras.Input((8, 8, 3))
    a = conv_base("left", (8, 8, 3))(inp)
    b = conv_base("right", (8, 8, 3))(inp)
    x = keras.layers.GlobalAveragePooling2D()(keras.layers.Add()([a, b]))
    out = keras.layers.Dense(2, kernel_initializer=seeded(16))(x)
    model = keras.Model(inp, out)
    with pytest.raises(ValueError, match=r"ambiguous(?s:.*)left/convA(?s:.*)right/convA"):
        resolve_layer(model, "convA")
    assert resolve_layer(model, "right/convA").layer is model.get_layer("right").get_layer("convA")
    e = tfvis.GradCAM(model, layer="right/convA", relu=False, verbose=0)
    e = e.explain(np.ones((1, 8, 8, 3)), 0)
    assert e.layer == "right/convA"


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.conv = keras.layers.Conv2D(4, 3)
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.fc = keras.layers.Dense(2)

    def call(self, x):
        return self.fc(self.pool(self.conv(x)))


def test_subclassed_model_and_unbuilt_sequential_are_clear_errors():
    model = Subclassed()
    model(np.zeros((1, 8, 8, 3), np.float32))
    for cls in CAM_FAMILY:
        with pytest.raises(TypeError, match="subclassed model.*functional API"):
            cls(model)
    unbuilt = keras.Sequential([keras.layers.Conv2D(4, 3), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built.*keras.Input"):
        tfvis.GradCAM(unbuilt)


# -- nested models ----------------------------------------------------------------------------


def test_nested_equals_flat(pixels):
    nested = nested_model()
    flat = flat_model()
    flat.set_weights(nested.get_weights())
    np.testing.assert_allclose(flat(pixels).numpy(), nested(pixels).numpy(), rtol=1e-6)
    for cls in CAM_FAMILY:
        for inner in (("convB",) if cls is tfvis.CAM else ("convA", "convB")):
            a = cls(nested, layer=f"base/{inner}", relu=False, verbose=0).explain(pixels, [0, 3, 1])
            b = cls(flat, layer=inner, relu=False, verbose=0).explain(pixels, [0, 3, 1])
            assert a.layer == f"base/{inner}" and b.layer == inner
            assert np.abs(b.raw).max() > 0
            np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-8)
            np.testing.assert_allclose(a.scores, b.scores, rtol=1e-6)
    # CAM's head sees through the nested model: "base" and "base/convB" are the same features.
    assert gap_dense_head(nested, 0).feature_paths == ("base", "base/convB")
    whole = tfvis.GradCAM(nested, layer="base", verbose=0).explain(pixels, [0, 3, 1])
    inner = tfvis.GradCAM(nested, layer="base/convB", verbose=0).explain(pixels, [0, 3, 1])
    np.testing.assert_allclose(whole.raw, inner.raw, rtol=1e-6)


@pytest.mark.slow
def test_keras_application_nested_as_a_layer(fingerprint):
    base = keras.applications.MobileNetV2(
        weights=None, include_top=False, input_shape=(64, 64, 3), alpha=0.35
    )
    inp = keras.Input((64, 64, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inp)
    x = keras.layers.GlobalAveragePooling2D()(base(x))
    out = keras.layers.Dense(3, activation="softmax", kernel_initializer=seeded(3))(x)
    model = keras.Model(inp, out)
    before = fingerprint(model)
    x = np.random.default_rng(4).integers(0, 256, (2, 64, 64, 3)).astype(np.uint8)
    np.testing.assert_allclose(run_graph(model, tf.constant(x, tf.float32)).numpy(),
                               model(x.astype(np.float32)).numpy(), rtol=1e-4, atol=1e-6)
    inner = tfvis.GradCAM(model, layer=f"{base.name}/block_13_expand_relu", relu=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # untrained: maps of ~1e-12, real, so not "constant"
        e = inner.explain(x, targets=[0, 2])
    assert e.maps.shape == (2, 64, 64) and np.all(np.isfinite(e.maps))
    np.testing.assert_array_equal(e.maps.max(axis=(1, 2)), [1, 1])
    assert e.layer == f"{base.name}/block_13_expand_relu"
    leaf = tfvis.GradCAM(model, layer="block_13_expand_relu", relu=False, verbose=0)
    leaf = leaf.explain(x, [0, 2])
    np.testing.assert_allclose(leaf.raw, e.raw)
    auto = tfvis.GradCAMPlusPlus(model, relu=False, verbose=0)
    assert auto.layer == f"{base.name}/out_relu"
    assert np.all(np.isfinite(auto.explain(x).maps))
    assert tfvis.CAM(model).layer in (base.name, f"{base.name}/out_relu")
    assert fingerprint(model) == before


# -- purity -----------------------------------------------------------------------------------


def bn_model():
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", name="conv", kernel_initializer=seeded(31))(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.Dropout(0.3, name="drop")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, activation="softmax", name="head",
                             kernel_initializer=seeded(32))(x)
    model = keras.Model(inp, out)
    bn = model.get_layer("bn")
    bn.moving_mean.assign(np.linspace(-0.1, 0.1, 6).astype(np.float32))
    bn.moving_variance.assign(np.linspace(0.5, 2.0, 6).astype(np.float32))
    model.get_layer("conv").trainable = False
    return model


def test_nothing_is_mutated_by_explaining_or_by_errors(images, fingerprint):
    model = bn_model()
    x = images.copy()
    before, policy = fingerprint(model), keras.config.dtype_policy().name
    for cls in CAM_FAMILY:
        explainer = cls(model, verbose=0)
        explainer.explain(x, targets=[0, 1, 2, 0, 1], batch_size=2)
        with pytest.raises(ValueError, match="out of range"):
            explainer.explain(x, targets=7)
        with pytest.raises(ValueError, match="NaN"):
            explainer.explain(np.where(x > 0.99, np.nan, x))
    for bad in ("nope", "head"):
        with pytest.raises(ValueError):
            tfvis.GradCAM(model, layer=bad)
    with pytest.raises(ValueError):
        tfvis.CAM(model, layer="conv")
    assert fingerprint(model) == before
    np.testing.assert_array_equal(x, images)
    assert keras.config.dtype_policy().name == policy
    assert model.get_layer("head").activation is keras.activations.softmax
    assert model.get_layer("conv").trainable is False and model.get_layer("bn").trainable


def test_explainer_sees_later_weight_updates(model, images):
    explainer = tfvis.GradCAM(model, verbose=0)
    first = explainer.explain(images, targets=1)
    conv, head = model.get_layer("c2"), model.get_layer("head")
    conv.kernel.assign(conv.kernel.numpy()[::-1] * 1.5)
    head.kernel.assign(-head.kernel)
    second = explainer.explain(images, targets=1)
    fresh = tfvis.GradCAM(model, verbose=0).explain(images, targets=1)
    assert not np.allclose(second.raw, first.raw)
    np.testing.assert_allclose(second.raw, fresh.raw, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(second.scores, fresh.scores, rtol=1e-6)
    assert explainer.traces() == 1
