"""Exact receptive fields: closed form on a hand-built stack, and the gradient support of a
unit on random models equals the computed field clipped to the image."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfvis.surgery.receptive import receptive_field


def seeded(seed):
    return keras.initializers.RandomNormal(seed=seed)


def stack(padding="valid"):
    """3x3 s1, 3x3 s2, pool 2, 3x3 dilation 2 (the issue's stack)."""
    inp = keras.Input((40, 40, 3))
    x = keras.layers.Conv2D(4, 3, padding=padding, name="a", kernel_initializer=seeded(1))(inp)
    x = keras.layers.Conv2D(4, 3, strides=2, padding=padding, name="b",
                            kernel_initializer=seeded(2))(x)
    x = keras.layers.AveragePooling2D(2, name="pool")(x)
    x = keras.layers.Conv2D(4, 3, dilation_rate=2, padding=padding, name="d",
                            kernel_initializer=seeded(3))(x)
    return keras.Model(inp, x)


def test_closed_form_on_the_hand_built_stack():
    model = stack()
    expect = {"a": (3, 1, 0, 38), "b": (5, 2, 0, 18), "pool": (7, 4, 0, 9), "d": (23, 4, 0, 5)}
    for layer, (size, jump, start, length) in expect.items():
        f = receptive_field(model, layer)
        assert f.size == (size, size) and f.jump == (jump, jump)
        assert f.start == (start, start) and f.feature_size == (length, length)
    f = receptive_field(model, "d")
    np.testing.assert_array_equal(f.box(1, 2), [8, 4, 31, 27])  # x0 = 2 * 4, y0 = 1 * 4
    # "same": TF pads total // 2 before; the stride-2 conv on 40 pixels pads 0 before (total 1)
    same = receptive_field(stack("same"), "d")
    assert same.size == (23, 23) and same.jump == (4, 4)
    assert same.start == (-1 - 0 - 4 * 2, -1 - 0 - 4 * 2)  # a: -1, b: 0, pool: 0, d: -2 jumps
    np.testing.assert_array_equal(same.box(0, 0), [0, 0, 14, 14])  # clipped to the image


def support_box(model, layer, y, x, shape):
    """The bounding box of the pixels whose gradient on unit (y, x) is non-zero."""
    from tfvis.surgery import capture

    image = tf.constant(np.random.default_rng(0).normal(size=(1, *shape)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch(image)
        act = capture(model, image, [layer])[layer]
        unit = tf.reduce_sum(act[0, y, x, :])
    g = np.abs(tape.gradient(unit, image).numpy()[0]).sum(-1)
    ys, xs = np.nonzero(g)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


def random_model():
    """Linear layers (no ReLU: every path counts): same/valid padding, strides, dilation,
    average pooling, zero padding, a residual branch and a nested base."""
    inner_in = keras.Input((None, None, 4))
    h = keras.layers.Conv2D(4, 3, strides=2, padding="same", name="s2",
                            kernel_initializer=seeded(5))(inner_in)
    h = keras.layers.Conv2D(4, 3, dilation_rate=2, padding="same", name="dil",
                            kernel_initializer=seeded(6))(h)
    base = keras.Model(inner_in, h, name="base")
    inp = keras.Input((37, 41, 3))
    x = keras.layers.Conv2D(4, 5, padding="same", name="c5", kernel_initializer=seeded(7))(inp)
    x = keras.layers.ZeroPadding2D(((1, 0), (2, 1)), name="zp")(x)
    y = keras.layers.Conv2D(4, 3, padding="valid", name="branch", kernel_initializer=seeded(8))(x)
    x = keras.layers.Cropping2D(1, name="crop")(x)
    x = keras.layers.Add(name="add")([x, y])
    x = keras.layers.AveragePooling2D(3, strides=2, padding="same", name="pool")(x)
    x = base(x)
    return keras.Model(inp, x, name="random")


@pytest.mark.parametrize("layer", ["c5", "add", "pool", "base/s2", "base/dil", "base"])
def test_gradient_support_equals_the_field(layer):
    model = random_model()
    field = receptive_field(model, layer)
    h, w = field.feature_size
    for y, x in [(0, 0), (h - 1, w - 1), (h // 2, w // 3), (0, w - 1)]:
        assert support_box(model, layer, y, x, (37, 41, 3)) == field.box(y, x).tolist(), (y, x)


def test_unknown_layers_and_sizes_are_named():
    inp = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(2, 3)(inp)
    x = keras.layers.UpSampling2D(name="up")(x)
    model = keras.Model(inp, x)
    with pytest.raises(ValueError, match="image_size"):
        receptive_field(model, "up")
    with pytest.raises(ValueError, match="UpSampling2D has no known receptive-field rule"):
        receptive_field(model, "up", image_size=(16, 16))
