"""Multi-input models: the chosen input is explained while the others are held fixed, with
every registered method; shared layers are explained per call site."""

import keras
import numpy as np
import pytest
from conftest import seeded

import tfvis

SHAPE = (12, 14, 3)


def image_and_vector_model():
    """Conv branch (GAP) and a Dense branch of a vector, concatenated, then a ReLU MLP head."""
    image = keras.Input(SHAPE, name="image")
    vector = keras.Input((4,), name="meta")
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="conv",
                            kernel_initializer=seeded(21))(image)
    pooled = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    v = keras.layers.Dense(5, activation="relu", name="meta_dense",
                           kernel_initializer=seeded(22))(vector)
    h = keras.layers.Concatenate()([pooled, v])
    h = keras.layers.Dense(8, activation="relu", name="mix", kernel_initializer=seeded(23))(h)
    out = keras.layers.Dense(3, activation="softmax", name="head",
                             kernel_initializer=seeded(24))(h)
    return keras.Model([image, vector], out)


class Fixed(keras.layers.Layer):
    """Outputs a constant vector per sample (stands in for the fixed second input)."""

    def __init__(self, value, **kwargs):
        super().__init__(**kwargs)
        self.value = np.asarray(value, np.float32)

    def call(self, x):
        return keras.ops.zeros_like(x[:, 0, 0, :1]) + self.value


def with_constant_vector(model, value):
    """The same layers, single input: the vector branch fed a constant."""
    image = keras.Input(SHAPE)
    x = model.get_layer("gap")(model.get_layer("conv")(image))
    v = model.get_layer("meta_dense")(Fixed(value)(image))
    h = model.get_layer("mix")(keras.layers.Concatenate()([x, v]))
    return keras.Model(image, model.get_layer("head")(h))


def options(name):
    cls = tfvis.REGISTRY[name]
    return {**cls.quick_options, "verbose": 0, "batch_size": 64}


@pytest.fixture(scope="module")
def data():
    rng = np.random.default_rng(3)
    return rng.random((3, *SHAPE)).astype(np.float32), rng.normal(size=(4,)).astype(np.float32)


@pytest.mark.parametrize("name", tfvis.methods())
def test_every_method_explains_the_image_input_with_the_vector_fixed(name, data):
    images, value = data
    model = image_and_vector_model()
    vectors = np.tile(value, (3, 1))
    if name == "cam":  # CAM needs GAP -> Dense: this head has an MLP, and says so
        with pytest.raises(ValueError, match="Use GradCAM"):
            tfvis.get_explainer(name, model, input="image", **options(name))
        return
    explainer = tfvis.get_explainer(name, model, input="image", **options(name))
    e = explainer.explain([images, vectors], targets=[0, 1, 2])
    assert e.maps.shape == (3, *SHAPE[:2]) and np.all(np.isfinite(e.raw))
    by_name = explainer.explain({"meta": vectors, "image": images}, targets=[0, 1, 2])
    np.testing.assert_allclose(by_name.raw, e.raw, rtol=1e-5, atol=1e-7)
    single = tfvis.get_explainer(name, with_constant_vector(model, value), **options(name))
    reference = single.explain(images, targets=[0, 1, 2])
    np.testing.assert_allclose(e.raw, reference.raw, rtol=1e-4,
                               atol=1e-6 * max(1.0, np.abs(reference.raw).max()))
    np.testing.assert_allclose(e.scores, reference.scores, rtol=1e-5, atol=1e-6)
    other = explainer.explain([images, vectors + 3.0], targets=[0, 1, 2])
    assert not np.allclose(other.scores, e.scores)  # the vector is really used


def test_input_selection_and_errors(data):
    images, value = data
    model = image_and_vector_model()
    assert tfvis.GradCAM(model, verbose=0).input_index == 0  # the only image-shaped input
    assert tfvis.Saliency(model, input=1, verbose=0).input_index == 1
    with pytest.raises(ValueError, match=r"no input 'img'.*'image'.*'meta'"):
        tfvis.Saliency(model, input="img")
    explainer = tfvis.Saliency(model, verbose=0)
    with pytest.raises(ValueError, match="one array per input"):
        explainer.explain(images)
    with pytest.raises(ValueError, match="different numbers of samples"):
        explainer.explain([images, np.zeros((2, 4))])
    with pytest.raises(ValueError, match=r"missing \['meta'\]"):
        explainer.explain({"image": images})
    a, b = keras.Input(SHAPE, name="left"), keras.Input(SHAPE, name="right")
    pair = keras.Model([a, b], keras.layers.Dense(2)(keras.layers.Flatten()(
        keras.layers.Add()([a, b]))))
    with pytest.raises(ValueError, match=r"2 inputs.*input=<name or index>.*'left'"):
        tfvis.Saliency(pair)


def siamese():
    a, b = keras.Input(SHAPE, name="a"), keras.Input(SHAPE, name="b")
    conv = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv",
                               kernel_initializer=seeded(31))
    pooled = [keras.layers.GlobalAveragePooling2D()(conv(t)) for t in (a, b)]
    out = keras.layers.Dense(2, kernel_initializer=seeded(32))(
        keras.layers.Concatenate()(pooled))
    return keras.Model([a, b], out)


def test_a_siamese_model_is_explained_per_call_site(data):
    images, _ = data
    model = siamese()
    paths = [i.path for i in tfvis.layer_table(model)]
    assert "conv@0" in paths and "conv@1" in paths
    other = images[::-1] * 0.5
    left = tfvis.GradCAM(model, layer="conv@0", input="a", verbose=0).explain([images, other], 1)
    right = tfvis.GradCAM(model, layer="conv@1", input="b", verbose=0).explain([images, other], 1)
    assert left.layer == "conv@0" and right.layer == "conv@1"
    assert not np.allclose(left.raw, right.raw)
    swapped = tfvis.GradCAM(model, layer="conv@1", input="b", verbose=0).explain(
        [other, images], 1)
    # The same image seen by the other tower, with the head's other half of weights: the
    # activations are equal, so the maps differ only through the channel weights.
    assert np.all(np.isfinite(swapped.raw))
    with pytest.raises(ValueError, match=r"called at 2 sites.*'conv@[01]', 'conv@[01]'"):
        tfvis.GradCAM(model, layer="conv", input="a")
