"""`capture`: pruned activation capture, `feed`, multi-input models and shared call sites.

Every capture is compared with a full run of the user's graph (activations seen through
hooks), and the pruning is checked by counting which layers are actually called.
"""

import collections
import inspect
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import gap_dense_model, nested_model, seeded

import tfvis
from tfvis.surgery import (
    capture,
    gap_dense_head,
    graph_of,
    input_names,
    layer_table,
    logits_replacements,
    resolve_layer,
    run_graph,
)
from tfvis.surgery.gates import relu_gates

# -- models -----------------------------------------------------------------------------------


def conv(filters, name, seed, **kwargs):
    kwargs.setdefault("padding", "same")
    return keras.layers.Conv2D(filters, kwargs.pop("size", 3), name=name,
                               kernel_initializer=seeded(seed), bias_initializer="ones",
                               **kwargs)


def functional():
    return gap_dense_model()


def sequential():
    return keras.Sequential([
        keras.Input((16, 20, 3)), conv(6, "s1", 41, activation="relu"),
        keras.layers.MaxPooling2D(name="pool"), conv(5, "s2", 42, activation="relu"),
        keras.layers.Flatten(name="flat"),
        keras.layers.Dense(3, name="out", kernel_initializer=seeded(43)),
    ], name="seq")


def resnet_like():
    inp = keras.Input((16, 20, 3))
    x = conv(4, "stem", 51)(inp)
    a = conv(4, "a1", 52, activation="relu")(x)
    a = conv(4, "a2", 53)(a)
    x = keras.layers.Add(name="add1")([x, a])
    x = keras.layers.ReLU(name="relu1")(x)
    b = conv(4, "b1", 54, size=1)(x)
    x = keras.layers.Add(name="add2")([x, b])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(3, name="head", kernel_initializer=seeded(55))(x)
    return keras.Model(inp, out, name="resnetish")


def mobilenet_nested():
    base = keras.applications.MobileNetV2(weights=None, include_top=False,
                                          input_shape=(32, 32, 3), alpha=0.35)
    inp = keras.Input((32, 32, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1, name="rescale")(inp)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(base(x))
    out = keras.layers.Dense(3, name="head", kernel_initializer=seeded(3))(x)
    return keras.Model(inp, out, name="transfer")


def siamese():
    """A Conv2D shared by two image inputs (call sites conv@0, conv@1) -> concat -> GAP -> Dense."""
    left, right = keras.Input((8, 8, 3), name="left"), keras.Input((8, 8, 3), name="right")
    shared = conv(4, "conv", 61, activation="relu")
    x = keras.layers.Concatenate(name="cat")([shared(left), shared(right)])
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    out = keras.layers.Dense(2, name="head", kernel_initializer=seeded(62))(x)
    return keras.Model([left, right], out, name="siamese")


def towers():
    """A nested `tower` model called on two inputs (tower@0/..., tower@1/...)."""
    inp = keras.Input((8, 8, 3))
    y = conv(4, "conv1", 71, activation="relu")(inp)
    tower = keras.Model(inp, conv(3, "conv2", 72)(y), name="tower")
    a, b = keras.Input((8, 8, 3), name="a"), keras.Input((8, 8, 3), name="b")
    x = keras.layers.Subtract(name="diff")([tower(a), tower(b)])
    out = keras.layers.Dense(1, name="head", kernel_initializer=seeded(73))(
        keras.layers.GlobalAveragePooling2D(name="gap")(x))
    return keras.Model([a, b], out, name="towers")


def repeated():
    """One 3->3 Conv2D applied twice in a row, then a CAM head: conv@0, conv@1."""
    inp = keras.Input((12, 12, 3))
    shared = conv(3, "conv", 81, activation="relu")
    x = keras.layers.GlobalAveragePooling2D(name="gap")(shared(shared(inp)))
    out = keras.layers.Dense(4, activation="softmax", name="head",
                             kernel_initializer=seeded(82))(x)
    return keras.Model(inp, out, name="repeated")


def data(shape, seed=0, n=2):
    return tf.constant(np.random.default_rng(seed).random((n,) + shape).astype(np.float32))


# -- helpers ----------------------------------------------------------------------------------


def counting(model):
    """``(replace, counts)``: every plain layer call goes through a counter (by layer name)."""
    counts = collections.Counter()
    replace = {}
    for info in layer_table(model):
        op = info.layer
        if graph_of(op) is None and id(op) not in replace:
            replace[id(op)] = counted(op, counts)
    return replace, counts


def counted(op, counts):
    training = "training" in inspect.signature(op.call).parameters

    def call(*args, **kwargs):
        counts[op.name] += 1
        return op(*args, **({**kwargs, "training": False} if training else kwargs))

    return call


def full_activations(model, x):
    """Every call site's output from one full run, seen through hooks."""
    seen = {}

    def keep(path):
        def hook(a):
            seen[path] = a
            return a
        return hook

    outputs = run_graph(model, x, hooks={i.path: keep(i.path) for i in layer_table(model)})
    return seen, outputs


def leaves_before(model, path):
    """Names of the plain layers called (in a full run) up to ``path``, and inside it when it
    is a nested model."""
    table = layer_table(model)
    end = [i.path for i in table].index(path)
    while end + 1 < len(table) and table[end + 1].path.startswith(path + "/"):
        end += 1
    return {i.layer.name for i in table[: end + 1] if graph_of(i.layer) is None}


BUILDERS = {
    "functional": (functional, (16, 20, 3), ["c1", "c2", "gap"]),
    "sequential": (sequential, (16, 20, 3), ["s1", "pool", "flat"]),
    "nested": (nested_model, (16, 20, 3), ["rescale", "base/convA", "base", "base/convB", "gap"]),
    "resnet_like": (resnet_like, (16, 20, 3), ["a2", "add1", "relu1", "b1", "add2"]),
}


# -- pruned capture equals the full run -------------------------------------------------------


@pytest.mark.parametrize("kind", sorted(BUILDERS))
def test_capture_equals_full_run_and_runs_only_what_it_needs(kind, fingerprint):
    build, shape, paths = BUILDERS[kind]
    model = build()
    before = fingerprint(model)
    x = data(shape)
    reference, outputs = full_activations(model, x)
    np.testing.assert_allclose(outputs.numpy(), model(x, training=False).numpy(), rtol=1e-6)
    for path in paths:
        replace, counts = counting(model)
        got = capture(model, x, [path], replace=replace)
        assert list(got) == [path]
        np.testing.assert_array_equal(got[path].numpy(), reference[path].numpy())
        # Exactly the layers the path depends on ran, each once; nothing after it.
        assert set(counts) == leaves_before(model, path), path
        assert set(counts.values()) == {1}
    together, outs = capture(model, x, paths, outputs=True)
    assert list(together) == paths
    for path in paths:
        np.testing.assert_array_equal(together[path].numpy(), reference[path].numpy())
    np.testing.assert_array_equal(outs.numpy(), outputs.numpy())
    assert fingerprint(model) == before


@pytest.mark.slow
def test_capture_inside_a_nested_keras_application(fingerprint):
    model = mobilenet_nested()
    before = fingerprint(model)
    base = model.layers[2].name
    x = data((32, 32, 3), n=2) * 255
    reference, _ = full_activations(model, x)
    target = f"{base}/block_2_add"  # a residual add inside the base
    replace, counts = counting(model)
    got = capture(model, x, [target, "rescale"], replace=replace)
    np.testing.assert_array_equal(got[target].numpy(), reference[target].numpy())
    np.testing.assert_array_equal(got["rescale"].numpy(), reference["rescale"].numpy())
    assert set(counts) == leaves_before(model, target)
    assert "out_relu" not in counts and "head" not in counts
    assert len(counts) < len(layer_table(model)) // 3
    assert fingerprint(model) == before


def test_capture_compiles_and_matches_eager():
    model = nested_model()
    x = data((16, 20, 3))
    fn = tf.function(lambda t: capture(model, t, ["base/convA", "gap"]), autograph=False)
    eager = capture(model, x, ["base/convA", "gap"])
    compiled = fn(x)
    for path in eager:
        np.testing.assert_allclose(compiled[path].numpy(), eager[path].numpy(), rtol=1e-6)


def test_capture_applies_hooks_and_replacements():
    model = functional()
    x = data((16, 20, 3))
    c1 = capture(model, x, ["c1"])["c1"]
    got = capture(model, x, ["c1", "c2"], hooks={"c1": lambda a: a * 0})
    np.testing.assert_array_equal(got["c1"].numpy(), 0)  # the captured value is the hooked one
    bias = model.get_layer("c2").bias.numpy()  # c2 of zeros is relu(bias) everywhere
    np.testing.assert_allclose(got["c2"].numpy(), np.broadcast_to(np.maximum(bias, 0),
                                                                  got["c2"].shape), rtol=1e-6)
    doubled = capture(model, x, ["c1"], replace={id(model.get_layer("c1")): lambda t: 2 * t})
    np.testing.assert_array_equal(doubled["c1"].numpy(), 2 * x.numpy())
    assert c1.shape == (2, 16, 20, 8)


def test_capture_errors(fingerprint):
    model = nested_model()
    before = fingerprint(model)
    x = data((16, 20, 3))
    with pytest.raises(ValueError, match=r"(?s)no layer 'base/convb'.*Did you mean.*base/convB"):
        capture(model, x, ["base/convb"])
    with pytest.raises(ValueError, match="Did you mean 'gap'"):
        capture(model, x, ["gapp"])
    with pytest.raises(ValueError, match="no layer 'gap/inner'"):
        capture(model, x, ["gap/inner"])  # gap is not a model
    with pytest.raises(ValueError, match="no layer 'nope'"):
        run_graph(model, x, hooks={"nope": lambda a: a})
    with pytest.raises(ValueError, match=r"'base' is fed.*base/convA"):
        capture(model, None, ["base/convA"], feed={"base": tf.zeros((2, 8, 10, 6))})
    with pytest.raises(ValueError, match=r"needs input\(s\) \['input_layer.*'\].*not given"):
        capture(model, None, ["gap"])

    class Sub(keras.Model):
        def call(self, t):
            return t

    with pytest.raises(TypeError, match="no layer graph"):
        capture(Sub(), x, ["x"])
    assert fingerprint(model) == before


# -- feed -------------------------------------------------------------------------------------


def softmax(z):
    e = np.exp(z - z.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_feed_runs_the_suffix_of_the_network(fingerprint):
    """Ablation-CAM's building block: the head run on given (channel-zeroed) activations."""
    model = functional()
    before = fingerprint(model)
    x = data((16, 20, 3), n=3)
    acts = capture(model, x, ["c2"])["c2"]
    full = run_graph(model, x).numpy()
    replace, counts = counting(model)
    same = run_graph(model, None, feed={"c2": acts}, replace=replace).numpy()
    np.testing.assert_allclose(same, full, rtol=1e-6)
    assert set(counts) == {"gap", "head"}  # c1 and c2 are not run
    ablated = acts.numpy().copy()
    ablated[..., 2] = 0
    out = run_graph(model, None, feed={"c2": tf.constant(ablated)}).numpy()
    head = model.get_layer("head")
    by_hand = softmax(ablated.mean(axis=(1, 2)) @ head.kernel.numpy() + head.bias.numpy())
    np.testing.assert_allclose(out, by_hand, rtol=1e-5, atol=1e-7)
    assert np.abs(out - full).max() > 1e-4
    # capture + feed + outputs together; a hook on a fed path is not applied.
    got, outputs = capture(model, x, ["c1", "gap"], feed={"c2": tf.constant(ablated)},
                           hooks={"c2": lambda a: 1 / 0}, outputs=True)
    np.testing.assert_allclose(got["gap"].numpy(), ablated.mean(axis=(1, 2)), rtol=1e-5)
    np.testing.assert_allclose(outputs.numpy(), out, rtol=1e-6)
    assert fingerprint(model) == before


def test_feed_inside_a_nested_model():
    model = nested_model()
    x = data((16, 20, 3))
    acts, full = capture(model, x, ["base/convA"], outputs=True)
    replace, counts = counting(model)
    out = run_graph(model, None, feed=acts, replace=replace)
    np.testing.assert_allclose(out.numpy(), full.numpy(), rtol=1e-6)
    assert set(counts) == {"convB", "gap", "head"}
    shifted = run_graph(model, None, feed={"base/convA": acts["base/convA"] + 1.0})
    assert np.abs(shifted.numpy() - full.numpy()).max() > 1e-5
    # Feeding the whole nested model skips everything in it.
    pooled = capture(model, x, ["base"])
    replace, counts = counting(model)
    np.testing.assert_allclose(run_graph(model, None, feed=pooled, replace=replace).numpy(),
                               full.numpy(), rtol=1e-6)
    assert set(counts) == {"gap", "head"}


# -- multi-input models and shared call sites -------------------------------------------------


def test_multi_input_forms_and_errors(fingerprint):
    model = siamese()
    before = fingerprint(model)
    xa, xb = data((8, 8, 3), 1), data((8, 8, 3), 2)
    assert input_names(model) == ["left", "right"]
    expected = model([xa, xb], training=False).numpy()
    for inputs in ([xa, xb], (xa, xb), {"left": xa, "right": xb}, {"right": xb, "left": xa}):
        np.testing.assert_allclose(run_graph(model, inputs).numpy(), expected, rtol=1e-6)
    with pytest.raises(ValueError, match=r"2 input\(s\) \['left', 'right'\], but 3 were given"):
        run_graph(model, [xa, xb, xa])
    with pytest.raises(ValueError, match=r"no input named \['middle'\].*\['left', 'right'\]"):
        run_graph(model, {"left": xa, "middle": xb})
    with pytest.raises(ValueError, match=r"2 inputs \['left', 'right'\], but one tensor"):
        run_graph(model, xa)
    with pytest.raises(ValueError, match=r"needs input\(s\) \['right'\]"):
        run_graph(model, {"left": xa})
    assert fingerprint(model) == before


def test_dict_input_models_accept_their_own_keys():
    img = keras.Input((4,), name="pixels")
    aux = keras.Input((2,), name="extra")
    x = keras.layers.Concatenate(name="cat")([img, aux])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Keras warns that the keys are not the input names
        model = keras.Model({"image": img, "aux": aux}, keras.layers.Dense(1, name="d")(x))
    a, b = data((4,)), data((2,))
    expected = model({"image": a, "aux": b}).numpy()
    for inputs in ({"image": a, "aux": b}, {"pixels": a, "extra": b}):
        np.testing.assert_allclose(run_graph(model, inputs).numpy(), expected, rtol=1e-6)


def test_siamese_call_sites(fingerprint):
    model = siamese()
    before = fingerprint(model)
    shared = model.get_layer("conv")
    assert [i.path for i in layer_table(model)] == ["conv@0", "conv@1", "cat", "gap", "head"]
    xa, xb = data((8, 8, 3), 1), data((8, 8, 3), 2)
    got = capture(model, [xa, xb], ["conv@0", "conv@1"])
    np.testing.assert_allclose(got["conv@0"].numpy(), shared(xa).numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["conv@1"].numpy(), shared(xb).numpy(), rtol=1e-6)
    assert np.abs(got["conv@0"].numpy() - got["conv@1"].numpy()).max() > 1e-3
    # One site needs only its own input: the other may be left out, and conv runs once.
    replace, counts = counting(model)
    alone = capture(model, {"left": xa}, ["conv@0"], replace=replace)
    np.testing.assert_array_equal(alone["conv@0"].numpy(), got["conv@0"].numpy())
    assert counts == {"conv": 1}
    # A hook on conv@1 touches only that site.
    seen = []
    zeroed, out = capture(model, [xa, xb], ["conv@0", "conv@1"], outputs=True,
                          hooks={"conv@1": lambda a: seen.append(a) or a * 0})
    assert len(seen) == 1
    np.testing.assert_allclose(seen[0].numpy(), got["conv@1"].numpy(), rtol=1e-6)
    np.testing.assert_array_equal(zeroed["conv@0"].numpy(), got["conv@0"].numpy())
    np.testing.assert_array_equal(zeroed["conv@1"].numpy(), 0)
    head = model.get_layer("head")
    pooled = np.concatenate([got["conv@0"].numpy().mean(axis=(1, 2)), np.zeros((2, 4))], -1)
    np.testing.assert_allclose(out.numpy(), pooled @ head.kernel.numpy() + head.bias.numpy(),
                               rtol=1e-5, atol=1e-6)
    # Feeding one site: the shared layer runs at the other site only.
    replace, counts = counting(model)
    fed = run_graph(model, {"left": xa}, feed={"conv@1": tf.zeros((2, 8, 8, 4))},
                    replace=replace)
    np.testing.assert_allclose(fed.numpy(), out.numpy(), rtol=1e-6)
    assert counts == {"conv": 1, "cat": 1, "gap": 1, "head": 1}
    # Resolving a shared layer needs its call site.
    message = "layer 'conv' is called at 2 sites; use one of: 'conv@0', 'conv@1'"
    for spec in ("conv", shared):
        with pytest.raises(ValueError, match=message):
            resolve_layer(model, spec)
    with pytest.raises(ValueError, match=message):
        capture(model, [xa, xb], ["conv"])
    assert resolve_layer(model, "conv@1").path == "conv@1"
    assert resolve_layer(model, "conv@1").layer is shared
    assert resolve_layer(model, "head").path == "head"  # single-site layers keep plain names
    assert fingerprint(model) == before


def test_nested_tower_called_twice(fingerprint):
    model = towers()
    before = fingerprint(model)
    tower = model.get_layer("tower")
    paths = [i.path for i in layer_table(model)]
    assert paths == ["tower@0", "tower@0/conv1", "tower@0/conv2", "tower@1", "tower@1/conv1",
                     "tower@1/conv2", "diff", "gap", "head"]
    xa, xb = data((8, 8, 3), 3), data((8, 8, 3), 4)
    got = capture(model, {"a": xa, "b": xb}, ["tower@0/conv1", "tower@1/conv2"])
    np.testing.assert_allclose(got["tower@0/conv1"].numpy(),
                               capture(tower, xa, ["conv1"])["conv1"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(got["tower@1/conv2"].numpy(), tower(xb).numpy(), rtol=1e-6)
    replace, counts = counting(model)
    capture(model, {"b": xb}, ["tower@1/conv1"], replace=replace)
    assert counts == {"conv1": 1}
    with pytest.raises(ValueError, match=r"called at 2 sites; use one of: 'tower@0/conv2', "
                                         r"'tower@1/conv2'"):
        resolve_layer(model, "conv2")
    with pytest.raises(ValueError, match="called at 2 sites"):
        resolve_layer(model, tower.get_layer("conv2"))
    with pytest.raises(ValueError, match="'tower/conv2' is called at 2 sites"):
        capture(model, [xa, xb], ["tower/conv2"])
    assert resolve_layer(model, "tower@1/conv2").layer is tower.get_layer("conv2")
    assert fingerprint(model) == before


def test_shared_layer_in_heads_gates_and_explainers(fingerprint):
    model = repeated()
    before = fingerprint(model)
    x = data((12, 12, 3), 5, n=3)
    assert gap_dense_head(model, 0).feature_paths == ("conv@1",)
    _, count = relu_gates(model, "guided")
    assert count == 2  # both call sites of the fused relu are gated
    cam = tfvis.CAM(model, relu=True, verbose=0)
    assert cam.layer == "conv@1"
    grad = tfvis.GradCAM(model, layer="conv@1", verbose=0)
    a, b = cam.explain(x, targets=1), grad.explain(x, targets=1)
    # Grad-CAM is CAM / (H * W) on a GAP -> Dense head.
    np.testing.assert_allclose(a.raw, b.raw * 12 * 12, rtol=1e-4, atol=1e-7)
    # Grad-CAM at the first site, by hand: the network suffix run from fed activations.
    first = tfvis.GradCAM(model, layer="conv@0", relu=False, verbose=0).explain(x, targets=1)
    acts = capture(model, x, ["conv@0"])["conv@0"]
    with tf.GradientTape() as tape:
        tape.watch(acts)
        logits = run_graph(model, None, feed={"conv@0": acts},
                           replace=logits_replacements(model))[:, 1]
    weights = tf.reduce_mean(tape.gradient(logits, acts), axis=(1, 2))
    by_hand = np.einsum("nhwk,nk->nhw", acts.numpy(), weights.numpy())
    np.testing.assert_allclose(first.raw, by_hand, rtol=1e-4, atol=1e-8)
    assert np.abs(first.raw).max() > 1e-4 and np.abs(first.raw - b.raw).max() > 1e-4
    assert tfvis.GradCAM(model, verbose=0).layer == "conv@1"  # auto: the last spatial site
    assert fingerprint(model) == before
