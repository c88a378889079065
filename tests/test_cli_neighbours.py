"""`tfvis neighbours`: the CSV equals brute-force nearest neighbours of the layer's pooled
features, the figure is written, outputs are never overwritten without --overwrite, unsafe
models are refused, and usage errors are answered before TensorFlow is imported."""

import csv
import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfvis.cli import main
from tfvis.datasets import shapes
from tfvis.demo import build_model
from tfvis.gallery import save_png


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("nbrs")
    model = build_model((32, 32, 3))
    model.save(root / "model.keras")
    data = root / "data"
    data.mkdir()
    for i, image in enumerate(shapes(8, (32, 32), seed=3).images):
        save_png(data / f"d{i}.png", (image * 255).astype(np.uint8))
    query = root / "query"
    query.mkdir()
    for i, image in enumerate(shapes(2, (32, 32), seed=4).images):
        save_png(query / f"q{i}.png", (image * 255).astype(np.uint8))
    save_png(query / "same.png", (shapes(8, (32, 32), seed=3).images[5] * 255).astype(np.uint8))
    return root, model


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_neighbours_csv_equals_brute_force_and_figure_is_written(files, tmp_path, metric):
    from tfvis.inspect import activations
    from tfvis.io import image_files, load_images

    root, model = files
    out = tmp_path / "nn"
    args = ["neighbours", str(root / "model.keras"), "--layer", "conv3b", "--data",
            str(root / "data"), "--query", str(root / "query"), "--k", "3", "--metric", metric,
            "--preprocess", "scale", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.iterdir()) == ["neighbours.csv", "neighbours.png"]
    assert (out / "neighbours.png").read_bytes()[:4] == b"\x89PNG"
    rows = read_csv(out / "neighbours.csv")
    assert len(rows) == 3 * 3 and rows[0].keys() == {"query", "rank", "index", "image",
                                                      "distance"}
    # brute force on the same pixels: average-pooled conv3b features, numpy distances
    x, _, _, _ = load_images(image_files([root / "data"]), (None, 32, 32, 3), "scale")
    q, _, _, _ = load_images(image_files([root / "query"]), (None, 32, 32, 3), "scale")
    fx = activations(model, x, "conv3b")["conv3b"].mean(axis=(1, 2))
    fq = activations(model, q, "conv3b")["conv3b"].mean(axis=(1, 2))
    if metric == "cosine":
        d = 1 - (fq / np.linalg.norm(fq, axis=1, keepdims=True)) @ (
            fx / np.linalg.norm(fx, axis=1, keepdims=True)).T
    else:
        d = np.linalg.norm(fq[:, None] - fx[None], axis=-1)
    names = [p.name for p in image_files([root / "query"])]
    for i, name in enumerate(names):
        mine = [r for r in rows if r["query"] == name]
        assert [int(r["rank"]) for r in mine] == [1, 2, 3]
        expect = np.argsort(d[i], kind="stable")[:3]
        assert [int(r["index"]) for r in mine] == expect.tolist()
        assert [r["image"] for r in mine] == [f"d{j}.png" for j in expect]
        np.testing.assert_allclose([float(r["distance"]) for r in mine], d[i, expect],
                                   atol=1e-4)
    same = [r for r in rows if r["query"] == "same.png"][0]  # a copy of d5 finds d5 first
    assert same["image"] == "d5.png" and abs(float(same["distance"])) < 1e-4


def test_neighbours_faiss_backend_gives_the_exact_csv(files, tmp_path):
    root, _ = files
    base = ["neighbours", str(root / "model.keras"), "--layer", "conv3b", "--data",
            str(root / "data"), "--query", str(root / "query"), "--k", "3", "--metric", "l2",
            "--preprocess", "scale"]
    assert main(base + ["--out", str(tmp_path / "exact")]) == 0
    assert main(base + ["--backend", "faiss", "--out", str(tmp_path / "faiss")]) == 0
    exact, approx = (read_csv(tmp_path / d / "neighbours.csv") for d in ("exact", "faiss"))
    assert [(r["query"], r["index"]) for r in exact] == [(r["query"], r["index"])
                                                         for r in approx]
    np.testing.assert_allclose([float(r["distance"]) for r in approx],
                               [float(r["distance"]) for r in exact], atol=1e-4)


def test_neighbours_keeps_outputs_and_checks_arguments(files, tmp_path, capsys):
    root, _ = files
    out = tmp_path / "nn"
    base = ["neighbours", str(root / "model.keras"), "--layer", "conv3b", "--data",
            str(root / "data"), "--query", str(root / "query" / "q0.png"), "--out", str(out)]
    assert main(base + ["--k", "2"]) == 0
    before = (out / "neighbours.csv").read_bytes()
    assert main(base + ["--k", "4"]) == 2  # no overwrite
    assert "--overwrite" in capsys.readouterr().err
    assert (out / "neighbours.csv").read_bytes() == before
    assert main(base + ["--k", "4", "--overwrite"]) == 0
    assert len(read_csv(out / "neighbours.csv")) == 4
    fresh = base[:-1] + [str(tmp_path / "other")]
    assert main(fresh + ["--k", "9"]) == 2  # more than the 8 searched images
    assert main(fresh + ["--k", "0"]) == 2
    assert main([a if a != "conv3b" else "conv3x" for a in fresh]) == 2  # layer typo
    assert "conv3b" in capsys.readouterr().err
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    assert main(["neighbours", str(tmp_path / "legacy.h5")] + fresh[2:]) == 3  # trust needed
    assert not (tmp_path / "other").exists()


def test_neighbours_usage_errors_need_no_tensorflow(tmp_path):
    (tmp_path / "m.keras").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "neighbours.csv").write_text("an earlier table")
    script = textwrap.dedent("""
        import contextlib, io, json, sys
        from tfvis.cli import main
        root = sys.argv[1]
        base = ["neighbours", root + "/m.keras", "--data", root + "/x.png", "--query",
                root + "/x.png"]
        calls = {"help": ["neighbours", "--help"],
                 "no layer": base + ["--out", root + "/o"],
                 "existing": base + ["--layer", "c", "--out", root],
                 "bad k": base + ["--layer", "c", "--k", "0", "--out", root + "/o"],
                 "missing query": base[:-1] + [root + "/nope.png", "--layer", "c", "--out",
                                               root + "/o"],
                 "corrupt": base + ["--layer", "c", "--out", root + "/o", "--k", "1"]}
        codes = {}
        for what, argv in calls.items():
            with contextlib.redirect_stdout(io.StringIO()), \\
                    contextlib.redirect_stderr(io.StringIO()):
                codes[what] = main(argv)
        print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
    """)
    done = subprocess.run([sys.executable, "-c", script, str(tmp_path)], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == {"help": 0, "no layer": 2, "existing": 2, "bad k": 2,
                               "missing query": 2, "corrupt": 2}
    assert report["tensorflow"] is False
