"""The gradient family: ReLU gates, saliency / guided / deconvnet / gradient x input, guided
Grad-CAM, feature saliency, and the explainer contract for every gradient method."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, mixed_float16_twin, seeded

import tfvis
from tfvis.surgery import run_graph
from tfvis.surgery.gates import gate, relu_gates

GRADIENT_METHODS = (
    tfvis.Saliency,
    tfvis.GuidedBackprop,
    tfvis.Deconvnet,
    tfvis.GradientInput,
    tfvis.SmoothGrad,
    tfvis.IntegratedGradients,
    tfvis.GuidedGradCAM,
)
CHEAP = {tfvis.SmoothGrad: {"num_samples": 4}, tfvis.IntegratedGradients: {"steps": 6}}


def build(cls, model, **options):
    return cls(model, verbose=0, **{**CHEAP.get(cls, {}), **options})


def input_gradient(model, x, target):
    """Plain tape gradient of the target logit of ``model`` (its softmax bypassed)."""
    x = tf.constant(x)
    replace = tfvis.Saliency(model).replace
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = run_graph(model, x, replace=replace)[:, target]
    return tape.gradient(score, x).numpy()


def resnet_style(name="blocks", shape=(12, 14, 3)):
    """Two residual blocks: fused relu, BN + ReLU layers, Add, Activation("relu"), a shared
    capped leaky ReLU called twice and keras.ops.relu. 7 ReLU call sites."""
    inp = keras.Input(shape)
    x = keras.layers.Conv2D(6, 3, padding="same", activation="relu", name="stem",
                            kernel_initializer=seeded(21))(inp)                       # 1
    shared = keras.layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05, name="capped")
    for i in range(2):
        y = keras.layers.Conv2D(6, 3, padding="same", name=f"b{i}_conv1",
                                kernel_initializer=seeded(22 + i))(x)
        y = keras.layers.BatchNormalization(name=f"b{i}_bn")(y)
        y = keras.layers.ReLU(name=f"b{i}_relu")(y)                                    # 2, 4
        y = keras.layers.Conv2D(6, 3, padding="same", name=f"b{i}_conv2",
                                kernel_initializer=seeded(24 + i))(y)
        x = keras.layers.Add(name=f"b{i}_add")([x, y])
        x = shared(x)                                                                  # 3, 5
    x = keras.layers.Activation("relu", name="act")(x)                                 # 6
    x = keras.ops.relu(x - 0.1)                                                        # 7
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, activation="softmax", name="head",
                             kernel_initializer=seeded(26))(x)
    return keras.Model(inp, out, name=name)


def nested_resnet():
    """The residual blocks as a base model inside an outer model with its own fused relu."""
    base = resnet_style("base")
    inp = keras.Input((12, 14, 3))
    features = keras.Model(base.input, base.get_layer("act").output, name="features")
    x = features(inp)
    x = keras.layers.Conv2D(5, 1, activation="relu", name="top",
                            kernel_initializer=seeded(27))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    out = keras.layers.Dense(4, name="logits", kernel_initializer=seeded(28))(x)
    return keras.Model(inp, out, name="outer")


def minmax(a):
    return (a - a.min()) / (a.max() - a.min())


@pytest.fixture
def pictures():
    return np.random.default_rng(1).normal(size=(3, 12, 14, 3)).astype(np.float32)


# -- closed forms -------------------------------------------------------------------------------


def test_saliency_of_a_linear_model_is_its_weights():
    inp = keras.Input((4, 5, 2))
    dense = keras.layers.Dense(3, name="lin", kernel_initializer=seeded(1),
                               bias_initializer="ones")
    model = keras.Model(inp, dense(keras.layers.Flatten()(inp)))
    x = np.random.default_rng(0).normal(size=(2, 4, 5, 2)).astype(np.float32)
    kernel = dense.kernel.numpy()
    e = tfvis.Saliency(model, verbose=0).explain(x, targets=[2, 0])
    np.testing.assert_allclose(e.raw[0], kernel[:, 2].reshape(4, 5, 2), rtol=1e-6)
    np.testing.assert_allclose(e.raw[1], kernel[:, 0].reshape(4, 5, 2), rtol=1e-6)
    # The grey map is max |.| over channels (as in the paper), min-max normalised.
    np.testing.assert_allclose(e.maps[0], minmax(np.abs(e.raw[0]).max(-1)), atol=1e-6)
    gi = tfvis.GradientInput(model, verbose=0).explain(x, targets=[2, 0])
    np.testing.assert_allclose(gi.raw, x * e.raw, rtol=1e-6)
    # Non-image inputs: raw (N, D) is the weight column.
    vec_in = keras.Input((6,))
    vec = keras.layers.Dense(2, kernel_initializer=seeded(2))
    vec_model = keras.Model(vec_in, vec(vec_in))
    r = tfvis.Saliency(vec_model, verbose=0).explain(np.ones((3, 6), np.float32), targets=1)
    np.testing.assert_allclose(r.raw, np.tile(vec.kernel.numpy()[:, 1], (3, 1)), rtol=1e-6)
    np.testing.assert_allclose(r.maps[0], minmax(np.abs(r.raw[0])), atol=1e-6)


def test_relu_rules_on_hand_picked_values():
    """out = 3 y - y^2 with y = ReLU(x): R = dout/dy = 3 - 2y arrives at the ReLU."""
    inp = keras.Input((4,))
    y = keras.layers.ReLU()(inp)
    model = keras.Model(inp, 3.0 * y - keras.ops.square(y))
    x = np.array([[-1.0, 0.5, 2.0, -3.0]], np.float32)  # R = 3, 2, -1, 3
    total = np.ones((1, 4), np.float32)  # explain the sum of the outputs
    expected = {
        tfvis.Saliency: [0.0, 2.0, -1.0, 0.0],  # (f > 0) * R
        tfvis.GuidedBackprop: [0.0, 2.0, 0.0, 0.0],  # (f > 0) * (R > 0) * R
        tfvis.Deconvnet: [3.0, 2.0, 0.0, 3.0],  # (R > 0) * R
    }
    for cls, values in expected.items():
        np.testing.assert_array_equal(cls(model, verbose=0).explain(x, total).raw, [values])
    # Guided is zero exactly where vanilla is negative.
    inp = keras.Input((4,))
    negated = keras.Model(inp, -keras.ops.square(keras.layers.ReLU()(inp)))
    vanilla = tfvis.Saliency(negated, verbose=0).explain(x, total).raw
    with pytest.warns(RuntimeWarning, match="constant"):
        guided = tfvis.GuidedBackprop(negated, verbose=0).explain(x, total).raw
    np.testing.assert_array_equal(vanilla, [[0.0, -1.0, -4.0, 0.0]])
    np.testing.assert_array_equal(guided, np.zeros_like(guided))


def test_gate_keeps_the_relu_parameters_and_its_derivative():
    relu = keras.layers.ReLU(max_value=1.5, negative_slope=0.1, threshold=0.05)
    x = tf.constant([-2.0, 0.0, 0.04, 0.3, 1.4, 3.0])
    upstream = tf.constant([1.0, -1.0, 2.0, -2.0, 3.0, 1.0])
    for rule, rule_of in {
        "backprop": lambda d, r: d * r,
        "guided": lambda d, r: d * np.maximum(r, 0),
        "deconvnet": lambda d, r: np.maximum(r, 0),
    }.items():
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(x)
            y = gate(relu, rule)(x)
            plain = relu(x)
        np.testing.assert_array_equal(y.numpy(), plain.numpy())
        derivative = tape.gradient(plain, x).numpy()  # 0.1 below threshold, 0 above max
        np.testing.assert_allclose(derivative, [0.1, 0.1, 0.1, 1.0, 1.0, 0.0])
        got = tape.gradient(y, x, output_gradients=upstream).numpy()
        np.testing.assert_allclose(got, rule_of(derivative, upstream.numpy()), rtol=1e-6)


# -- the gated clone -------------------------------------------------------------------------------


@pytest.mark.parametrize("make, count", [(resnet_style, 7), (nested_resnet, 6 + 1)])
def test_gates_count_every_relu_call_site_and_keep_the_forward_exact(make, count, pictures,
                                                                     fingerprint):
    model = make()
    before = fingerprint(model)
    expected = model(pictures).numpy()
    for rule in ("backprop", "guided", "deconvnet"):
        replace, gates = relu_gates(model, rule)
        assert gates == count
        np.testing.assert_array_equal(run_graph(model, tf.constant(pictures), replace=replace),
                                      expected)
    # The backprop rule through the gates is the plain gradient.
    replace, _ = relu_gates(model, "backprop")
    x = tf.constant(pictures)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        gated = run_graph(model, x, replace=replace)[:, 1]
        plain = model(x)[:, 1]
    np.testing.assert_allclose(tape.gradient(gated, x), tape.gradient(plain, x), rtol=1e-5,
                               atol=1e-7)
    assert fingerprint(model) == before


def test_building_a_guided_explainer_leaves_the_model_and_its_gradients(pictures, fingerprint):
    model = nested_resnet()
    before = fingerprint(model)
    plain = input_gradient(model, pictures, 2)
    guided = tfvis.GuidedBackprop(model, verbose=0)
    assert guided.gates == 7
    g = guided.explain(pictures, 2).raw
    assert not np.allclose(g, plain)  # the rule matters on this model
    np.testing.assert_array_equal(input_gradient(model, pictures, 2), plain)
    np.testing.assert_allclose(tfvis.Saliency(model, verbose=0).explain(pictures, 2).raw, plain,
                               rtol=1e-5, atol=1e-7)
    assert fingerprint(model) == before


def test_a_model_without_relu_warns_and_equals_saliency(images):
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Conv2D(4, 3, activation="tanh", kernel_initializer=seeded(3))(inp)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)
    for cls in (tfvis.GuidedBackprop, tfvis.Deconvnet):
        with pytest.warns(UserWarning, match="no ReLU"):
            explainer = cls(model, verbose=0)
        assert explainer.gates == 0
        np.testing.assert_array_equal(explainer.explain(images, 1).raw,
                                      tfvis.Saliency(model, verbose=0).explain(images, 1).raw)


def test_a_lambda_layer_is_never_deserialised(images, monkeypatch):
    scale = lambda t: t * 2.0  # noqa: E731
    code = scale.__code__
    inp = keras.Input((16, 20, 3))
    x = keras.layers.Lambda(scale, name="double")(inp)
    x = keras.layers.Conv2D(4, 3, activation="relu", kernel_initializer=seeded(4))(x)
    out = keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x))
    model = keras.Model(inp, out)

    def forbidden(*args, **kwargs):
        raise AssertionError("tfvis must not clone or deserialise the model")

    monkeypatch.setattr(keras.models, "clone_model", forbidden)
    monkeypatch.setattr(keras.saving, "deserialize_keras_object", forbidden)
    monkeypatch.setattr(keras.models, "model_from_json", forbidden)
    monkeypatch.setattr(keras.Model, "from_config", forbidden)
    e = tfvis.GuidedBackprop(model, verbose=0).explain(images, 1)
    assert np.all(np.isfinite(e.raw)) and e.maps.max() == 1.0
    assert model.get_layer("double").function is scale and scale.__code__ is code


def test_mixed_float16_gates_compute_in_float16(images):
    x = tf.constant([-1.0, 0.5, 2.0], tf.float16)
    for rule in ("backprop", "guided", "deconvnet"):
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = gate(keras.activations.relu, rule)(x)
        grad = tape.gradient(y, x, output_gradients=tf.constant([1.0, -1.0, 1.0], tf.float16))
        assert y.dtype == grad.dtype == tf.float16
    reference, model = mixed_float16_twin()
    results = {cls: cls(model, verbose=0).explain(images, 1)
               for cls in (tfvis.Saliency, tfvis.GuidedBackprop, tfvis.SmoothGrad)}
    for cls, e in results.items():
        assert e.raw.dtype == np.float32 and np.all(np.isfinite(e.raw))
        full = cls(reference, verbose=0).explain(images, 1)
        # float16 rounding only (a ReLU input near 0 may flip its gate: compare on average)
        assert np.abs(e.maps - full.maps).mean() < 0.01, cls.name


@pytest.mark.slow
def test_resnet152_guided_backprop_smoke(fingerprint):
    model = keras.applications.ResNet152(weights=None, input_shape=(64, 64, 3), classes=5)
    relu_layers = [layer for layer in model.layers if isinstance(layer, keras.layers.Activation)
                   and layer.get_config()["activation"] == "relu"]
    before = fingerprint(model)
    x = np.random.default_rng(3).random((2, 64, 64, 3)).astype(np.float32) * 255
    explainer = tfvis.GuidedBackprop(model, verbose=0)
    assert explainer.gates == len(relu_layers) == 151
    logits = explainer.forward(tf.constant(x)).numpy()
    np.testing.assert_array_equal(logits, tfvis.Saliency(model).forward(tf.constant(x)).numpy())
    e = explainer.explain(x, targets=[1, 4])
    assert e.raw.shape == (2, 64, 64, 3) and e.maps.shape == (2, 64, 64)
    assert np.all(np.isfinite(e.raw)) and np.all(e.maps.max(axis=(1, 2)) == 1.0)
    np.testing.assert_allclose(e.scores, logits[[0, 1], [1, 4]], rtol=1e-5)
    assert fingerprint(model) == before


def test_subclassed_models_get_saliency_but_not_gates(images):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(3, 3, activation="relu")
            self.head = keras.layers.Dense(2)

        def call(self, x):
            return self.head(keras.ops.mean(self.conv(x), axis=(1, 2)))

    net = Net()
    net(images[:1])
    e = tfvis.Saliency(net, verbose=0).explain(images, 0)
    np.testing.assert_allclose(e.raw, input_gradient_subclassed(net, images), rtol=1e-5,
                               atol=1e-7)
    with pytest.raises(TypeError, match="subclassed"):
        tfvis.GuidedBackprop(net)


def input_gradient_subclassed(net, x):
    x = tf.constant(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        score = net(x)[:, 0]
    return tape.gradient(score, x).numpy()


# -- guided Grad-CAM, channel reductions, feature saliency ---------------------------------------


def test_guided_gradcam_is_guided_backprop_times_upsampled_gradcam(model, images):
    e = tfvis.GuidedGradCAM(model, layer="c1", verbose=0).explain(images, 2)
    guided = tfvis.GuidedBackprop(model, verbose=0).explain(images, 2).raw
    cam = tfvis.GradCAM(model, layer="c1", verbose=0).explain(images, 2).raw
    assert e.layer == "c1"
    np.testing.assert_allclose(e.raw, guided * cam[..., None], rtol=1e-5, atol=1e-9)


def test_channel_reductions(model, images):
    raw = tfvis.Saliency(model, verbose=0).explain(images, 0).raw
    reductions = {
        "max_abs": np.abs(raw).max(-1),
        "sum_abs": np.abs(raw).sum(-1),
        "l2": np.sqrt((raw ** 2).sum(-1)),
        "sum": raw.sum(-1),
    }
    for channels, grey in reductions.items():
        e = tfvis.Saliency(model, channels=channels, verbose=0).explain(images, 0)
        np.testing.assert_allclose(e.maps, [minmax(g) for g in grey], atol=1e-5)
    with pytest.raises(ValueError, match="max_abs"):
        tfvis.Saliency(model, channels="mean")


def embedding_model(dims=5):
    inp = keras.Input((6, 7, 2))
    dense = keras.layers.Dense(dims, name="embed", kernel_initializer=seeded(9))
    return keras.Model(inp, dense(keras.layers.Flatten()(inp))), dense


def test_feature_saliency_per_dimension_and_merged():
    model, dense = embedding_model()
    kernel = dense.kernel.numpy().reshape(6, 7, 2, 5)
    x = np.random.default_rng(2).normal(size=(3, 6, 7, 2)).astype(np.float32)
    saliency = tfvis.Saliency(model, verbose=0)
    one = saliency.explain(x, targets=3)  # an int target is one dimension
    np.testing.assert_allclose(one.raw, np.broadcast_to(kernel[..., 3], x.shape), rtol=1e-6)
    per_dim = tfvis.feature_saliency(saliency, x, dims=[0, 3, 4])
    traces = saliency.traces()
    assert [e.targets.tolist() for e in per_dim] == [[0] * 3, [3] * 3, [4] * 3]
    for e, d in zip(per_dim, [0, 3, 4]):
        np.testing.assert_allclose(e.raw, np.broadcast_to(kernel[..., d], x.shape), rtol=1e-6)
    merged = tfvis.feature_saliency(saliency, x, merge=True)
    np.testing.assert_allclose(merged.raw, np.broadcast_to(kernel.sum(-1), x.shape), rtol=1e-5)
    assert merged.targets.shape == (3, 5) and np.all(merged.targets == 1)
    some = tfvis.feature_saliency(saliency, x, dims=[1, 2], merge=True)
    np.testing.assert_allclose(some.raw, np.broadcast_to(kernel[..., 1] + kernel[..., 2],
                                                         x.shape), rtol=1e-5)
    assert saliency.traces() == traces  # dimensions are weights: nothing retraces
    everything = tfvis.feature_saliency(model, x)
    assert len(everything) == 5
    with pytest.raises(ValueError, match="out of range"):
        tfvis.feature_saliency(saliency, x, dims=[5])


# -- the explainer contract, for every gradient method -------------------------------------------


@pytest.mark.parametrize("cls", GRADIENT_METHODS, ids=lambda c: c.name)
def test_contract(cls, model, images, fingerprint, tmp_path):
    before = fingerprint(model)
    pixels = images.copy()
    explainer = build(cls, model)
    e = explainer.explain(images, targets=[1, 0, 3, 2, 1])
    assert e.raw.shape == images.shape and e.raw.dtype == np.float32
    assert e.maps.shape == images.shape[:3] and e.maps.dtype == np.float32
    assert np.all(np.isfinite(e.maps)) and np.allclose(e.maps.max(axis=(1, 2)), 1.0)
    assert e.method == cls.name
    logits = run_graph(model, tf.constant(images), replace=explainer.replace).numpy()
    np.testing.assert_allclose(e.scores, logits[np.arange(5), [1, 0, 3, 2, 1]], rtol=1e-5)
    # Batch and chunk invariance.
    for i in (0, 3):
        one = explainer.explain(images[i:i + 1], targets=[e.targets[i]])
        np.testing.assert_allclose(one.raw[0], e.raw[i], rtol=1e-5, atol=1e-8)
    chunked = explainer.explain(images, targets=[1, 0, 3, 2, 1], batch_size=2)
    np.testing.assert_allclose(chunked.raw, e.raw, rtol=1e-5, atol=1e-8)
    # Target forms agree, and other targets do not retrace.
    traces = explainer.traces()
    by_int = explainer.explain(images, targets=2)
    assert explainer.traces() == traces
    by_list = explainer.explain(images, targets=[2] * 5)
    by_onehot = explainer.explain(images, targets=np.eye(4, dtype=np.float32)[[2] * 5])
    by_callable = explainer.explain(images, targets=lambda out: out[:, 2])
    for other in (by_list, by_onehot, by_callable):
        np.testing.assert_allclose(other.raw, by_int.raw, rtol=1e-5, atol=1e-8)
    top = explainer.explain(images)
    np.testing.assert_array_equal(top.targets, logits.argmax(-1))
    # Errors leave everything as it was.
    with pytest.raises(ValueError, match="out of range"):
        explainer.explain(images, targets=7)
    assert fingerprint(model) == before
    np.testing.assert_array_equal(images, pixels)
    # A saved and reloaded model explains the same.
    model.save(tmp_path / "m.keras")
    reloaded = keras.models.load_model(tmp_path / "m.keras")
    np.testing.assert_allclose(build(cls, reloaded).explain(images, 2).raw, by_int.raw,
                               rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("cls", GRADIENT_METHODS, ids=lambda c: c.name)
def test_uint8_grey_non_square(cls):
    model = gap_dense_model(input_shape=(10, 18, 1), classes=3)
    pixels = np.random.default_rng(4).integers(0, 256, (2, 10, 18), dtype=np.uint8)
    explainer = build(cls, model)
    e = explainer.explain(pixels, targets=1)  # grey (N, H, W), uint8 (cast, not rescaled)
    assert e.raw.shape == (2, 10, 18, 1) and e.maps.shape == (2, 10, 18)
    assert np.all(np.isfinite(e.maps))
    as_float = explainer.explain(pixels[..., None].astype(np.float32), targets=1)
    np.testing.assert_array_equal(e.raw, as_float.raw)
    single = explainer.explain(pixels[1], targets=1)  # one grey (H, W) image
    np.testing.assert_allclose(single.raw[0], e.raw[1], rtol=1e-5, atol=1e-8)


def test_registry_builds_every_gradient_method_with_quick_options(model, images):
    for cls in GRADIENT_METHODS:
        assert tfvis.methods().count(cls.name) == 1
        explainer = tfvis.get_explainer(cls.name, model, verbose=0, **cls.quick_options)
        assert type(explainer) is cls
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # quick options must not trigger warnings here
        tfvis.get_explainer("integrated_gradients", model, verbose=0,
                            **tfvis.IntegratedGradients.quick_options).explain(images)


def test_channel_reductions_equal_numpy_reductions():
    from tfvis.explainers.gradients import CHANNEL_REDUCTIONS

    r = np.random.default_rng(0).normal(size=(2, 5, 4, 3)).astype("float32")
    expected = {"max_abs": np.abs(r).max(-1), "sum_abs": np.abs(r).sum(-1),
                "l2": np.sqrt(np.square(r).sum(-1)), "sum": r.sum(-1)}
    for name, reduce in CHANNEL_REDUCTIONS.items():
        out = reduce(r)
        assert out.dtype == np.float32 and out.shape == (2, 5, 4)
        np.testing.assert_allclose(out, expected[name], rtol=1e-6, atol=1e-7)
    assert r.shape == (2, 5, 4, 3) and np.isfinite(r).all()  # input untouched
