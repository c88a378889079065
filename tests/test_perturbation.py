"""Perturbation engine, Occlusion and RISE: closed forms, invariances, black-box models."""

import hashlib
import json
import math

import cv2
import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvis
from tfvis.engine.imageops import gaussian_blur
from tfvis.engine.perturbation import MaskSet, chunk_size, pair_chunks
from tfvis.explainers.occlusion import patch_positions
from conftest import gap_dense_model


def linear_model(shape, seed=0):
    """f(x) = sum(w * x) + b with known w: occlusion has a closed form."""
    w = np.random.default_rng(seed).normal(size=shape).astype("float32")
    model = keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(1)])
    model.layers[-1].set_weights([w.reshape(-1, 1), np.array([0.7], "float32")])
    return model, w


def spot_model(channels=3):
    """Responds only to a bright spot, wherever it is: global max of a 3x3 mean minus 0.5."""
    inp = keras.Input((None, None, channels))
    conv = keras.layers.Conv2D(1, 3, padding="same", activation="relu", name="detector")
    x = conv(inp)
    x = keras.layers.GlobalMaxPooling2D()(x)
    model = keras.Model(inp, x)
    conv.set_weights([np.full((3, 3, channels, 1), 1 / (9 * channels), "float32"),
                      np.array([-0.5], "float32")])
    return model


def spot_image(height, width, rows, cols, channels=3):
    image = np.full((height, width, channels), 0.1, "float32")
    image[rows[0]:rows[1], cols[0]:cols[1]] = 1.0
    return image


def digest(model):
    h = hashlib.sha256(json.dumps(model.get_config(), sort_keys=True, default=str).encode())
    for w in model.weights:
        h.update(np.asarray(w.numpy()).tobytes())
    return h.hexdigest()


def expected_occlusion(x, w, patch, stride, fill):
    """Brute force: drop = sum over the patch of w * (x - fill), averaged over covering patches."""
    height, width = x.shape[:2]
    rows = patch_positions(height, patch[0], stride[0])
    cols = patch_positions(width, patch[1], stride[1])
    total = np.zeros((height, width))
    count = np.zeros((height, width))
    drops = np.zeros((len(rows), len(cols)))
    for a, r in enumerate(rows):
        for b, c in enumerate(cols):
            box = (slice(r, r + patch[0]), slice(c, c + patch[1]))
            drops[a, b] = np.sum(w[box] * (x[box] - fill[box]))
            total[box] += drops[a, b]
            count[box] += 1
    return total / count, drops


# -- occlusion ------------------------------------------------------------------------------


@pytest.mark.parametrize("fill", [0.0, 0.25, "mean", "array"])
def test_occlusion_of_linear_model_is_patch_sum(fill):
    model, w = linear_model((7, 11, 2))
    x = np.random.default_rng(1).random((2, 7, 11, 2)).astype("float32")
    if fill == "array":
        fill = np.random.default_rng(2).random((7, 11, 2)).astype("float32")
    explainer = tfvis.Occlusion(model, patch_size=(3, 4), stride=(2, 3), fill=fill, verbose=0)
    result = explainer.explain(x, batch_size=5)
    for i in range(2):
        if isinstance(fill, str):
            f = np.broadcast_to(x[i].mean(axis=(0, 1)), x[i].shape)
        else:
            f = np.broadcast_to(fill, x[i].shape)
        expected, drops = expected_occlusion(x[i], w, (3, 4), (2, 3), f)
        np.testing.assert_allclose(result.raw[i], expected, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(result.scores[i] - result.position_scores[i], drops,
                                   rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(result.scores, np.sum(w * x, axis=(1, 2, 3)) + 0.7, rtol=1e-5)


def test_occlusion_blur_fill_is_the_blurred_image():
    model, w = linear_model((9, 8, 1))
    x = np.random.default_rng(3).random((1, 9, 8, 1)).astype("float32")
    result = tfvis.Occlusion(model, patch_size=4, stride=2, fill="blur", verbose=0)(x)
    blurred = gaussian_blur(x, (2.0, 2.0)).numpy()[0]
    # Independent reference of the blur: OpenCV with reflected (BORDER_REFLECT_101) borders.
    reference = cv2.GaussianBlur(x[0, ..., 0], (13, 13), 2.0, borderType=cv2.BORDER_REFLECT_101)
    np.testing.assert_allclose(blurred[..., 0][3:-3, 3:-3], reference[3:-3, 3:-3], atol=1e-5)
    expected, _ = expected_occlusion(x[0], w, (4, 4), (2, 2), blurred)
    np.testing.assert_allclose(result.raw[0], expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("size,patch,stride", [(10, 4, 3), (11, 4, 3), (8, 8, 2), (9, 1, 1),
                                               (224, 16, 8), (64, 15, 7)])
def test_number_of_positions(size, patch, stride):
    starts = patch_positions(size, patch, stride)
    assert len(starts) == math.ceil((size - patch) / stride) + 1
    assert starts[0] == 0 and starts[-1] == size - patch  # every pixel covered
    assert np.all(np.diff(starts) <= stride) and np.all(np.diff(starts) > 0)


def test_occlusion_positions_and_calls_per_image():
    explainer = tfvis.Occlusion(gap_dense_model(), patch_size=(4, 6), stride=(3, 5), verbose=0)
    rows, cols = explainer.positions(16, 20)
    assert (len(rows), len(cols)) == (5, 4)
    assert explainer.num_perturbations(16, 20) == 20
    result = explainer(np.random.default_rng(0).random((2, 16, 20, 3)))
    assert result.position_scores.shape == (2, 5, 4)
    assert result.top_class is None


def test_occlusion_top_class_per_position():
    model = gap_dense_model()
    x = np.random.default_rng(4).random((2, 16, 20, 3)).astype("float32")
    explainer = tfvis.Occlusion(model, patch_size=8, stride=6, fill=0.0, return_top_class=True,
                                verbose=0)
    result = explainer(x)
    rows, cols = explainer.positions(16, 20)
    assert result.top_class.shape == (2, len(rows), len(cols))
    for a, b in [(0, 0), (len(rows) - 1, 1), (1, len(cols) - 1)]:
        occluded = x.copy()
        occluded[:, rows[a]:rows[a] + 8, cols[b]:cols[b] + 8] = 0.0
        logits = model(occluded).numpy()
        np.testing.assert_array_equal(result.top_class[:, a, b], logits.argmax(-1))


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_non_square_hot_spot_lands_on_the_spot(method):
    model = spot_model()
    height, width, rows, cols = 16, 40, (3, 7), (28, 33)
    x = spot_image(height, width, rows, cols)
    if method == "occlusion":
        explainer = tfvis.Occlusion(model, patch_size=4, stride=2, fill=0.0, verbose=0)
    else:
        explainer = tfvis.RISE(model, num_masks=300, grid_size=5, seed=0, verbose=0)
    result = explainer(x, targets=0)
    assert result.maps.shape == (1, height, width)
    r, c = np.unravel_index(result.maps[0].argmax(), (height, width))
    assert rows[0] - 1 <= r < rows[1] + 1 and cols[0] - 1 <= c < cols[1] + 1, (r, c)


def test_occlusion_bad_options():
    model = gap_dense_model()
    with pytest.raises(ValueError, match="fill"):
        tfvis.Occlusion(model, fill="gray")
    with pytest.raises(ValueError, match="NaN"):
        tfvis.Occlusion(model, fill=np.nan)
    with pytest.raises(ValueError, match="patch_size"):
        tfvis.Occlusion(model, patch_size=0)
    with pytest.raises(ValueError, match="stride"):
        tfvis.Occlusion(model, stride=(1, 2, 3))
    with pytest.raises(ValueError, match="larger than the image"):
        tfvis.Occlusion(model, patch_size=17, verbose=0)(np.zeros((16, 20, 3)))
    with pytest.raises(ValueError, match="does not broadcast"):
        tfvis.Occlusion(model, fill=np.zeros((5, 5, 3)), verbose=0)(np.zeros((16, 20, 3)))


# -- RISE -----------------------------------------------------------------------------------


def test_rise_masks_follow_the_paper():
    """Bilinear upsampling of the grid to (s + 1) * cell, then a shifted crop (vs OpenCV)."""
    explainer = tfvis.RISE(gap_dense_model(), num_masks=6, grid_size=(3, 4), keep_prob=0.5,
                           seed=5)
    height, width = 10, 13
    masks = explainer.generate_masks(height, width)
    grids, shifts = explainer.mask_set(height, width).params
    cell = (math.ceil(height / 3), math.ceil(width / 4))
    assert masks.shape == (6, height, width)
    assert set(np.unique(grids)) <= {0.0, 1.0}
    assert np.all((shifts >= 0) & (shifts < cell))
    for mask, grid, (dy, dx) in zip(masks, grids, shifts):
        up = cv2.resize(grid, (5 * cell[1], 4 * cell[0]), interpolation=cv2.INTER_LINEAR)
        np.testing.assert_allclose(mask, up[dy:dy + height, dx:dx + width], atol=1e-5)


def test_rise_keep_probability_and_shift_statistics():
    explainer = tfvis.RISE(gap_dense_model(), num_masks=400, keep_prob=0.3, seed=1)
    masks = explainer.generate_masks(21, 21, 0, 400)
    assert abs(masks.mean() - 0.3) < 0.03
    _, shifts = explainer.mask_set(21, 21).params
    assert len(np.unique(shifts[:, 0])) == 3 and len(np.unique(shifts[:, 1])) == 3


def test_rise_seed_reproducibility():
    model = gap_dense_model()
    x = np.random.default_rng(0).random((2, 16, 20, 3)).astype("float32")

    def run(seed):
        explainer = tfvis.RISE(model, num_masks=40, seed=seed, verbose=0)
        return explainer.generate_masks(16, 20), explainer(x).raw

    masks_a, raw_a = run(3)
    masks_b, raw_b = run(3)
    masks_c, raw_c = run(4)
    np.testing.assert_array_equal(masks_a, masks_b)
    np.testing.assert_array_equal(raw_a, raw_b)
    assert not np.allclose(masks_a, masks_c) and not np.allclose(raw_a, raw_c)
    fresh = tfvis.RISE(model, num_masks=40, seed=None, verbose=0)  # fresh entropy, recorded
    again = tfvis.RISE(model, num_masks=40, seed=fresh.seed, verbose=0)
    np.testing.assert_array_equal(fresh.generate_masks(16, 20), again.generate_masks(16, 20))
    assert fresh.seed != tfvis.RISE(model, num_masks=40, seed=None).seed


def test_every_random_method_is_reproducible_by_default():
    """Two explainers built the same way give the same map (the default seed is fixed)."""
    model = gap_dense_model()
    x = np.random.default_rng(1).random((2, 16, 20, 3)).astype("float32")
    for cls, options in ((tfvis.RISE, {"num_masks": 40}), (tfvis.SmoothGrad, {"num_samples": 4})):
        first = cls(model, verbose=0, **options)(x, targets=1).raw
        np.testing.assert_array_equal(cls(model, verbose=0, **options)(x, targets=1).raw, first)
    assert tfvis.RISE(model, num_masks=4).seed == 0


def test_rise_saliency_formula():
    """sum_j score_j * mask_j / (N p), from the rendered masks and the model's scores."""
    model = gap_dense_model()
    x = np.random.default_rng(6).random((1, 16, 20, 3)).astype("float32")
    explainer = tfvis.RISE(model, num_masks=24, keep_prob=0.4, seed=2, logits=False, verbose=0)
    result = explainer(x, targets=1)
    masks = explainer.generate_masks(16, 20)
    scores = model(x * masks[..., None]).numpy()[:, 1]
    expected = np.tensordot(scores, masks, axes=1) / (24 * 0.4)
    np.testing.assert_allclose(result.raw[0], expected, rtol=1e-4, atol=1e-6)


def test_rise_explains_probabilities_by_default():
    model = gap_dense_model()  # ends in a fused softmax
    x = np.random.default_rng(16).random((2, 16, 20, 3)).astype("float32")
    probabilities = tfvis.RISE(model, num_masks=8, seed=0, verbose=0)(x, targets=[1, 2])
    np.testing.assert_allclose(probabilities.scores, model(x).numpy()[[0, 1], [1, 2]], rtol=1e-5)
    logits = tfvis.RISE(model, num_masks=8, seed=0, logits=True, verbose=0)(x, targets=[1, 2])
    assert not np.allclose(logits.scores, probabilities.scores)


def test_rise_batch_size_and_batch_invariance():
    model = gap_dense_model()
    x = np.random.default_rng(7).random((3, 16, 20, 3)).astype("float32")
    explainer = tfvis.RISE(model, num_masks=30, seed=0, verbose=0)
    reference = explainer(x, batch_size=90).raw  # all pairs in one chunk
    for size in (1, 7):
        np.testing.assert_allclose(explainer(x, batch_size=size).raw, reference,
                                   rtol=1e-5, atol=1e-6)
    for i in range(3):
        np.testing.assert_allclose(explainer(x[i:i + 1], batch_size=7).raw[0], reference[i],
                                   rtol=1e-5, atol=1e-6)


def test_rise_bad_options():
    model = gap_dense_model()
    for options in ({"num_masks": 0}, {"num_masks": 2.5}, {"keep_prob": 0.0},
                    {"keep_prob": 1.5}, {"grid_size": 0}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            tfvis.RISE(model, **options)
    explainer = tfvis.RISE(model, num_masks=4, verbose=0)
    for size in (0, -1, 2.0):
        with pytest.raises(ValueError, match="batch_size"):
            explainer(np.zeros((16, 20, 3)), batch_size=size)
    with pytest.raises(ValueError, match="perturbs images"):
        tfvis.RISE(keras.Sequential([keras.Input((5,)), keras.layers.Dense(2)]))(np.zeros(5))


# -- the engine -----------------------------------------------------------------------------


class CountingModel(keras.Model):
    """Subclassed model that records the batch size of every call (also inside tf.function)."""

    def __init__(self):
        super().__init__()
        self.dense = keras.layers.Dense(3, kernel_initializer=keras.initializers.GlorotUniform(0))
        self.calls = []

    def _record(self, n):
        self.calls.append(int(n))
        return n

    def call(self, x, training=False):
        n = tf.py_function(self._record, [tf.shape(x)[0]], tf.int32)
        with tf.control_dependencies([n]):
            return self.dense(tf.reduce_mean(x, axis=(1, 2)))


def test_chunking_bounds_the_model_batch():
    model = CountingModel()
    x = np.random.default_rng(8).random((2, 6, 5, 3)).astype("float32")
    explainer = tfvis.RISE(model, num_masks=25, seed=0, verbose=0)
    explainer(x, batch_size=8)
    # A 1-image probe of the output size (subclassed model: no graph), one call on the 2
    # unperturbed images (targets), then ceil(2 * 25 / 8) = 7 chunks of exactly 8.
    assert model.calls[-9:] == [1, 2] + [8] * 7
    model.calls.clear()
    explainer(x, batch_size=50)
    assert model.calls == [1, 2, 50]


def test_pair_chunks_cover_every_pair_once():
    pairs = []
    for image, mask, valid in pair_chunks(3, 5, 4):
        keep = valid.numpy() > 0
        pairs += list(zip(image.numpy()[keep], mask.numpy()[keep]))
        assert len(image) == 4
    assert pairs == [(i, j) for i in range(3) for j in range(5)]
    assert MaskSet((np.zeros((5, 2)),)).count == 5
    for total, batch in [(1568, 128), (50, 8), (7, 100), (128, 128), (129, 128)]:
        size = chunk_size(total, batch)  # never above batch_size, same number of chunks,
        chunks = math.ceil(total / batch)  # and less than one padded pair per chunk
        assert size <= batch and math.ceil(total / size) == chunks
        assert size * chunks - total < chunks


def test_subclassed_model_matches_functional():
    functional = gap_dense_model()

    class Sub(keras.Model):
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def call(self, x, training=False):
            return self.inner(x, training=training)

    x = np.random.default_rng(9).random((2, 16, 20, 3)).astype("float32")
    for cls, options in ((tfvis.RISE, {"num_masks": 20, "seed": 1}),
                         (tfvis.Occlusion, {"patch_size": 6})):
        a = cls(functional, logits=False, verbose=0, **options)(x, targets=[0, 2])
        b = cls(Sub(functional), verbose=0, **options)(x, targets=[0, 2])
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-5, atol=1e-6)


def test_saved_model_through_tfsmlayer(tmp_path):
    model = gap_dense_model()
    model.export(str(tmp_path / "exported"), verbose=False)
    layer = keras.layers.TFSMLayer(str(tmp_path / "exported"), call_endpoint="serve")
    wrapped = keras.Sequential([keras.Input((16, 20, 3)), layer])
    x = np.random.default_rng(10).random((2, 16, 20, 3)).astype("float32")
    for cls, options in ((tfvis.RISE, {"num_masks": 20, "seed": 1}),
                         (tfvis.Occlusion, {"patch_size": 6})):
        a = cls(model, logits=False, verbose=0, **options)(x)
        b = cls(wrapped, verbose=0, **options)(x)
        np.testing.assert_array_equal(a.targets, b.targets)
        np.testing.assert_allclose(a.raw, b.raw, rtol=1e-4, atol=1e-6)


# -- the explainer contract -----------------------------------------------------------------


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_targets_agree_and_no_retrace(method):
    model = gap_dense_model()
    x = np.random.default_rng(11).random((3, 16, 20, 3)).astype("float32")
    options = {"num_masks": 20, "seed": 0} if method == "rise" else {"patch_size": 6}
    explainer = tfvis.get_explainer(method, model, verbose=0, **options)
    top = explainer(x)
    traces = explainer.traces()
    classes = top.targets
    for form in (classes, list(classes), np.eye(4, dtype="float32")[classes]):
        np.testing.assert_allclose(explainer(x, targets=form).raw, top.raw, rtol=1e-6)
    assert explainer.traces() == traces  # other targets, same shapes: no retrace
    np.testing.assert_allclose(explainer(x, targets=2).raw,
                               explainer(x, targets=[2, 2, 2]).raw, rtol=1e-6)
    assert explainer.traces() == traces
    by_callable = explainer(x, targets=lambda out: out[:, 1])
    np.testing.assert_allclose(by_callable.raw, explainer(x, targets=1).raw, rtol=1e-5,
                               atol=1e-6)


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_nothing_mutated(method):
    model = gap_dense_model()
    before = digest(model)
    x = (np.random.default_rng(12).random((2, 16, 20, 3)) * 255).astype("uint8")
    copy = x.copy()
    options = tfvis.REGISTRY[method].quick_options
    explainer = tfvis.get_explainer(method, model, verbose=0, **options)
    result = explainer(x)
    assert np.all(np.isfinite(result.maps)) and result.maps.dtype == np.float32
    assert result.maps.min() >= 0 and result.maps.max() <= 1
    with pytest.raises(ValueError):
        explainer(x, targets=9)
    assert digest(model) == before
    np.testing.assert_array_equal(x, copy)


@pytest.mark.parametrize("method", ["occlusion", "rise"])
def test_grey_uint8_and_multi_output(method):
    options = {"num_masks": 30, "seed": 0} if method == "rise" else {"patch_size": 4}
    inp = keras.Input((10, 14, 1))
    x = keras.layers.Conv2D(4, 3, activation="relu", name="conv",
                            kernel_initializer=keras.initializers.GlorotUniform(1))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    first = keras.layers.Dense(3, name="first",
                               kernel_initializer=keras.initializers.GlorotUniform(2))(x)
    second = keras.layers.Dense(2, name="second",
                                kernel_initializer=keras.initializers.GlorotUniform(3))(x)
    model = keras.Model(inp, [first, second])
    grey = (np.random.default_rng(13).random((2, 10, 14)) * 255).astype("uint8")
    cls = tfvis.REGISTRY[method]
    by_output = cls(model, output="second", verbose=0, **options)(grey, targets=1)
    by_callable = cls(model, verbose=0, **options)(grey, targets=lambda out: out[1][:, 1])
    as_float = cls(model, output=1, verbose=0, **options)(grey[..., None].astype("float32"),
                                                          targets=1)
    assert by_output.maps.shape == (2, 10, 14)
    np.testing.assert_allclose(by_output.raw, by_callable.raw, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(by_output.raw, as_float.raw, rtol=1e-6)
    with pytest.raises(ValueError, match="several outputs"):
        cls(model, verbose=0, **options)(grey)


def test_progress_bar_and_verbose(capsys):
    model = gap_dense_model()
    x = np.random.default_rng(14).random((1, 16, 20, 3)).astype("float32")
    tfvis.RISE(model, num_masks=20, seed=0, verbose=0)(x, batch_size=4)
    assert capsys.readouterr().out == ""
    tfvis.RISE(model, num_masks=20, seed=0, verbose=1)(x, batch_size=4)
    assert "5/5" in capsys.readouterr().out


def test_mixed_precision_gives_float32_maps():
    policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        model = gap_dense_model()
    finally:
        keras.config.set_dtype_policy(policy)
    x = np.random.default_rng(15).random((1, 16, 20, 3)).astype("float32")
    result = tfvis.RISE(model, num_masks=20, seed=0, verbose=0)(x)
    assert result.maps.dtype == np.float32 and result.raw.dtype == np.float32
    assert np.all(np.isfinite(result.raw))


# -- the generalised engine: per-image masks, perturbation at a layer -------------------------


def test_stream_per_image_masks_context_rows_and_accumulator_shape():
    from tfvis.engine.perturbation import pair_step, stream

    rng = np.random.default_rng(20)
    n, m, h, w = 3, 4, 5, 6
    tensors = rng.random((n, h, w, 2)).astype("float32")
    fill = rng.random((n, h, w, 2)).astype("float32")
    keep = rng.random((n, m, h, w)).astype("float32")  # one mask per image and mask index
    weight = rng.random((n, m, 2, 3)).astype("float32")  # accumulated at another resolution
    factor = rng.random(n).astype("float32")  # per-image context

    def render(params, height, width):
        return params[0], params[1]

    def score(perturbed, rows):
        total = tf.reduce_sum(perturbed, axis=(1, 2, 3))
        return total * rows[0], tf.zeros_like(rows[0], "int32")

    step = pair_step(score, render, per_image=True)
    masks = MaskSet((keep, weight), per_image=True)
    assert masks.count == m
    expected = np.array([[np.sum(fill[i] + keep[i, j][..., None] * (tensors[i] - fill[i]))
                          * factor[i] for j in range(m)] for i in range(n)])
    for size in (1, 5, 12):
        result = stream(step, tensors, fill, (factor,), masks, size, keep_scores=True,
                        accumulator=(2, 3))
        np.testing.assert_allclose(result.scores, expected, rtol=1e-5)
        np.testing.assert_allclose(result.accumulated,
                                   np.einsum("nm,nmhw->nhw", expected, weight), rtol=1e-5)
    with pytest.raises(ValueError, match="per-image mask parameters"):
        stream(step, tensors[:2], fill[:2], (factor[:2],), masks, 4)


def test_stream_at_a_layer_feeds_the_rest_of_the_network():
    """Channels of c1 dropped: fed activations == hooks on a full forward == eager layers."""
    from tfvis.engine.perturbation import pair_step, stream
    from tfvis.surgery import capture, run_graph

    model = gap_dense_model(activation=None)
    x = np.random.default_rng(21).random((2, 16, 20, 3)).astype("float32")
    acts = capture(model, x, ["c1"])["c1"].numpy()
    channels = acts.shape[-1]

    def render(params, height, width):
        return (1.0 - tf.one_hot(params[0], channels))[:, None, None, :], None

    def score(perturbed, rows):
        out = run_graph(model, rows[0], feed={"c1": perturbed})
        return out[:, 1], tf.argmax(out, -1)

    step = pair_step(score, render)
    result = stream(step, acts, np.zeros_like(acts), (x,),
                    MaskSet((np.arange(channels, dtype="int32"),)), 5, keep_scores=True)
    for i in range(2):
        for k in range(channels):
            keep = 1.0 - np.eye(channels, dtype="float32")[k]
            hooked = run_graph(model, x[i:i + 1], hooks={"c1": lambda a: a * keep})
            ablated = acts[i:i + 1] * keep
            eager = model.get_layer("c2")(ablated)
            eager = model.get_layer("head")(model.get_layer("gap")(eager))
            np.testing.assert_allclose(result.scores[i, k], hooked.numpy()[0, 1], rtol=1e-5)
            np.testing.assert_allclose(result.scores[i, k], eager.numpy()[0, 1], rtol=1e-5)
            assert result.top[i, k] == eager.numpy()[0].argmax()


def test_task_targets_are_scored():
    from tfvis.targets import Regression

    inp = keras.Input((8, 10, 3))
    x = keras.layers.Conv2D(3, 3, activation="relu",
                            kernel_initializer=keras.initializers.GlorotUniform(4))(inp)
    x = keras.layers.GlobalAveragePooling2D()(x)
    dense = keras.layers.Dense(1, kernel_initializer=keras.initializers.GlorotUniform(5))
    model = keras.Model(inp, dense(x))
    images = np.random.default_rng(22).random((2, 8, 10, 3)).astype("float32")
    for cls, options in ((tfvis.RISE, {"num_masks": 12, "seed": 0}),
                         (tfvis.Occlusion, {"patch_size": 4}),
                         (tfvis.ScoreCAM, {"relu": False}), (tfvis.AblationCAM, {"relu": False})):
        explainer = cls(model, verbose=0, **options)
        task = explainer(images, targets=Regression())
        by_callable = explainer(images, targets=lambda out: out[:, 0])
        np.testing.assert_allclose(task.raw, by_callable.raw, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(task.scores, model(images).numpy()[:, 0], rtol=1e-5)


# -- multi-input models: the explained input is perturbed, the others held fixed -------------


class ConstantVector(keras.layers.Layer):
    """Outputs the same vector for every sample of its input's batch."""

    def __init__(self, vector, **kwargs):
        super().__init__(**kwargs)
        self.vector = np.asarray(vector, "float32")

    def call(self, x):
        return tf.zeros((tf.shape(x)[0], 1)) + self.vector[None]

    def compute_output_shape(self, shape):
        return (shape[0], len(self.vector))


def image_and_vector_model():
    """Concatenate(GAP(conv(image)), Dense(vector)) -> ReLU mix -> Dense; and the layers."""
    init = keras.initializers.GlorotUniform
    layers = {
        "conv": keras.layers.Conv2D(4, 3, strides=2, padding="same", activation="relu",
                                    name="conv", kernel_initializer=init(6)),
        "gap": keras.layers.GlobalAveragePooling2D(name="gap"),
        "vec": keras.layers.Dense(3, name="vec", kernel_initializer=init(7)),
        "cat": keras.layers.Concatenate(name="cat"),
        "mix": keras.layers.Dense(6, activation="relu", name="mix", kernel_initializer=init(8),
                                  bias_initializer=keras.initializers.Constant(0.1)),
        "head": keras.layers.Dense(3, name="head", kernel_initializer=init(9)),
    }
    image, vector = keras.Input((12, 16, 3), name="image"), keras.Input((5,), name="vector")
    return keras.Model([image, vector], head_of(layers, image, vector)), layers


def head_of(layers, image, vector):
    features = layers["cat"]([layers["gap"](layers["conv"](image)), layers["vec"](vector)])
    return layers["head"](layers["mix"](features))


def with_constant_vector(layers, vector):
    image = keras.Input((12, 16, 3), name="image")
    return keras.Model(image, head_of(layers, image, ConstantVector(vector)(image)))


MULTI = {"occlusion": {"patch_size": 4, "stride": 4}, "rise": {"num_masks": 12, "seed": 0},
         "scorecam": {"relu": False}, "ablationcam": {"relu": False}}


@pytest.mark.parametrize("method", list(MULTI))
def test_multi_input_perturbs_the_image_and_holds_the_vector(method):
    model, layers = image_and_vector_model()
    rng = np.random.default_rng(23)
    images = rng.random((3, 12, 16, 3)).astype("float32")
    vectors = rng.normal(size=(3, 5)).astype("float32")
    cls = tfvis.REGISTRY[method]
    explainer = cls(model, input=0, batch_size=7, verbose=0, **MULTI[method])
    result = explainer([images, vectors], targets=1)
    assert result.raw.shape == (3, 12, 16) and np.ptp(result.raw, axis=(1, 2)).min() > 0
    by_name = explainer({"vector": vectors, "image": images}, targets=1)
    np.testing.assert_array_equal(by_name.raw, result.raw)
    for i in range(3):  # equal to a single-input model in which the vector is a constant
        single = cls(with_constant_vector(layers, vectors[i]), verbose=0, **MULTI[method])
        alone = single(images[i], targets=1)
        np.testing.assert_allclose(alone.raw[0], result.raw[i], rtol=1e-4, atol=1e-6)
        np.testing.assert_allclose(alone.scores[0], result.scores[i], rtol=1e-5)
    changed = explainer([images, vectors[::-1]], targets=1)
    for i in (0, 2):  # another vector, another explanation
        assert not np.allclose(changed.raw[i], result.raw[i], rtol=1e-3, atol=1e-6)
