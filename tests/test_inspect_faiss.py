"""FeatureIndex(backend="faiss") against the exact backend (the reference): an exact faiss
index gives the same neighbours and distances, IVF visiting every list is exact too, a few
lists keep a high recall; streaming, training, seeds, save/load and the errors."""

import sys

import numpy as np
import pytest
import tensorflow as tf

from conftest import nested_model
from tfvis import inspect


def clustered(n, d=16, centres=12, seed=0):
    """Rows around a few centres (what IVF is for), no exact ties."""
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centres, d)) * 3
    return (c[rng.integers(0, centres, n)] + rng.normal(size=(n, d))).astype("float32")


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_flat_faiss_equals_exact(metric):
    data, query = clustered(600), clustered(20, seed=1)
    exact = inspect.FeatureIndex.from_features(data, metric, block=128)
    flat = inspect.FeatureIndex.from_features(data, metric, backend="faiss")
    want_i, want_d = exact.query(features=query, k=10)
    got_i, got_d = flat.query(features=query, k=10, query_block=7)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    # the distances are the plain ones: 1 - cos and the Euclidean (not squared) distance
    a, b = query[:, None].astype(np.float64), data[got_i].astype(np.float64)
    if metric == "l2":
        brute = np.sqrt(((a - b) ** 2).sum(-1))
    else:
        brute = 1 - (a * b).sum(-1) / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))
    np.testing.assert_allclose(got_d, brute, rtol=1e-4, atol=1e-5)
    assert flat.features is None and len(flat) == 600 and flat.backend == "faiss"


def test_ivf_exact_with_every_list_and_high_recall_with_a_few():
    data, query = clustered(3000), clustered(50, seed=1)
    want_i, _ = inspect.FeatureIndex.from_features(data, "l2").query(features=query, k=10)
    every = inspect.FeatureIndex.from_features(data, "l2", backend="faiss",
                                               faiss_index="IVF16,Flat", nprobe=16)
    np.testing.assert_array_equal(every.query(features=query, k=10)[0], want_i)
    few = inspect.FeatureIndex.from_features(data, "l2", backend="faiss",
                                             faiss_index="IVF16,Flat", nprobe=4)
    got_i, got_d = few.query(features=query, k=10)
    recall = np.mean([len(set(g) & set(w)) / 10 for g, w in zip(got_i, want_i)])
    assert recall >= 0.95, recall
    assert np.isfinite(got_d).all() and (np.diff(got_d, axis=1) >= -1e-6).all()
    # one list of ~190 rows cannot hold 1000 neighbours: the missing places are -1 at inf
    one = inspect.FeatureIndex.from_features(data, "l2", backend="faiss",
                                             faiss_index="IVF16,Flat", nprobe=1)
    got_i, got_d = one.query(features=query, k=1000)
    assert (got_i == -1).any() and np.isinf(got_d[got_i == -1]).all()
    assert np.isfinite(got_d[got_i >= 0]).all() and got_i.max() < 3000


def test_streamed_images_trained_on_the_first_rows_equal_exact(fingerprint):
    """Images through the model into an IVF index trained on its first 40 rows of 90: every
    row is added once, in order (visiting every list gives exact search's answer)."""
    model = nested_model()
    before = fingerprint(model)
    x = np.random.default_rng(3).random((90, 16, 20, 3)).astype("float32") * 255
    q = np.random.default_rng(4).random((6, 16, 20, 3)).astype("float32") * 255
    ds = tf.data.Dataset.from_tensor_slices((x, np.arange(90))).batch(16)
    exact = inspect.FeatureIndex(model, "base/convB", x, metric="cosine", batch_size=7)
    ivf = inspect.FeatureIndex(model, "base/convB", ds, metric="cosine", batch_size=7,
                               backend="faiss", faiss_index="IVF4,Flat", nprobe=4,
                               train_size=40)
    assert len(ivf) == 90
    want_i, want_d = exact.query(q, k=5)
    got_i, got_d = ivf.query(q, k=5)
    np.testing.assert_array_equal(got_i, want_i)
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-5)
    traced = ivf.traces()
    ivf.query(q[::-1], k=3)  # other queries, same chunk shape: no retrace
    assert ivf.traces() == traced
    assert fingerprint(model) == before


def test_seeded_training_and_save_load_round_trip(tmp_path):
    data, query = clustered(2000), clustered(10, seed=1)
    opts = dict(backend="faiss", faiss_index="IVF32,Flat", nprobe=2)
    a = inspect.FeatureIndex.from_features(data, "cosine", seed=5, **opts)
    b = inspect.FeatureIndex.from_features(data, "cosine", seed=5, **opts)
    c = inspect.FeatureIndex.from_features(data, "cosine", seed=6, **opts)
    import faiss

    blob = [bytes(faiss.serialize_index(i._search.index)) for i in (a, b, c)]
    assert blob[0] == blob[1] and blob[0] != blob[2]
    a.save(tmp_path / "ivf.npz")
    back = inspect.FeatureIndex.load(tmp_path / "ivf.npz")
    assert back.backend == "faiss" and len(back) == 2000
    for got, want in zip(back.query(features=query, k=4), a.query(features=query, k=4)):
        np.testing.assert_array_equal(got, want)
    assert back._search.nprobe == 2  # the search setting survives the round trip


def test_errors_name_the_fix(monkeypatch):
    data = clustered(50)
    with pytest.raises(ValueError, match="backend must be one of"):
        inspect.FeatureIndex.from_features(data, backend="annoy")
    with pytest.raises(ValueError, match="option of backend='faiss'"):
        inspect.FeatureIndex.from_features(data, faiss_index="IVF4,Flat")
    with pytest.raises(ValueError, match="faiss cannot build index 'Nonsense7'"):
        inspect.FeatureIndex.from_features(data, backend="faiss", faiss_index="Nonsense7")
    with pytest.raises(ValueError, match="could not be trained on 50 rows"):
        inspect.FeatureIndex.from_features(data, backend="faiss", faiss_index="IVF256,Flat")
    with pytest.raises(ValueError, match="nprobe must be a positive int"):
        inspect.FeatureIndex.from_features(data, backend="faiss", nprobe=0)
    with pytest.raises(ValueError, match="option of the exact backend"):
        inspect.FeatureIndex.from_features(data, backend="faiss").block = 8
    monkeypatch.setitem(sys.modules, "faiss", None)  # as if not installed
    with pytest.raises(ImportError, match=r"pip install tfvis\[faiss\]"):
        inspect.FeatureIndex.from_features(data, backend="faiss")
