"""The tfvis command: help, usage errors, and the demo subcommand (in-process and as -m)."""

import subprocess
import sys

import pytest

from tfvis.cli import main


def test_help_shows_examples(capsys):
    assert main(["--help"]) == 0
    assert "examples:" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


def test_unknown_method_is_a_usage_error(capsys):
    assert main(["demo", "--methods", "gradkam"]) == 2
    assert "gradcam" in capsys.readouterr().err


def test_demo_subcommand_writes_a_gallery(tmp_path):
    code = main(["demo", "--out", str(tmp_path), "--methods", "gradcam", "--epochs", "1",
                 "--train-images", "64", "--quiet"])
    assert code == 0
    assert (tmp_path / "index.html").exists() and (tmp_path / "summary.json").exists()


def test_python_dash_m_runs_the_command():
    done = subprocess.run([sys.executable, "-m", "tfvis", "demo", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "--out" in done.stdout


# -- explain / layers on saved models ------------------------------------------------------

import keras  # noqa: E402
import numpy as np  # noqa: E402

from tfvis.datasets import shapes  # noqa: E402
from tfvis.demo import build_model  # noqa: E402
from tfvis.gallery import save_png  # noqa: E402


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    model = build_model((32, 32, 3))
    model.save(root / "model.keras")
    model.export(str(root / "savedmodel"), verbose=False)
    images = root / "images"
    images.mkdir()
    for i, image in enumerate(shapes(2, (40, 48)).images):
        save_png(images / f"img{i}.png", (image * 255).astype(np.uint8))
    (images / "notes.txt").write_text("not an image")
    return root, model


def test_explain_writes_gallery_and_raw_maps_equal_to_python_api(files, tmp_path):
    root, model = files
    out = tmp_path / "out"
    code = main(["explain", str(root / "model.keras"), str(root / "images"), "--method",
                 "gradcam", "--out", str(out), "--preprocess", "scale"])
    assert code == 0
    raw = np.load(out / "maps" / "000_img0_gradcam_top1.npy")
    from tfvis import GradCAM
    from tfvis.io import load_images

    x, _, _, _ = load_images([root / "images" / "img0.png"], (None, 32, 32, 3), "scale")
    np.testing.assert_allclose(raw, GradCAM(model, verbose=0)(x).raw[0], atol=1e-5)
    assert "img1.png" in (out / "index.html").read_text()


def test_explain_top5_gives_five_panels(files, tmp_path):
    root, _ = files
    out = tmp_path / "top5"
    assert main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 "--target", "top5", "--out", str(out)]) == 0
    assert len(list((out / "maps").glob("*.npy"))) == 4  # the model has 4 classes
    assert main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 "--target", "7", "--out", str(tmp_path / "bad")]) == 2


def test_existing_outputs_are_not_overwritten(files, tmp_path):
    root, _ = files
    args = ["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
            "--out", str(tmp_path)]
    assert main(args) == 0
    before = (tmp_path / "index.html").read_bytes()
    assert main(args) == 2
    assert (tmp_path / "index.html").read_bytes() == before
    assert main(args + ["--overwrite"]) == 0


def test_hostile_file_names_stay_inside_out(files, tmp_path):
    root, _ = files
    evil = tmp_path / "in" / "..evil"
    evil.mkdir(parents=True)
    save_png(evil / "..%2f..%2fescape.png", np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "deep" / "out"
    assert main(["explain", str(root / "model.keras"), str(evil), "--out", str(out)]) == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and "in" not in p.parts]
    assert written and all(out in p.parents for p in written)


def test_symlinked_output_folder_is_refused(files, tmp_path):
    root, _ = files
    outside = tmp_path / "outside"
    outside.mkdir()
    out = tmp_path / "out"
    out.mkdir()
    (out / "maps").symlink_to(outside, target_is_directory=True)
    assert main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 "--out", str(out)]) == 2
    assert list(outside.iterdir()) == []


def test_lambda_model_is_refused_and_nothing_from_it_runs(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    monkeypatch.setenv("TFVIS_TEST_MARKER", str(marker))
    inp = keras.Input((8, 8, 3))
    # the lambda leaves a marker file whenever it runs (at load time, graph reconstruction runs it)
    x = keras.layers.Lambda(
        lambda t: (open(__import__("os").environ["TFVIS_TEST_MARKER"], "w").close(), t * 2.0)[1]
    )(inp)
    x = keras.layers.Conv2D(2, 3)(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "lambda.keras")
    marker.unlink()  # building the model ran it once
    save_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    code = main(["layers", str(tmp_path / "lambda.keras")])
    assert code == 3 and not marker.exists()
    assert main(["explain", str(tmp_path / "lambda.keras"), str(tmp_path / "x.png"),
                 "--out", str(tmp_path / "o")]) == 3
    assert not (tmp_path / "o").exists()
    assert not marker.exists()
    assert main(["layers", str(tmp_path / "lambda.keras"), "--trust-model"]) == 0
    assert marker.exists()  # with trust the code runs, so the check above is meaningful


def test_saved_model_needs_trust_and_supports_only_black_box_methods(files, tmp_path):
    root, _ = files
    sm, img = str(root / "savedmodel"), str(root / "images" / "img0.png")
    assert main(["explain", sm, img, "--method", "saliency", "--out", str(tmp_path / "a")]) == 3
    assert main(["explain", sm, img, "--method", "gradcam", "--trust-model",
                 "--out", str(tmp_path / "b")]) == 4
    assert main(["explain", sm, img, "--method", "saliency", "--trust-model",
                 "--out", str(tmp_path / "c")]) == 0
    assert main(["explain", str(root / "model.keras"), img, "--method", "saliency",
                 "--layer", "conv1a", "--out", str(tmp_path / "d")]) == 2


def test_layers_lists_nested_paths_and_cam_targets(tmp_path, capsys):
    base = keras.Sequential([keras.Input((16, 16, 3)), keras.layers.Conv2D(4, 3, name="inner")],
                            name="base")
    inp = keras.Input((16, 16, 3))
    out = keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(base(inp)))
    keras.Model(inp, out).save(tmp_path / "nested.keras")
    assert main(["layers", str(tmp_path / "nested.keras")]) == 0
    text = capsys.readouterr().out
    assert "*   base/inner" in text and "(None, 14, 14, 4)" in text


def test_errors_have_no_traceback_unless_debug(tmp_path, capsys):
    assert main(["layers", str(tmp_path / "missing.keras")]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no model at" in err
    with pytest.raises(FileNotFoundError):
        main(["--debug", "layers", str(tmp_path / "missing.keras")])


def test_console_script_subprocess_refuses_remote_models(tmp_path):
    done = subprocess.run([sys.executable, "-m", "tfvis", "layers", "hf://someone/model"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3 and "--trust-model" in done.stderr
