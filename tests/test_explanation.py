"""Explanation: frozen, read-only extras readable as attributes, copies, overlays."""

import copy
import dataclasses
import pickle
import sys

import numpy as np
import pytest

from tfvis.explanation import Explanation


def make(n=2, h=4, w=5, **kwargs):
    rng = np.random.default_rng(0)
    maps = rng.random((n, h, w)).astype(np.float32)
    return Explanation(maps, maps * 3, np.arange(n), np.ones(n, np.float32), "test", **kwargs)


def test_default_extras_are_empty_and_read_only():
    e = make()
    assert dict(e.extras) == {}
    with pytest.raises(TypeError):
        e.extras["delta"] = 1
    assert make().extras is not e.extras or len(e.extras) == 0  # nothing shared to mutate


def test_frozen_fields_and_extras():
    e = make(extras={"delta": np.zeros(2)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.maps = None
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.extras = {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.delta = np.ones(2)
    with pytest.raises(TypeError):
        e.extras["delta"] = np.ones(2)
    with pytest.raises(TypeError):
        del e.extras["delta"]


def test_extras_are_a_private_copy_of_the_callers_mapping():
    given = {"delta": np.array([0.5, -0.5])}
    e = make(extras=given)
    given["delta"] = "replaced"
    given["other"] = 1
    np.testing.assert_array_equal(e.delta, [0.5, -0.5])
    assert set(e.extras) == {"delta"}


def test_attribute_access_reads_extras():
    scores = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    e = make(extras={"position_scores": scores, "top_class": None})
    assert e.position_scores is scores and e.extras["position_scores"] is scores
    assert e.top_class is None
    assert "position_scores" in dir(e) and "maps" in dir(e)
    assert getattr(e, "delta", "absent") == "absent"
    assert not hasattr(e, "delta")


def test_unknown_attribute_names_the_extras():
    e = make(extras={"position_scores": 1, "top_class": 2})
    with pytest.raises(AttributeError, match=r"'delta'.*extras are: position_scores, top_class"):
        e.delta
    with pytest.raises(AttributeError, match="extras are: none"):
        make().delta


def test_extras_cannot_hide_fields_or_methods():
    for name in ("maps", "layer", "overlay", "with_extras", "extras", "_private"):
        with pytest.raises(ValueError, match=repr(name)):
            make(extras={name: 1})
    with pytest.raises(ValueError, match="identifiers"):
        make(extras={"not a name": 1})
    with pytest.raises(ValueError, match="'scores'"):
        make().with_extras(scores=1)


def test_with_extras_copies_and_leaves_the_original():
    delta = np.array([0.1, 0.2])
    e = make(extras={"top_class": None})
    f = e.with_extras(delta=delta)
    assert f is not e and type(f) is Explanation
    assert set(e.extras) == {"top_class"} and set(f.extras) == {"top_class", "delta"}
    assert f.delta is delta and f.maps is e.maps and f.method == e.method
    g = f.with_extras(delta=np.zeros(2), top_class=np.ones((2, 1, 1)))
    np.testing.assert_array_equal(g.delta, 0)
    np.testing.assert_array_equal(f.delta, delta)  # replacing a name keeps the source intact
    assert g.top_class.shape == (2, 1, 1) and f.top_class is None


def test_pickle_and_copies_keep_extras_read_only():
    e = make(layer="c2", extras={"delta": np.array([1.0, 2.0])})
    for other in (pickle.loads(pickle.dumps(e)), copy.deepcopy(e), copy.copy(e)):
        np.testing.assert_array_equal(other.maps, e.maps)
        np.testing.assert_array_equal(other.delta, [1.0, 2.0])
        assert other.layer == "c2" and other.method == "test"
        with pytest.raises(TypeError):
            other.extras["delta"] = 0
    deep = copy.deepcopy(e)
    assert deep.delta is not e.delta


def test_overlay_batch_and_single_image():
    e = make(n=1, h=6, w=8)
    image = np.random.default_rng(1).random((6, 8, 3)).astype(np.float32)
    single = e.overlay(image)
    batch = e.overlay(image[None])
    assert single.shape == (1, 6, 8, 3) and single.dtype == np.uint8
    np.testing.assert_array_equal(single, batch)
    grey = e.overlay(image[..., 0])
    assert grey.shape == (1, 6, 8, 3)
    # alpha = 0 is the image itself, alpha = 1 the colour map alone
    np.testing.assert_array_equal(e.overlay(image, alpha=0.0)[0], np.round(image * 255))
    from tfvis.plotting import colorize

    np.testing.assert_array_equal(e.overlay(image, alpha=1.0)[0], colorize(e.maps[0]))


def test_overlay_grey_batch_and_errors_name_the_shapes():
    e = make(n=3, h=6, w=8)
    grey = np.random.default_rng(2).random((3, 6, 8))
    out = e.overlay(grey)
    assert out.shape == (3, 6, 8, 3)
    from tfvis.plotting import overlay

    for i in range(3):
        np.testing.assert_array_equal(out[i], overlay(grey[i], e.maps[i]))
    with pytest.raises(ValueError, match=r"1 image\(s\) \(shape \(6, 8, 3\)\) for 3 maps "
                                         r"\(shape \(3, 6, 8\)\)"):
        e.overlay(np.zeros((6, 8, 3)))
    with pytest.raises(ValueError, match=r"2 image\(s\).*for 3 maps"):
        e.overlay(np.zeros((2, 6, 8, 3)))


def test_importing_explanation_does_not_import_plotting():
    import subprocess

    code = ("import sys, tfvis.explanation; "
            "print(sorted(m for m in sys.modules if m.startswith('tfvis.plotting')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
