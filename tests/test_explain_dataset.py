"""explain_dataset on one device: the store equals explain(), resume, refusals, bad files."""

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

import tfvis
from conftest import gap_dense_model

pytest.importorskip("zarr")

from tfvis.distributed import explain_dataset, open_explanations  # noqa: E402

TOL = 2e-3  # float16 maps in [0, 1]


def data(n=21, seed=0):
    return np.random.default_rng(seed).random((n, 16, 20, 3)).astype("float32")


def counting(name, calls, sleep=0.0):
    """A factory model -> explainer whose explain records the rows of each call."""
    def factory(model):
        explainer = tfvis.get_explainer(name, model)
        inner = explainer.explain

        def explain(x, targets=None, batch_size=None):
            calls.append(len(x))
            time.sleep(sleep)
            return inner(x, targets, batch_size)

        explainer.explain = explain
        return explainer
    return factory


def test_store_equals_explain_in_dataset_order(tmp_path):
    model, x = gap_dense_model(), data()
    run = explain_dataset(model, x, ["gradcam", "saliency"], tmp_path / "out", batch_size=4,
                          shard_size=8, verbose=0)
    assert run.methods == ["gradcam", "saliency"] and len(run) == 21
    assert run.ids.tolist() == [str(i) for i in range(21)]
    for name in run.methods:
        want = tfvis.get_explainer(name, model).explain(x)
        maps = run.maps(name)
        assert maps.dtype == np.float16 and maps.shape == (21, 16, 20)
        np.testing.assert_allclose(np.asarray(maps, np.float32), want.maps, atol=TOL)
        np.testing.assert_allclose(run.scores(name), want.scores, rtol=1e-5)
        np.testing.assert_array_equal(run.targets, want.targets)
    again = open_explanations(tmp_path / "out")
    assert again.manifest["complete"] and again.manifest["n"] == 21
    assert again.manifest["model"]["fingerprint"] == run.manifest["arguments"]["model_fingerprint"]
    rows = list(csv.DictReader(open(tmp_path / "out" / "index.csv")))
    assert [r["id"] for r in rows] == run.ids.tolist()
    assert float(rows[5]["score_saliency"]) == pytest.approx(float(run.scores("saliency")[5]),
                                                            rel=1e-5)
    assert sorted(os.listdir(tmp_path / "out")) == ["explanations.zarr", "index.csv",
                                                    "manifest.json", "shards"]


def test_batched_dataset_with_labels_and_float32(tmp_path):
    import tensorflow as tf

    model, x = gap_dense_model(), data(13)
    labels = np.arange(13) % 4
    ds = tf.data.Dataset.from_tensor_slices((x, labels)).batch(5)  # batches of 5, 5, 3
    run = explain_dataset(model, ds, "gradcam", tmp_path / "o", targets="labels",
                          shard_size=4, dtype="float32", verbose=0)
    want = tfvis.GradCAM(model).explain(x, labels)
    assert run.maps("gradcam").dtype == np.float32
    np.testing.assert_allclose(np.asarray(run.maps("gradcam")), want.maps, atol=1e-5)
    np.testing.assert_array_equal(run.targets, labels)


def test_resume_skips_complete_shards_and_refuses_changed_methods(tmp_path):
    model, x, out = gap_dense_model(), data(), tmp_path / "out"
    calls = []
    full = explain_dataset(model, x, [counting("gradcam", calls), "saliency"], out,
                           shard_size=5, verbose=0)
    assert calls == [5, 5, 5, 5, 1]  # one call per shard, never more than a shard's rows
    before = np.asarray(full.maps("gradcam")).copy()
    for shard in (1, 3):  # as if the run had been killed before these were marked complete
        os.remove(out / "shards" / f"{shard}.json")
    calls.clear()
    again = explain_dataset(model, x, [counting("gradcam", calls), "saliency"], out,
                            shard_size=5, verbose=0)
    assert calls == [5, 5]
    np.testing.assert_array_equal(np.asarray(again.maps("gradcam")), before)
    calls.clear()
    explain_dataset(model, x, [counting("gradcam", calls), "saliency"], out, shard_size=5,
                    verbose=0)
    assert calls == []  # complete: nothing recomputed
    with pytest.raises(FileExistsError, match="methods.*overwrite=True"):
        explain_dataset(model, x, ["gradcam"], out, shard_size=5, verbose=0)
    with pytest.raises(FileExistsError, match="shard_size"):
        explain_dataset(model, x, [counting("gradcam", calls), "saliency"], out, shard_size=4,
                        verbose=0)
    replaced = explain_dataset(model, x, ["gradcam"], out, shard_size=5, overwrite=True,
                               verbose=0)
    assert replaced.methods == ["gradcam"] and replaced.manifest["complete"]


def test_out_with_other_contents_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="other files.*notes.txt"):
        explain_dataset(gap_dense_model(), data(3), "gradcam", tmp_path, verbose=0,
                        overwrite=True)
    assert os.listdir(tmp_path) == ["notes.txt"]


def test_an_explainer_object_is_refused_with_the_fix(tmp_path):
    model = gap_dense_model()
    with pytest.raises(TypeError, match=r"explainer object.*'gradcam'.*factory"):
        explain_dataset(model, data(3), [tfvis.GradCAM(model)], tmp_path / "out", verbose=0)
    assert not (tmp_path / "out").exists()


def test_folder_with_an_unreadable_file(tmp_path):
    import cv2

    folder = tmp_path / "images"
    folder.mkdir()
    x = (data(5) * 255).astype(np.uint8)
    names = ["a.png", "b.png", "c.png", "e.png", "f.png"]
    for name, image in zip(names, x):
        cv2.imwrite(str(folder / name), image[..., ::-1])
    (folder / "d.png").write_bytes(b"not a png")
    run = explain_dataset(gap_dense_model(), folder, ["gradcam"], tmp_path / "out",
                          shard_size=4, verbose=0)
    assert run.ids.tolist() == ["a.png", "b.png", "c.png", "d.png", "e.png", "f.png"]
    skipped = run.manifest["skipped"]
    assert [s["id"] for s in skipped] == ["d.png"] and "not a readable image" in \
        skipped[0]["reason"]
    maps = np.asarray(run.maps("gradcam"), np.float32)
    want = tfvis.GradCAM(gap_dense_model()).explain(x.astype(np.float32))
    np.testing.assert_allclose(maps[[0, 1, 2, 4, 5]], want.maps, atol=TOL)
    assert not maps[3].any() and np.isnan(run.scores("gradcam")[3]) and run.targets[3] == -1


SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
import numpy as np
from test_explain_dataset import counting, data
from conftest import gap_dense_model
from tfvis.distributed import explain_dataset
explain_dataset(gap_dense_model(), data(), [counting("gradcam", [], sleep=0.3), "saliency"],
                {out!r}, shard_size=3, verbose=0)
"""


def test_killed_run_resumes_to_the_uninterrupted_arrays(tmp_path):
    out = tmp_path / "killed"
    env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS="0", TF_CPP_MIN_LOG_LEVEL="3")
    script = SCRIPT.format(tests=str(Path(__file__).parent), out=str(out))
    proc = subprocess.Popen([sys.executable, "-c", script], env=env)
    deadline = time.time() + 60
    while time.time() < deadline and proc.poll() is None:
        if len(list((out / "shards").glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(list((out / "shards").glob("*.json")))
    assert 2 <= done < 7
    model, x = gap_dense_model(), data()
    calls = []
    resumed = explain_dataset(model, x, [counting("gradcam", calls), "saliency"], out,
                              shard_size=3, verbose=0)
    assert len(calls) == 7 - done  # complete shards are not recomputed
    whole = explain_dataset(model, x, [counting("gradcam", []), "saliency"], tmp_path / "whole",
                            shard_size=3, verbose=0)
    for name in ("gradcam", "saliency"):
        np.testing.assert_array_equal(np.asarray(resumed.maps(name)),
                                      np.asarray(whole.maps(name)))
        np.testing.assert_array_equal(resumed.scores(name), whole.scores(name))
    np.testing.assert_array_equal(resumed.ids, whole.ids)
    assert json.loads((out / "manifest.json").read_text())["complete"]
