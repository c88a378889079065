"""The tfvis command: help, usage errors, and the demo subcommand (in-process and as -m)."""

import json
import subprocess
import sys

import pytest

from tfvis.cli import main


def test_help_shows_examples(capsys):
    assert main(["--help"]) == 0
    assert "examples:" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys):
    assert main([]) == 2


def test_unknown_method_is_a_usage_error(capsys, tmp_path):
    assert main(["demo", "--methods", "gradkam", "--out", str(tmp_path / "d")]) == 2
    assert "gradcam" in capsys.readouterr().err


def test_explain_help_lists_every_method_with_its_options_and_defaults(capsys):
    import tfvis

    assert main(["explain", "--help"]) == 0
    text = capsys.readouterr().out
    for name in tfvis.methods():
        assert name in text and tfvis.REGISTRY[name].title in text
    assert "num_masks=4000" in text and "grid_size=7" in text  # RISE's constructor defaults
    assert "patch_size=16" in text and "fill='mean'" in text  # Occlusion's
    assert "verbose=" not in text  # set by the command


def test_method_options_follow_the_constructor_chain():
    import tfvis
    from tfvis.cli import method_options

    smooth = method_options(tfvis.SmoothGrad)
    assert list(smooth)[:4] == ["num_samples", "noise", "seed", "statistic"]
    assert "channels" in smooth and "batch_size" in smooth  # its Saliency's, then Explainer's
    cam = method_options(tfvis.GradCAM)
    assert "relu" in cam and "output" in cam and "layer" not in cam and "verbose" not in cam


@pytest.mark.parametrize("text, value", [
    ("1000", 1000), ("0.25", 0.25), ("1e-3", 1e-3), ("true", True), ("False", False),
    ("none", None), ("mean", "mean"), ("'7'", "7"), ("8,8", (8, 8)), ("0.5, 1", (0.5, 1)),
    ("8,", (8,)),
])
def test_option_values_are_parsed(text, value):
    from tfvis.cli import parse_value

    parsed = parse_value(text)
    assert parsed == value and type(parsed) is type(value)


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
    # a .keras model whose only content is the SavedModel (it ends in a softmax)
    inp = keras.Input((32, 32, 3))
    opaque = keras.layers.TFSMLayer(str(root / "savedmodel"), call_endpoint="serve")
    keras.Model(inp, opaque(inp), name="wrapped").save(root / "tfsm.keras")
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


def test_explain_top5_gives_five_panels(files, tmp_path, monkeypatch):
    import tfvis.plotting.inspect as figs

    root, model = files
    out = tmp_path / "top5"
    drawn = []
    draw = figs.top_classes_figure

    def spy(image, probs, classes, maps, class_names=None):
        fig = draw(image, probs, classes, maps, class_names)
        drawn.append((probs, list(classes), np.asarray(maps), len(fig.axes)))
        return fig

    monkeypatch.setattr(figs, "top_classes_figure", spy)
    assert main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 str(root / "images" / "img1.png"), "--target", "top5", "--out", str(out),
                 "--preprocess", "scale"]) == 0
    assert len(list((out / "maps").glob("*.npy"))) == 8  # the model has 4 classes, 2 images
    figures = sorted(p.name for p in (out / "top5").iterdir())
    assert figures == ["000_img0_gradcam_top5.png", "001_img1_gradcam_top5.png"]
    assert "top5/" in (out / "index.html").read_text()
    # each figure: the image, then the classes by falling probability, with their own maps
    from tfvis import GradCAM
    from tfvis.io import load_images

    x, _, _, _ = load_images([root / "images" / "img1.png"], (None, 32, 32, 3), "scale")
    probs, classes, maps, axes = drawn[1]
    expect = np.argsort(-model.predict(x, verbose=0)[0], kind="stable")
    assert classes == expect.tolist() and axes == 1 + 4
    assert np.all(np.diff(probs[classes]) <= 0)
    np.testing.assert_allclose(maps, GradCAM(model, verbose=0)(np.repeat(x, 4, 0),
                                                               targets=expect).maps, atol=1e-5)
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


def test_method_titles_and_spellings_are_accepted_and_files_keep_the_method(files, tmp_path):
    root, _ = files
    img = str(root / "images" / "img0.png")
    for spelling in ("Grad-CAM++", "gradcam_pp", "GradCAMPP"):
        out = tmp_path / spelling
        assert main(["explain", str(root / "model.keras"), img, "--method", spelling,
                     "--out", str(out)]) == 0
        written = sorted(p.name for p in out.rglob("*") if p.is_file() and p.suffix != ".html")
        assert "000_img0_gradcampp_top1.npy" in written
        overlays = [n for n in written if n.endswith(".png") and not n.endswith("_input.png")]
        assert overlays and all("gradcampp" in n for n in overlays), written
    # Grad-CAM and Grad-CAM++ never share an output name
    assert main(["explain", str(root / "model.keras"), img, "--method", "Grad-CAM",
                 "--out", str(tmp_path / "plain")]) == 0
    plain = {p.name for p in (tmp_path / "plain").rglob("*") if p.is_file()}
    plus = {p.name for p in (tmp_path / "Grad-CAM++").rglob("*") if p.is_file()}
    assert plain & plus <= {"index.html", "000_00_input.png"}


def test_method_options_are_set_and_checked(files, tmp_path, capsys):
    root, model = files
    img = root / "images" / "img0.png"
    out = tmp_path / "rise"
    assert main(["explain", str(root / "model.keras"), str(img), "--method", "RISE",
                 "--option", "num_masks=24", "--option", "grid_size=4,4", "--option", "seed=3",
                 "--option", "keep_prob=0.4", "--out", str(out), "--preprocess", "scale"]) == 0
    raw = np.load(out / "maps" / "000_img0_rise_top1.npy")
    from tfvis import RISE
    from tfvis.io import load_images

    x, _, _, _ = load_images([img], (None, 32, 32, 3), "scale")
    expected = RISE(model, num_masks=24, grid_size=(4, 4), seed=3, keep_prob=0.4, verbose=0)(x)
    np.testing.assert_allclose(raw, expected.raw[0], atol=1e-5)
    assert "num_masks=24" in (out / "index.html").read_text()  # the settings are stated
    capsys.readouterr()
    assert main(["explain", str(root / "model.keras"), str(img), "--method", "rise",
                 "--option", "num_mask=5", "--out", str(tmp_path / "typo")]) == 2
    err = capsys.readouterr().err
    assert "no option 'num_mask'" in err and "num_masks=4000" in err and "grid_size=7" in err
    assert main(["explain", str(root / "model.keras"), str(img), "--method", "rise",
                 "--option", "num_masks=-1", "--out", str(tmp_path / "bad")]) == 2
    assert main(["explain", str(root / "model.keras"), str(img), "--method", "gradcam",
                 "--option", "layer=conv1a", "--out", str(tmp_path / "layer")]) == 2
    assert not (tmp_path / "typo").exists() and not (tmp_path / "bad").exists()


def test_layer_typo_lists_five_close_layers_not_the_table(files, tmp_path, capsys):
    root, _ = files
    code = main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 "--layer", "conv2", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2
    assert "no layer 'conv2'" in err and f"tfvis layers {root / 'model.keras'}" in err
    assert "Closest: conv2a, conv2b" in err and len(err.strip().splitlines()) == 1
    closest = err.split("Closest: ")[1].split(".")[0].split(", ")
    assert len(closest) == 5
    assert "(None," not in err  # no table of shapes
    # a layer that exists but has no feature map: the reason, and at most five candidates
    code = main(["explain", str(root / "model.keras"), str(root / "images" / "img0.png"),
                 "--layer", "gap", "--out", str(tmp_path / "o")])
    err = capsys.readouterr().err
    assert code == 2 and "gap" in err and len(err.strip().splitlines()) <= 7


def test_corrupt_keras_file_is_not_reported_as_missing(files, tmp_path, capsys):
    root, _ = files
    data = (root / "model.keras").read_bytes()
    (tmp_path / "cut.keras").write_bytes(data[: len(data) // 2])
    assert main(["layers", str(tmp_path / "cut.keras")]) == 2
    err = capsys.readouterr().err
    assert "not a valid Keras archive" in err and "not found" not in err.lower()


def test_trust_model_loads_a_legacy_h5_with_a_lambda_for_that_load_only(tmp_path, capsys):
    from keras.src.saving import serialization_lib

    inp = keras.Input((8, 8, 3))
    x = keras.layers.Lambda(lambda t: t * 2.0, name="double")(inp)
    x = keras.layers.Conv2D(2, 3, name="conv")(x)
    model = keras.Model(inp, keras.layers.Dense(2)(keras.layers.GlobalAveragePooling2D()(x)))
    model.save(tmp_path / "lambda.h5")
    save_png(tmp_path / "x.png", np.zeros((8, 8, 3), np.uint8))
    before = serialization_lib.in_safe_mode()
    assert main(["layers", str(tmp_path / "lambda.h5")]) == 3
    assert main(["layers", str(tmp_path / "lambda.h5"), "--trust-model"]) == 0
    assert "double" in capsys.readouterr().out
    assert serialization_lib.in_safe_mode() == before
    assert main(["explain", str(tmp_path / "lambda.h5"), str(tmp_path / "x.png"),
                 "--trust-model", "--out", str(tmp_path / "o")]) == 0
    assert serialization_lib.in_safe_mode() == before


def test_opaque_savedmodel_inside_keras_file(files, tmp_path, capsys):
    root, _ = files
    tfsm, img = str(root / "tfsm.keras"), str(root / "images" / "img0.png")
    assert main(["layers", tfsm]) == 3  # a TFSMLayer loads an external graph: needs trust
    assert "TFSMLayer" in capsys.readouterr().err
    for method in ("gradcam", "guided_backprop", "cam"):
        assert main(["explain", tfsm, img, "--method", method, "--trust-model",
                     "--out", str(tmp_path / method)]) == 4, method
        assert "saliency" in capsys.readouterr().err  # what works instead
    assert main(["explain", tfsm, img, "--method", "saliency", "--trust-model",
                 "--out", str(tmp_path / "saliency")]) == 0
    out = capsys.readouterr().out
    notes = [line for line in out.splitlines() if "cannot be bypassed" in line]
    assert len(notes) == 1 and "TFSMLayer" in notes[0]
    assert "cannot be bypassed" in (tmp_path / "saliency" / "index.html").read_text()
    # RISE explains probabilities anyway: no note
    assert main(["explain", tfsm, img, "--method", "rise", "--option", "num_masks=8",
                 "--trust-model", "--out", str(tmp_path / "rise")]) == 0
    assert "cannot be bypassed" not in capsys.readouterr().out


def test_demo_refuses_a_non_empty_folder_and_replaces_an_old_gallery(tmp_path, capsys):
    out = tmp_path / "demo"
    (out / "images").mkdir(parents=True)
    stale = out / "images" / "000_07_Old_Method.png"
    save_png(stale, np.zeros((4, 4, 3), np.uint8))
    (out / "mine.txt").write_text("the user's")
    args = ["demo", "--out", str(out), "--methods", "Grad-CAM++", "--epochs", "1",
            "--train-images", "64", "--quiet"]
    assert main(args) == 2
    assert "--overwrite" in capsys.readouterr().err and stale.exists()
    assert main(args + ["--overwrite"]) == 0
    assert not stale.exists() and (out / "mine.txt").read_text() == "the user's"
    images = sorted(p.name for p in (out / "images").iterdir())
    assert images and all(n.endswith(("_input.png", "_gradcampp.png")) for n in images), images
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["pointing_game"]) == {"gradcampp"}


def test_inspect_writes_a_report_page(files, tmp_path):
    root, _ = files
    out = tmp_path / "inspect"
    assert main(["inspect", str(root / "model.keras"), "--data", str(root / "images"),
                 "--out", str(out), "--channels", "4", "--k", "2"]) == 0
    page = (out / "index.html").read_text()
    assert "kernels.png" in page and (out / "kernels.png").stat().st_size > 0
    assert any(out.glob("top_*.png")) and (out / "layer_stats.json").exists()
    assert main(["inspect", str(root / "model.keras"), "--out", str(out)]) == 2  # no overwrite
    assert main(["inspect", str(root / "model.keras"), "--out", str(out), "--overwrite"]) == 0


def test_visualize_writes_one_image_per_channel_and_a_grid(files, tmp_path):
    root, _ = files
    out = tmp_path / "filters"
    args = ["visualize", str(root / "model.keras"), "--layer", "conv3b", "--channels", "0-2,5",
            "--steps", "2", "--out", str(out)]
    assert main(args) == 0
    assert sorted(p.name for p in out.glob("channel*.png")) == [
        "channel_0.png", "channel_1.png", "channel_2.png", "channel_5.png"]
    assert (out / "grid.png").stat().st_size > 0
    assert main(args) == 2  # kept without --overwrite
    assert main(args[:-4] + ["--channels", "3-1", "--out", str(tmp_path / "x")]) == 2
    assert main(["visualize", str(root / "model.keras"), "--layer", "conv3", "--out",
                 str(tmp_path / "y")]) == 2  # typo: a short usage error
