"""Test configuration: deterministic CPU kernels and small shared models.

oneDNN kernels round differently with the batch size; batch-invariance tests compare
exactly-computed values, so the tests (never the library) switch them off before TF loads.
"""

import os

os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402


def seeded(seed):
    """Kernel initialiser with a fixed seed (never touches the global RNG)."""
    return keras.initializers.GlorotUniform(seed=seed)


def gap_dense_model(input_shape=(16, 20, 3), classes=4, activation="softmax", name="gapnet"):
    """Conv -> Conv -> GAP -> Dense, with seeded weights and a fused final activation."""
    inp = keras.Input(input_shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1",
                            kernel_initializer=seeded(1))(inp)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="c2",
                            kernel_initializer=seeded(2))(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(classes, activation=activation, name="head",
                             kernel_initializer=seeded(3), bias_initializer="ones")(x)
    return keras.Model(inp, out, name=name)


def conv_base(name="base", shape=(16, 20, 3)):
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="convA",
                            kernel_initializer=seeded(11))(inp)
    x = keras.layers.Conv2D(6, 3, strides=2, padding="same", activation="relu", name="convB",
                            kernel_initializer=seeded(12))(x)
    return keras.Model(inp, x, name=name)


def nested_model():
    """Input -> Rescaling -> base (a functional model used as a layer) -> GAP -> Dense."""
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Rescaling(1 / 255, name="rescale")(inp)
    x = conv_base()(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(4, activation="softmax", name="head",
                             kernel_initializer=seeded(13))(x)
    return keras.Model(inp, out, name="outer")


@pytest.fixture
def model():
    return gap_dense_model()


@pytest.fixture
def images():
    return np.random.default_rng(0).random((5, 16, 20, 3)).astype("float32")


@pytest.fixture
def fingerprint():
    """A function ``model -> str`` hashing everything tfvis must never change in a model.

    Covers every weight (BN moving statistics included), the config, and per layer (nested
    models included) its activation, trainable flag, dtype policy and number of graph nodes
    (a derived keras.Model built on the user's layers would add nodes).
    """
    import hashlib
    import json

    def snapshot(model):
        digest = hashlib.sha256()
        for weight in model.weights:
            digest.update(weight.path.encode())
            digest.update(np.asarray(weight.numpy()).tobytes())
        digest.update(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
        for layer in model._flatten_layers(include_self=True, recursive=True):
            digest.update(repr((
                layer.name,
                layer.trainable,
                getattr(layer, "activation", None),
                layer.dtype_policy.name,
                len(layer._inbound_nodes),
                len(layer._outbound_nodes),
            )).encode())
        return digest.hexdigest()

    return snapshot


def mixed_float16_twin():
    """``(reference, twin)``: `gap_dense_model` in float32, and the same weights built under the
    global ``mixed_float16`` policy (restored afterwards, also on error)."""
    reference = gap_dense_model()
    policy = keras.config.dtype_policy()
    try:
        keras.config.set_dtype_policy("mixed_float16")
        model = gap_dense_model()
    finally:
        keras.config.set_dtype_policy(policy)
    assert keras.config.dtype_policy().name == policy.name
    model.set_weights(reference.get_weights())
    assert model.get_layer("c2").compute_dtype == "float16"
    return reference, model
