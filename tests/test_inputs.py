"""Inputs: every accepted form gives the same batch (cast, never rescaled), bad ones fail
clearly, and maps land where the object is on non-square and grey images."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvis
from tfvis.inputs import as_batch, input_shape

RGB = (None, 16, 20, 3)
GREY = (None, 24, 40, 1)


def test_uint8_is_cast_not_rescaled():
    x = np.random.default_rng(0).integers(0, 256, (2, 16, 20, 3)).astype(np.uint8)
    batch = as_batch(x, RGB)
    assert batch.dtype == np.float32 and batch.max() > 1
    np.testing.assert_array_equal(batch, x.astype(np.float32))


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.uint16, np.int8])
def test_numeric_dtypes_are_cast(dtype):
    x = (np.arange(16 * 20 * 3) % 100).reshape(16, 20, 3).astype(dtype)
    batch = as_batch(x, RGB)
    assert batch.shape == (1, 16, 20, 3) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], x.astype(np.float32))


def test_tensors_and_variables():
    x = np.random.default_rng(1).random((2, 16, 20, 3)).astype(np.float32)
    for form in (tf.constant(x), tf.Variable(x), tf.constant(x, tf.float64),
                 keras.ops.convert_to_tensor(x)):
        np.testing.assert_allclose(as_batch(form, RGB), x, rtol=1e-7)


def test_grey_forms_for_a_one_channel_model():
    grey = np.random.default_rng(2).random((3, 24, 40)).astype(np.float32)
    expected = grey[..., None]
    np.testing.assert_array_equal(as_batch(grey, GREY), expected)  # (N, H, W)
    np.testing.assert_array_equal(as_batch(grey[0], GREY), expected[:1])  # (H, W)
    np.testing.assert_array_equal(as_batch(expected[0], GREY), expected[:1])  # (H, W, 1)
    np.testing.assert_array_equal(as_batch(expected, GREY), expected)  # (N, H, W, 1)


def test_inputs_are_copied_never_modified():
    x = np.random.default_rng(3).random((2, 16, 20, 3)).astype(np.float32)
    keep = x.copy()
    batch = as_batch(x, RGB)
    batch += 1
    np.testing.assert_array_equal(x, keep)


def _dataset_forms(x, y):
    ds = tf.data.Dataset.from_tensor_slices
    return {
        "unbatched": ds(x),
        "batched": ds(x).batch(2),
        "pairs": ds((x, y)).batch(2),
        "unbatched_pairs": ds((x, y)),
        "uint8": ds(x.astype(np.uint8)).batch(3),
    }


def test_datasets_equal_the_array():
    x = np.random.default_rng(4).integers(0, 256, (5, 16, 20, 3)).astype(np.float32)
    y = np.arange(5)
    for name, dataset in _dataset_forms(x, y).items():
        np.testing.assert_array_equal(as_batch(dataset, RGB), x, err_msg=name)


def test_grey_dataset():
    grey = np.random.default_rng(5).random((3, 24, 40)).astype(np.float32)
    ds = tf.data.Dataset.from_tensor_slices(grey)
    np.testing.assert_array_equal(as_batch(ds, GREY), grey[..., None])
    np.testing.assert_array_equal(as_batch(ds.batch(2), GREY), grey[..., None])


@pytest.mark.parametrize(
    ("inputs", "error", "match"),
    [
        (np.zeros((2, 3, 16, 20, 3)), ValueError, "rank 3 or a batch of rank 4"),
        (np.zeros(20), ValueError, "do not fit the model input"),
        (np.zeros((2, 16, 20, 1)), ValueError, r"channels differ \(1 vs 3\).*np.repeat"),
        (np.zeros((2, 16, 20, 4)), ValueError, r"channels differ \(4 vs 3\)"),
        (np.zeros((2, 20, 16, 3)), ValueError, r"axis 1 differ \(20 vs 16\).*resize"),
        (np.zeros((0, 16, 20, 3)), ValueError, "empty"),
        (np.array([["a"]]), TypeError, "numeric"),
        (tf.data.Dataset.from_tensor_slices(np.zeros((0, 16, 20, 3))), ValueError, "empty"),
        (tf.data.Dataset.from_tensor_slices({"image": np.zeros((2, 16, 20, 3))}), TypeError,
         "dicts"),
    ],
)
def test_bad_inputs_are_clear_errors(inputs, error, match):
    with pytest.raises(error, match=match):
        as_batch(inputs, RGB)


def test_colour_image_for_a_grey_model_and_mixed_datasets_are_clear_errors():
    with pytest.raises(ValueError, match=r"one image with 3 channels.*x\.mean"):
        as_batch(np.zeros((24, 40, 3)), GREY)
    mixed = tf.data.Dataset.from_generator(
        lambda: (np.zeros(s, np.float32) for s in ((16, 20, 3), (18, 20, 3))),
        output_signature=tf.TensorSpec((None, None, 3), tf.float32),
    )
    with pytest.raises(ValueError, match="different shapes"):
        as_batch(mixed, (None, None, None, 3))


def test_nan_and_inf_name_the_samples():
    x = np.zeros((4, 16, 20, 3), np.float32)
    x[1, 3, 4, 0] = np.nan
    x[3, 0, 0, 2] = np.inf
    with pytest.raises(ValueError, match=r"NaN or Inf \(samples \[1, 3\]\)"):
        as_batch(x, RGB)
    assert np.isnan(x[1, 3, 4, 0])  # untouched


def test_model_input_shape():
    model = keras.Sequential([keras.Input((24, 40, 1)), keras.layers.Conv2D(2, 3)])
    assert input_shape(model) == GREY
    a, b = keras.Input((4,)), keras.Input((4,))
    two = keras.Model([a, b], keras.layers.Add()([a, b]))
    with pytest.raises(ValueError, match="2 inputs"):
        input_shape(two)


# -- through an explainer ---------------------------------------------------------------------


def square_detector(shape=(24, 40, 1)):
    """A hand-set conv that responds to bright 3x3 patches, pooled 2x, then GAP -> Dense."""
    inp = keras.Input(shape)
    det = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="det")
    pool = keras.layers.MaxPooling2D(2, name="pool")
    head = keras.layers.Dense(2, name="head")
    out = head(keras.layers.GlobalAveragePooling2D()(pool(det(inp))))
    model = keras.Model(inp, out)
    det.set_weights([np.ones((3, 3, shape[-1], 1), np.float32) / 9, np.full(1, -0.5, np.float32)])
    head.set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    return model


def bright_square(top, left, size=4, shape=(24, 40)):
    x = np.zeros(shape, np.float32)
    x[top : top + size, left : left + size] = 1.0
    return x


@pytest.mark.parametrize(("top", "left"), [(3, 28), (17, 5)])
def test_non_square_hot_spot_lands_on_the_object(top, left):
    model = square_detector()
    x = bright_square(top, left)  # grey (H, W), off-centre in a 24 x 40 image
    for layer in ("det", "pool"):
        e = tfvis.GradCAM(model, layer=layer, verbose=0).explain(x, targets=0)
        assert e.maps.shape == (1, 24, 40)
        row, col = np.unravel_index(e.maps[0].argmax(), (24, 40))
        assert top - 1 <= row <= top + 4 and left - 1 <= col <= left + 4, (layer, row, col)
        # The map is zero far from the square (it would not be with H and W swapped).
        far = np.ones((24, 40), bool)
        far[max(top - 3, 0) : top + 7, max(left - 3, 0) : left + 7] = False
        assert e.maps[0][far].max() == 0


def test_fully_convolutional_model_takes_any_size():
    inp = keras.Input((None, None, 1))
    det = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="det")
    head = keras.layers.Dense(2, name="head")
    model = keras.Model(inp, head(keras.layers.GlobalAveragePooling2D()(det(inp))))
    det.set_weights([np.ones((3, 3, 1, 1), np.float32) / 9, np.full(1, -0.5, np.float32)])
    head.set_weights([np.array([[1.0, -1.0]], np.float32), np.zeros(2, np.float32)])
    assert tfvis.GradCAM(model).layer == "det"  # unknown H and W count as spatial
    explainer = tfvis.GradCAM(model, layer="det", verbose=0)
    for shape, (top, left) in (((24, 40), (15, 30)), ((30, 18), (2, 3))):
        e = explainer.explain(bright_square(top, left, shape=shape))
        assert e.maps.shape == (1, *shape)
        row, col = np.unravel_index(e.maps[0].argmax(), shape)
        assert top <= row <= top + 3 and left <= col <= left + 3


def test_explainer_input_forms_agree():
    model = square_detector()
    grey = np.stack([bright_square(3, 28), bright_square(17, 5), bright_square(10, 10)]) * 200
    explainer = tfvis.GradCAM(model, layer="pool", relu=False, verbose=0)
    reference = explainer.explain(grey[..., None].astype(np.float32), 0)
    assert np.abs(reference.raw).max() > 0
    y = np.zeros(3)
    forms = {
        "uint8": grey.astype(np.uint8),
        "grey_nhw": grey,
        "tensor": tf.constant(grey[..., None]),
        **_dataset_forms(grey[..., None], y),
    }
    for name, x in forms.items():
        e = explainer.explain(x, 0)
        np.testing.assert_array_equal(e.raw, reference.raw, err_msg=name)
        np.testing.assert_array_equal(e.scores, reference.scores, err_msg=name)
    single = explainer.explain(grey[1], 0)  # (H, W) grey: one sample
    np.testing.assert_allclose(single.raw[0], reference.raw[1], rtol=1e-6)
    # uint8 is not rescaled: dividing by 255 changes the scores.
    scaled = explainer.explain(grey[..., None] / 255.0, 0)
    assert not np.allclose(scaled.scores, reference.scores)


def test_explainer_rejects_bad_inputs_without_side_effects(fingerprint):
    model = square_detector()
    before = fingerprint(model)
    explainer = tfvis.GradCAM(model, verbose=0)
    x = np.stack([bright_square(3, 28)] * 2)[..., None]
    x[1, 0, 0, 0] = np.nan
    keep = x.copy()
    with pytest.raises(ValueError, match=r"NaN or Inf \(samples \[1\]\)"):
        explainer.explain(x)
    with pytest.raises(ValueError, match="rank"):
        explainer.explain(np.zeros((1, 1, 24, 40, 1)))
    with pytest.raises(ValueError, match="channels"):
        explainer.explain(np.zeros((24, 40, 3)))
    with pytest.raises(ValueError, match=r"axis 1 differ \(40 vs 24\)"):
        explainer.explain(np.zeros((40, 24)))  # transposed
    np.testing.assert_array_equal(x, keep)
    assert fingerprint(model) == before
    assert explainer.traces() == 0
