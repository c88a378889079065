"""evaluate_store: metrics over an explain_dataset store, streamed in blocks, equal the
metrics on the same maps in memory, and never call an explainer."""

import numpy as np
import pytest
from conftest import gap_dense_model

pytest.importorskip("zarr")

import tfvis  # noqa: E402
from tfvis.distributed import explain_dataset  # noqa: E402
from tfvis.explainers.base import Explainer  # noqa: E402
from tfvis.explainers.perturbation import PerturbationExplainer  # noqa: E402
from tfvis.metrics import (AverageDrop, Deletion, Insertion, MuFidelity,  # noqa: E402
                           evaluate_store)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    x = np.random.default_rng(3).random((21, 16, 20, 3)).astype("float32")
    out = tmp_path_factory.mktemp("store") / "run"
    explain_dataset(gap_dense_model(), x, ["gradcam", "saliency"], out, shard_size=8,
                    verbose=0)
    return x, out


def test_streamed_store_metrics_equal_in_memory_and_call_no_explainer(run, monkeypatch):
    x, out = run
    model = gap_dense_model()
    stored = tfvis.open_explanations(out)
    maps = {m: np.asarray(stored.maps(m), np.float32) for m in stored.methods}
    targets = stored.targets

    def forbidden(*args, **kwargs):
        raise AssertionError("an explainer was called")

    for cls in (Explainer, PerturbationExplainer):
        monkeypatch.setattr(cls, "explain", forbidden)
        monkeypatch.setattr(cls, "stream", forbidden)
    metrics = [Deletion(model, steps=16), Insertion(model, steps=16), AverageDrop(model),
               MuFidelity(model, num_subsets=16, grid_size=4)]
    ev = evaluate_store(model, x, out, metrics, block_size=8, verbose=0)  # 8 + 8 + 5 rows
    monkeypatch.undo()
    assert ev.methods == ["gradcam", "saliency"]
    assert ev.metrics == ["deletion", "insertion", "average_drop", "mu_fidelity"]
    assert ev.maps == {} and ev.settings["rows"].tolist() == list(range(21))
    for method in ev.methods:
        for metric in metrics:
            want = metric(x, maps[method], targets)
            got = ev.results[method][metric.name]
            np.testing.assert_allclose(got.values, want.values, rtol=1e-5, atol=1e-6)
            if want.curves is not None:
                np.testing.assert_allclose(got.curves, want.curves, rtol=1e-5, atol=1e-6)
            for key in getattr(metric, "per_image_extras", ()):
                np.testing.assert_allclose(got.extras[key], want.extras[key], rtol=1e-5,
                                           atol=1e-6)
    deletion = ev.results["gradcam"]["deletion"]
    assert deletion.extras["model_calls"] > 0
    np.testing.assert_array_equal(deletion.extras["fractions"], np.linspace(0, 1, 17))
    assert ev.table["saliency"]["insertion"].n == 21


def test_store_metrics_refuse_other_models_data_and_object_metrics(run):
    x, out = run
    model = gap_dense_model()
    with pytest.raises(ValueError, match="model is not the model"):
        evaluate_store(gap_dense_model(classes=3), x, out, verbose=0)
    with pytest.raises(ValueError, match="data is not the data"):
        evaluate_store(model, x[::-1].copy(), out, verbose=0)
    with pytest.raises(ValueError, match="pointing_game cannot be computed over a store"):
        evaluate_store(model, x, out, ["deletion", "pointing_game"], verbose=0)
    with pytest.raises(KeyError, match="no method 'rise'"):
        evaluate_store(model, x, out, methods=["rise"], verbose=0)


def test_a_folder_run_scores_the_readable_images_by_id(tmp_path):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    x = (np.random.default_rng(4).random((5, 16, 20, 3)) * 255).astype(np.uint8)
    for name, image in zip(["a.png", "b.png", "d.png", "e.png", "f.png"], x):
        cv2.imwrite(str(folder / name), image[..., ::-1])
    (folder / "c.png").write_bytes(b"not a png")
    model = gap_dense_model()
    explain_dataset(model, folder, "gradcam", tmp_path / "out", shard_size=4, verbose=0)
    ev = evaluate_store(model, folder, tmp_path / "out", Deletion(model, steps=8), verbose=0)
    assert ev.settings["rows"].tolist() == [0, 1, 3, 4, 5]  # c.png was skipped by the run
    assert "1 of 6 images not scored: 1 skipped" in ev.notes[0]
    stored = tfvis.open_explanations(tmp_path / "out")
    keep = ev.settings["rows"]
    want = Deletion(model, steps=8)(x.astype(np.float32),
                                    np.asarray(stored.maps("gradcam"), np.float32)[keep],
                                    stored.targets[keep])
    np.testing.assert_allclose(ev.results["gradcam"]["deletion"].values, want.values,
                               rtol=1e-5, atol=1e-6)
    (folder / "g.png").write_bytes((folder / "a.png").read_bytes())
    with pytest.raises(ValueError, match="data is not the data"):
        evaluate_store(model, folder, tmp_path / "out", verbose=0)


def test_a_run_without_class_targets_is_refused(tmp_path):
    model, x = gap_dense_model(), np.random.default_rng(5).random((3, 16, 20, 3))
    explain_dataset(model, x.astype("float32"), "saliency", tmp_path / "out",
                    targets=lambda out: out[:, 0], verbose=0)
    with pytest.raises(ValueError, match="no image of the run has a class target"):
        evaluate_store(model, x.astype("float32"), tmp_path / "out", verbose=0)
