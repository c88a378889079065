"""`tfvis evaluate`: the files it writes equal `tfvis.metrics.evaluate` on the same inputs, its
exit codes, its option forms, and its start without TensorFlow for help and usage errors."""

import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest

from tfvis.cli import EVALUATE_METRICS, main
from tfvis.gallery import save_png
from tfvis.metrics import Deletion, Evaluation, evaluate
from tfvis.metrics.evaluate import METRICS

from test_metrics_evaluate import detector_model, objects  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("evaluate")
    model = detector_model()
    model.save(root / "model.keras")
    images, masks, _ = objects(4, seed=1)
    (root / "images").mkdir()
    (root / "masks").mkdir()
    for i in range(len(images)):
        save_png(root / "images" / f"img{i}.png", np.round(images[i] * 255).astype(np.uint8))
        save_png(root / "masks" / f"img{i}.png", masks[i].astype(np.uint8) * 255)
    inp = keras.Input((32, 32, 3))
    flat = keras.Model(inp, keras.layers.Dense(2, activation="softmax")(
        keras.layers.Flatten()(inp)), name="flat")
    flat.save(root / "flat.keras")
    return root, model


def test_metric_names_agree_with_the_library():
    assert EVALUATE_METRICS == tuple(METRICS)


def test_writes_tables_and_curves_equal_to_the_python_api(files, tmp_path, capsys):
    root, model = files
    out = tmp_path / "out"
    code = main(["evaluate", str(root / "model.keras"), str(root / "images"), "--methods",
                 "gradcam", "Saliency", "random", "centre", "--metrics", "all", "--masks",
                 str(root / "masks"), "--target", "0", "--preprocess", "scale", "--out",
                 str(out), "--option", "deletion.steps=8", "--option", "mu_fidelity.num_subsets=8",
                 "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["curves.png", "table.csv", "table.md"]
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"
    table = Evaluation.read_csv(out / "table.csv")
    assert list(table) == ["gradcam", "saliency", "random", "centre"]
    assert list(table["gradcam"]) == list(METRICS)

    from tfvis.io import load_images

    x, _, _, _ = load_images(sorted((root / "images").iterdir()), (None, 32, 32, 3), "scale")
    _, masks, _ = objects(4, seed=1)
    from tfvis.metrics import MuFidelity

    expected = evaluate(model, x, ["gradcam", "saliency", "random", "centre"],
                        [Deletion(model, steps=8)] + list(METRICS)[1:6]
                        + [MuFidelity(model, num_subsets=8), "localization_error"],
                        targets=0, masks=masks, verbose=0).table
    for method, row in expected.items():
        for metric, score in row.items():
            assert table[method][metric].mean == pytest.approx(score.mean, abs=1e-5), (
                method, metric)
    md = (out / "table.md").read_text()
    assert "| gradcam |" in md and "steps=8" in md and "images: 4" in md
    assert table["gradcam"]["pointing_game"].mean > table["random"]["pointing_game"].mean


def test_outputs_are_kept_unless_overwrite(files, tmp_path, capsys):
    root, _ = files
    args = ["evaluate", str(root / "model.keras"), str(root / "images" / "img0.png"),
            "--methods", "random", "--metrics", "average_drop", "--out", str(tmp_path),
            "--preprocess", "scale", "--quiet"]
    assert main(args) == 0
    assert not (tmp_path / "curves.png").exists()  # no deletion or insertion: no curves
    before = (tmp_path / "table.csv").read_bytes()
    assert main(args[:-3] + ["--metrics", "deletion", "--quiet"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert (tmp_path / "table.csv").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.csv", "table.md"]


@pytest.mark.parametrize("extra, code, message", [
    (["--metrics", "deletoin"], 2, "Did you mean deletion"),
    (["--methods", "gradkam"], 2, "gradcam"),
    (["--metrics", "pointing_game"], 2, "--masks"),
    (["--option", "deletion.stepz=3"], 2, "steps"),
    (["--option", "rise.num_masks=3"], 2, "not among --methods"),
    (["--option", "num_masks=3"], 2, "no method"),
    (["--option", "oops"], 2, "KEY=VALUE"),
    (["--target", "7"], 2, "out of range"),
    (["--masks", "nowhere"], 2, "not a folder"),
])
def test_usage_errors(files, tmp_path, capsys, extra, code, message):
    root, _ = files
    argv = ["evaluate", str(root / "model.keras"), str(root / "images"), "--out",
            str(tmp_path / "o"), "--metrics", "deletion", "--quiet", *extra]
    assert main(argv) == code
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_method_options_and_missing_masks(files, tmp_path, capsys):
    root, _ = files
    masks = tmp_path / "masks"
    masks.mkdir()
    save_png(masks / "img0.png", np.full((32, 32), 255, np.uint8))
    argv = ["evaluate", str(root / "model.keras"), str(root / "images"), "--metrics",
            "pointing_game", "--masks", str(masks), "--out", str(tmp_path / "o")]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no mask" in err and "img1.png" in err and "img0.png" not in err
    argv = ["evaluate", str(root / "model.keras"), str(root / "images" / "img0.png"),
            "--methods", "occlusion", "gradcam", "--metrics", "insertion", "--option",
            "occlusion.patch_size=4", "--option", "stride=4", "--option", "gradcam.layer=detect",
            "--option", "insertion.steps=4", "--out", str(tmp_path / "ok"), "--quiet"]
    assert main(argv) == 0
    assert "steps=4" in (tmp_path / "ok" / "table.md").read_text()


def test_exit_codes_for_refused_and_unsupported_models(files, tmp_path, capsys):
    root, _ = files
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    base = [str(root / "images"), "--metrics", "deletion", "--out", str(tmp_path / "o"),
            "--quiet"]
    assert main(["evaluate", str(tmp_path / "legacy.h5"), *base]) == 3
    assert "--trust-model" in capsys.readouterr().err
    # Grad-CAM needs a feature map; a Flatten -> Dense model has none
    assert main(["evaluate", str(root / "flat.keras"), *base, "--methods", "gradcam"]) == 4
    assert "rank-4" in capsys.readouterr().err
    assert main(["evaluate", str(root / "flat.keras"), *base, "--methods", "saliency",
                 "random"]) == 0


NO_TENSORFLOW = textwrap.dedent("""
    import contextlib, io, json, sys
    from tfvis.cli import main

    root = sys.argv[1]
    calls = {
        "help": ["evaluate", "--help"],
        "missing args": ["evaluate"],
        "missing image": ["evaluate", root + "/corrupt.keras", root + "/missing.png"],
        "unknown metric": ["evaluate", root + "/corrupt.keras", root + "/x.png", "--metrics", "x"],
        "existing output": ["evaluate", root + "/corrupt.keras", root + "/x.png", "--out", root],
        "refused h5": ["evaluate", root + "/legacy.h5", root + "/x.png", "--out", root + "/n"],
        "corrupt model": ["evaluate", root + "/corrupt.keras", root + "/x.png", "--out",
                          root + "/n"],
    }
    codes = {}
    for what, argv in calls.items():
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            codes[what] = main(argv)
    print(json.dumps({"codes": codes, "tensorflow": "tensorflow" in sys.modules}))
""")


def test_help_and_usage_errors_need_no_tensorflow(tmp_path):
    (tmp_path / "corrupt.keras").write_bytes(b"PK\x03\x04 truncated")
    (tmp_path / "legacy.h5").write_bytes(b"\x89HDF\r\n\x1a\n")
    (tmp_path / "x.png").write_bytes(b"\x89PNG")
    (tmp_path / "table.md").write_text("an earlier table")
    done = subprocess.run([sys.executable, "-c", NO_TENSORFLOW, str(tmp_path)],
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["codes"] == {"help": 0, "missing args": 2, "missing image": 2,
                               "unknown metric": 2, "existing output": 2, "refused h5": 3,
                               "corrupt model": 2}
    assert report["tensorflow"] is False
    assert not list(tmp_path.glob("n"))  # nothing written
