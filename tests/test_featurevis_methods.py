"""Feature-visualisation methods: ceilings on the trained demo CNN, DeepDream, multifaceted."""

import keras
import numpy as np
import pytest
from conftest import seeded

import tfvis.featurevis as fv
from tfvis.featurevis import objectives as O


@pytest.fixture(scope="module")
def demo():
    """The demo CNN trained on 1000 48x48 shapes, and 200 held-out test images."""
    from tfvis.datasets import shapes
    from tfvis.demo import train

    keras.utils.set_random_seed(0)
    model = train(shapes(1000, 48, seed=0), epochs=5, verbose=0)
    return model, shapes(200, 48, seed=1)


def test_class_model_is_classified_and_beats_natural_images(demo):
    model, test = demo
    common = dict(steps=64, learning_rate=0.1, seed=0, verbose=0)
    result = fv.class_model(model, range(4), **common)  # Simonyan: the logit
    logits = fv.score_images(model, O.class_logit(range(4)), result.images)
    natural = fv.score_images(model, O.class_logit(test.labels), test.images)
    for k in range(4):
        assert logits[k] > natural[test.labels == k].max(), (k, logits[k], natural)
    # the log-probability variant is classified as its class with probability > 0.9 (on this
    # model the circle's logit grows with the triangle's, so its logit image is a triangle)
    result = fv.class_model(model, range(4), score="logprob", **common)
    probs = model.predict(result.images, verbose=0)
    assert np.all(probs[np.arange(4), np.arange(4)] > 0.9), probs
    assert result.labels == ("class 0", "class 1", "class 2", "class 3")


def test_filters_reach_the_ceiling_of_the_test_set(demo):
    model, test = demo
    from tfvis.surgery.graph import capture

    natural = capture(model, test.images, ["conv3b"])["conv3b"].numpy().mean((1, 2))
    channels = [int(c) for c in np.argsort(-natural.max(0))[[0, 4, 8, 12]]]
    result = fv.filters(model, "conv3b", channels=channels, steps=64, learning_rate=0.2,
                        seed=0, redirect_relu=8, verbose=0)
    got = fv.score_images(model, O.channel("conv3b", channels), result.images)
    assert np.all(got > natural[:, channels].max(0)), (got, natural[:, channels].max(0))
    fig = result.grid()
    assert len(fig.axes) == 4


def fully_conv():
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(1))(inp)
    x = keras.layers.Conv2D(5, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(2))(x)
    return keras.Model(inp, x)


def test_deepdream_octaves_shape_range_and_growth(fingerprint):
    model = fully_conv()
    before = fingerprint(model)
    image = np.random.default_rng(0).uniform(0.2, 0.8, (40, 36, 3)).astype("float32")
    result = fv.deepdream(model, image, "c2", octaves=3, octave_scale=1.3, steps_per_octave=6,
                          learning_rate=0.02, verbose=0)
    assert result.images.shape == (1, 40, 36, 3) and result.images.dtype == np.float32
    assert 0.0 <= result.images.min() and result.images.max() <= 1.0
    assert not np.allclose(result.images[0], image)
    octave = result.octave_values  # (octaves, before/after, N)
    assert octave.shape == (3, 2, 1) and np.all(octave[:, 1] > octave[:, 0])
    assert [s for s in result.octave_shapes] == [(24, 21), (31, 28), (40, 36)]
    assert fingerprint(model) == before


def test_deepdream_one_octave_is_plain_gradient_ascent():
    model = fully_conv()
    image = np.random.default_rng(1).uniform(0.2, 0.8, (1, 20, 24, 3)).astype("float32")
    dream = fv.deepdream(model, image, "c1", octaves=1, steps_per_octave=5,
                         learning_rate=0.02, seed=7, verbose=0)
    plain = fv.visualize(model, O.layer_norm("c1"), start=image, steps=5, seed=7,
                         image_shape=(20, 24), param=fv.params.Pixel("clip"),
                         transforms=(fv.transforms.Roll(),), normalize_gradients=True,
                         optimizer=keras.optimizers.SGD(0.02), verbose=0)
    np.testing.assert_array_equal(dream.images, plain.images)
    # tiles: the same result when the gradient is computed in 3 x 3 tiles (exact for a
    # pointwise model and an objective that averages over positions)
    inp = keras.Input((None, None, 3))
    model = keras.Model(inp, keras.layers.Conv2D(4, 1, activation="relu", name="c1",
                                                 kernel_initializer=seeded(3))(inp))
    whole = fv.Visualizer(model, image_shape=(20, 24), param=fv.params.Pixel("clip"),
                          transforms=(), optimizer=keras.optimizers.SGD(0.02))
    tiled = fv.Visualizer(model, image_shape=(20, 24), param=fv.params.Pixel("clip"),
                          transforms=(), optimizer=keras.optimizers.SGD(0.02), tile_size=8)
    objective = O.channel("c1", 2)  # channel mean: a sum over positions, tiles add up exactly
    a = whole.run(objective, start=image, steps=3, verbose=0)
    b = tiled.run(objective, start=image, steps=3, verbose=0)
    np.testing.assert_allclose(a.images, b.images, atol=1e-5)


def test_multifaceted_starts_are_cluster_means():
    pytest.importorskip("sklearn")
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA

    from tfvis.featurevis.multifaceted import layer_activations

    model = fully_conv()
    rng = np.random.default_rng(0)
    # three kinds of images: dark, bright, and striped
    images = np.concatenate([rng.uniform(0.0, 0.2, (6, 12, 12, 3)),
                             rng.uniform(0.8, 1.0, (6, 12, 12, 3)),
                             np.tile((np.arange(12) % 2)[None, None, :, None], (6, 12, 1, 3))
                             * 0.9 + rng.uniform(0, 0.05, (6, 12, 12, 3))]).astype("float32")
    result = fv.multifaceted(model, O.channel("c2", 1), images, facets=3, steps=4,
                             image_shape=(12, 12), seed=0, verbose=0)
    assert result.images.shape == (3, 12, 12, 3)
    starts, clusters = result.starts, result.clusters
    assert len({tuple(np.round(s.ravel()[:20], 5)) for s in starts}) == 3  # distinct
    for j in range(3):
        np.testing.assert_allclose(starts[j], images[clusters == j].mean(0), atol=1e-6)
    # the clustering is the PCA + k-means of the layer's activations
    acts = layer_activations(model, images, "c2")
    reduced = PCA(min(50, len(acts)), random_state=0).fit_transform(acts)
    labels = KMeans(3, n_init=10, random_state=0).fit(reduced).labels_
    assert np.array_equal(labels, clusters)
    assert sorted(np.bincount(clusters)) == [6, 6, 6]
    with pytest.raises(ValueError, match="facets"):
        fv.multifaceted(model, O.channel("c2", 1), images[:2], facets=3, image_shape=(12, 12),
                        verbose=0)
