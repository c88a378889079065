"""InversionNetwork (Dosovitskiy & Brox 2016): an up-convolutional decoder inverting a layer."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, nested_model, seeded

from tfvis.featurevis.inversion_net import InversionNetwork
from tfvis.io import InvalidModelFileError
from tfvis.surgery.graph import capture


@pytest.fixture(scope="module")
def demo():
    """The demo CNN on 32x32 shapes and decoders for an early and the last conv layer."""
    from tfvis.datasets import shapes
    from tfvis.demo import train

    model = train(shapes(400, 32, seed=0), epochs=2, verbose=0)
    data, test = shapes(256, 32, seed=1).images, shapes(48, 32, seed=2).images
    nets = {layer: InversionNetwork(model, layer, learning_rate=3e-3, batch_size=8, seed=0,
                                    verbose=0).fit(data, epochs=3)
            for layer in ("conv1a", "conv3b")}
    return model, data, test, nets


def bn_model():
    """24x32 conv net with BatchNormalization (non-trivial statistics), Dropout and a frozen
    layer: what fit must leave exactly as it is."""
    inp = keras.Input((24, 32, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", name="c1", kernel_initializer=seeded(1))(inp)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.ReLU(name="relu")(x)
    x = keras.layers.MaxPooling2D(name="pool")(x)
    x = keras.layers.Conv2D(12, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(2))(x)
    x = keras.layers.Dropout(0.5, name="drop")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="head",
                             kernel_initializer=seeded(3))(x)
    model = keras.Model(inp, out, name="bnnet")
    rng = np.random.default_rng(5)
    bn = model.get_layer("bn")
    bn.set_weights([rng.uniform(0.5, 2, 8), rng.normal(0, 0.2, 8), rng.normal(0, 0.3, 8),
                    rng.uniform(0.5, 2, 8)])
    model.get_layer("c1").trainable = False
    return model


@pytest.fixture(scope="module")
def small():
    from tfvis.datasets import shapes

    return shapes(70, (24, 32), seed=3).images


def test_early_layer_reconstructs_better_than_the_last_conv_layer(demo):
    model, data, test, nets = demo
    mse = {layer: inv.evaluate(test) for layer, inv in nets.items()}
    baseline = float(np.mean(np.square(test - data.mean(0))))  # the mean training image
    # measured: conv1a 0.0105, conv3b 0.0218, mean image 0.0347
    assert mse["conv1a"] < 0.7 * mse["conv3b"] and mse["conv3b"] < 0.8 * baseline, (mse,
                                                                                  baseline)
    for inv in nets.values():
        assert inv.history[-1] < 0.7 * inv.history[0], inv.history
    recon = nets["conv3b"].invert(test)
    assert recon.dtype == np.float32 and recon.shape == test.shape
    assert recon.min() >= 0 and recon.max() <= 1
    np.testing.assert_allclose(np.mean(np.square(recon - test)), mse["conv3b"], rtol=1e-5)
    assert nets["conv3b"].feature_shape == (8, 8, 64)


def test_fit_leaves_the_model_unchanged_and_compiles_once(small, fingerprint, capsys):
    model = bn_model()
    before = fingerprint(model)
    inv = InversionNetwork(model, "c2", batch_size=32, learning_rate=3e-3, verbose=0)
    inv.fit(small, epochs=3)  # 70 images: batches of 32, 32 and 6
    assert fingerprint(model) == before
    assert capsys.readouterr().out == ""
    assert inv.traces == 1
    inv.invert(small[:3])
    inv.invert(small[:5])
    assert inv.traces == 2
    inv.verbose = 1
    inv.fit(small, epochs=1)
    assert "loss" in capsys.readouterr().out
    assert inv.traces == 2 and len(inv.history) == 4
    assert inv.history[-1] < 0.7 * inv.history[0], inv.history
    assert fingerprint(model) == before


def test_same_seed_gives_the_same_decoder(small):
    from tfvis.featurevis.inversion_net import default_decoder

    model = bn_model()

    def weights(seed):
        inv = InversionNetwork(model, "c2", seed=seed, batch_size=16, verbose=0)
        inv.fit(small[:40], epochs=1)
        return [w.numpy() for w in inv.decoder.weights], inv.invert(small[40:])

    (a, ra), (b, rb) = weights(0), weights(0)
    assert all(np.array_equal(x, y) for x, y in zip(a, b)) and np.array_equal(ra, rb)
    kernels = [[w.numpy() for w in default_decoder((12, 16, 12), (24, 32, 3), seed=s).weights]
               for s in (0, 0, 1)]
    assert all(np.array_equal(x, y) for x, y in zip(kernels[0], kernels[1]))
    assert not np.array_equal(kernels[0][0], kernels[2][0])


def test_a_dataset_of_image_label_pairs_trains_like_the_array(small):
    model = bn_model()
    labels = np.arange(len(small)) % 4
    pairs = tf.data.Dataset.from_tensor_slices((small, labels)).batch(7)
    a = InversionNetwork(model, "c2", batch_size=16, verbose=0).fit(pairs, epochs=2)
    b = InversionNetwork(model, "c2", batch_size=16, verbose=0).fit(small, epochs=2,
                                                                    shuffle=False)
    assert a.history == b.history
    assert all(np.array_equal(x.numpy(), y.numpy())
               for x, y in zip(a.decoder.weights, b.decoder.weights))


def test_save_load_round_trip_and_refusals(demo, tmp_path):
    from tfvis.demo import build_model

    model, _, test, nets = demo
    inv = nets["conv3b"]
    path = inv.save(tmp_path / "inv.keras")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inv.keras"]  # no temp file left
    loaded = InversionNetwork.load(path, model, verbose=0)
    assert np.array_equal(loaded.invert(test), inv.invert(test))
    assert loaded.path == "conv3b" and loaded.history == inv.history
    with pytest.raises(FileExistsError):
        inv.save(path, overwrite=False)
    with pytest.raises(ValueError, match=r"\.keras"):
        inv.save(tmp_path / "inv.h5")
    # another model with the same layers but other weights
    other = build_model((32, 32, 3))
    with pytest.raises(ValueError, match="other weights"):
        InversionNetwork.load(path, other)
    assert not np.array_equal(
        InversionNetwork.load(path, other, check_weights=False).invert(test[:4]),
        inv.invert(test[:4]))
    with pytest.raises(ValueError, match="'conv3b'.*gapnet"):  # no such layer
        InversionNetwork.load(path, gap_dense_model())
    with pytest.raises(ValueError, match=r"images \(32, 32, 3\)"):
        InversionNetwork.load(path, build_model((48, 48, 3)))
    with pytest.raises(ValueError, match="without a preprocess"):
        InversionNetwork.load(path, model, preprocess=lambda x: x)
    model.save(tmp_path / "model.keras")
    with pytest.raises(InvalidModelFileError, match="not a tfvis inversion network"):
        InversionNetwork.load(tmp_path / "model.keras", model)


def test_bad_layers_shapes_and_data_are_refused(small):
    model = bn_model()
    with pytest.raises(ValueError, match="nope"):
        InversionNetwork(model, "nope")
    inv = InversionNetwork(model, "c2", verbose=0)
    with pytest.raises(RuntimeError, match="fit"):
        inv.invert(small)
    with pytest.raises(ValueError, match=r"shape \(4, 20, 20, 3\)"):
        inv.fit(np.zeros((4, 20, 20, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        inv.fit(np.zeros((0, 24, 32, 3), np.float32))
    with pytest.raises(ValueError, match="empty"):
        inv.fit(tf.data.Dataset.from_tensor_slices(np.zeros((0, 24, 32, 3), np.float32)))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        inv.fit(small * 255)
    with pytest.raises(ValueError, match="epochs"):
        inv.fit(small, epochs=0)
    wrong = keras.Sequential([keras.Input((12, 16, 12)), keras.layers.Conv2D(3, 1)])
    with pytest.raises(ValueError, match=r"decoder maps .* to \(12, 16, 3\)"):
        InversionNetwork(model, "c2", decoder=wrong, verbose=0).fit(small[:8])
    inv.fit(small[:8], epochs=1)
    with pytest.raises(ValueError, match="shape"):
        inv.invert(np.zeros((2, 32, 24, 3), np.float32))
    with pytest.raises(ValueError, match="features have shape"):
        inv.decode(np.zeros((2, 12, 16, 5), np.float32))


def test_nested_layer_path_with_the_models_input_range(fingerprint):
    model = nested_model()  # Rescaling(1/255) then base/convB: it takes 0..255 images
    before = fingerprint(model)
    x = np.random.default_rng(0).random((24, 16, 20, 3)).astype(np.float32)
    inv = InversionNetwork(model, "base/convB", input_range=(0, 255), verbose=0).fit(x, epochs=1)
    assert inv.path == "base/convB" and inv.feature_shape == (8, 10, 6)
    feats = capture(model, x * 255, ["base/convB"])["base/convB"].numpy()
    np.testing.assert_allclose(inv.decode(feats), inv.invert(x), atol=1e-6)
    assert fingerprint(model) == before


def test_vector_features_and_a_user_decoder(small):
    model = bn_model()
    inv = InversionNetwork(model, "gap", learning_rate=3e-3, verbose=0).fit(small, epochs=2)
    assert inv.feature_shape == (12,)
    assert inv.invert(small[:3]).shape == (3, 24, 32, 3)
    assert inv.history[-1] < inv.history[0]
    decoder = keras.Sequential([
        keras.Input((12, 16, 12)),
        keras.layers.Conv2DTranspose(3, 4, strides=2, padding="same", activation="sigmoid",
                                     kernel_initializer=seeded(7)),
    ])
    inv = InversionNetwork(model, "c2", decoder=decoder, learning_rate=3e-3, verbose=0)
    inv.fit(small, epochs=2)
    assert inv.decoder is decoder and inv.history[-1] < inv.history[0]


def test_default_decoder_sizes():
    from tfvis.featurevis.inversion_net import default_decoder

    def kinds(decoder):
        return [type(layer).__name__ for layer in decoder.layers]

    exact = default_decoder((7, 7, 512), (224, 224, 3))  # 5 doublings, no resize
    assert exact.output_shape == (None, 224, 224, 3)
    assert kinds(exact).count("Conv2DTranspose") == 5 and "Resizing" not in kinds(exact)
    odd = default_decoder((5, 6, 4), (24, 30, 1))  # 40x48 resized down to the image
    assert odd.output_shape == (None, 24, 30, 1) and kinds(odd)[-1] == "Resizing"
    vector = default_decoder((10,), (24, 32, 3))  # dense to 3x4, three doublings
    assert vector.output_shape == (None, 24, 32, 3) and "Resizing" not in kinds(vector)
    with pytest.raises(ValueError, match="decoder="):
        default_decoder((4, 5), (24, 32, 3))
