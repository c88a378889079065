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


@pytest.fixture
def model():
    return gap_dense_model()


@pytest.fixture
def images():
    return np.random.default_rng(0).random((5, 16, 20, 3)).astype("float32")
