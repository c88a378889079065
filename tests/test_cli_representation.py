"""``tfvis invert``, ``tfvis style`` and ``tfvis attack``: galleries equal to the Python API."""

import json

import numpy as np
import pytest

from tfvis.cli import main
from tfvis.datasets import shapes
from tfvis.demo import build_model
from tfvis.gallery import save_png


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("repr")
    model = build_model((32, 32, 3))
    model.save(root / "model.keras")
    images = root / "images"
    images.mkdir()
    for i, image in enumerate(shapes(2, 32, seed=5).images):
        save_png(images / f"img{i}.png", np.round(image * 255).astype(np.uint8))
    return root, model


def _x(root):
    from tfvis.io import load_images

    return load_images([root / "images" / "img0.png", root / "images" / "img1.png"],
                       (None, 32, 32, 3), "scale")[0]


def test_invert_writes_a_gallery_equal_to_the_python_api(files, tmp_path):
    import tfvis

    root, model = files
    out = tmp_path / "inv"
    args = ["invert", str(root / "model.keras"), str(root / "images"), "--layer", "conv1a",
            "--layer", "conv2b", "--steps", "3", "--preprocess", "scale", "--out", str(out),
            "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["layers"] == ["conv1a", "conv2b"]
    want = tfvis.invert(model, ["conv1a", "conv2b"], _x(root), steps=3, seed=0, verbose=0)
    np.testing.assert_allclose(summary["psnr_db"], want.psnr(), rtol=1e-4)
    page = (out / "index.html").read_text()
    assert "from conv2b" in page and "img1.png" in page
    assert (out / "reconstructions.png").read_bytes()[:4] == b"\x89PNG"
    assert main(args) == 2  # kept without --overwrite
    assert main(args + ["--overwrite"]) == 0
    bad = ["invert", str(root / "model.keras"), str(root / "images"), "--layer", "conv9",
           "--out", str(tmp_path / "x")]
    assert main(bad) == 2  # a typo'd layer: a usage error listing close names


def test_attack_gallery_and_summary_match_the_python_api(files, tmp_path, capsys):
    import tfvis

    root, model = files
    out = tmp_path / "att"
    args = ["attack", str(root / "model.keras"), str(root / "images"), "--eps", "8/255",
            "--steps", "3", "--preprocess", "scale", "--out", str(out), "--quiet"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    want = tfvis.adversarial(model, _x(root), eps=8 / 255, steps=3, seed=0, verbose=0)
    assert summary["eps"] == pytest.approx(8 / 255)
    assert summary["adversarial_classes"] == want.adversarial_classes.tolist()
    assert summary["success"] == want.success.tolist()
    assert summary["explainer"] == "gradcam" and len(summary["rank_correlation"]) == 2
    assert (out / "explanations.png").read_bytes()[:4] == b"\x89PNG"
    assert "gradcam: original class, attacked" in (out / "index.html").read_text()
    capsys.readouterr()
    assert main(args[:3] + ["--eps", "eight", "--out", str(tmp_path / "y")]) == 2
    assert "8/255" in capsys.readouterr().err
    assert main(args[:3] + ["--eps", "2", "--out", str(tmp_path / "z")]) == 2
    capsys.readouterr()
    assert main(args[:3] + ["--preprocess", "vgg17", "--out", str(tmp_path / "p")]) == 2
    assert "unknown preprocessing 'vgg17'" in capsys.readouterr().err


def test_style_needs_layers_for_other_models_then_writes_the_result(files, tmp_path, capsys):
    root, _ = files
    content, style = root / "images" / "img0.png", root / "images" / "img1.png"
    base = ["style", str(root / "model.keras"), str(content), str(style), "--steps", "2",
            "--preprocess", "scale", "--quiet"]
    capsys.readouterr()
    assert main(base + ["--out", str(tmp_path / "a")]) == 2  # not a VGG: layers required
    assert "conv1a" in capsys.readouterr().err  # the error lists the layers that qualify
    out = tmp_path / "b"
    assert main(base + ["--content-layers", "conv2b", "--style-layers", "conv1a", "conv2a",
                        "--out", str(out)]) == 0
    assert (out / "stylised.png").read_bytes()[:4] == b"\x89PNG"
    assert json.loads((out / "summary.json").read_text())["style"] == "img1.png"
