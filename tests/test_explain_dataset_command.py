"""The explain-dataset command handler (tfvis.distributed.command), on a standalone parser."""

import argparse

import numpy as np
import pytest

from conftest import gap_dense_model

pytest.importorskip("zarr")

from tfvis.cli import UsageError  # noqa: E402
from tfvis.distributed import open_explanations  # noqa: E402
from tfvis.distributed.command import add_parser, run_command  # noqa: E402


def parse(*argv):
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["explain-dataset", *argv])


def test_command_writes_resumes_and_refuses(tmp_path, capsys):
    import cv2

    model_path = tmp_path / "m.keras"
    gap_dense_model().save(model_path)
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i, image in enumerate(np.random.default_rng(0).integers(0, 255, (5, 16, 20, 3))):
        cv2.imwrite(str(folder / f"{i}.png"), image.astype(np.uint8))
    out = tmp_path / "run"
    argv = [str(model_path), str(folder), "--methods", "gradcam,Saliency", "--out", str(out),
            "--shard-size", "2", "--option", "gradcam.batch_size=4", "--quiet"]
    assert run_command(parse(*argv)) == 0
    run = open_explanations(out)
    assert run.methods == ["gradcam", "saliency"] and run.ids.tolist() == [
        f"{i}.png" for i in range(5)]
    assert run.manifest["methods"]["gradcam"]["options"] == {"batch_size": "4"}
    assert "5 images, 2 methods" in capsys.readouterr().out
    with pytest.raises(UsageError, match="--resume"):
        run_command(parse(*argv))
    assert run_command(parse(*argv, "--resume")) == 0
    with pytest.raises(UsageError, match="other arguments"):
        run_command(parse(*argv[:-3], "--quiet", "--resume"))  # options changed
    with pytest.raises(UsageError, match="not in --methods"):
        run_command(parse(*argv, "--resume", "--option", "rise.num_masks=5"))


def test_the_tfvis_command_runs_and_resumes(tmp_path):
    """``tfvis explain-dataset`` through the CLI entry point: writes the store, then refuses a
    second run without --resume and finishes nothing new with it."""
    import keras
    import numpy as np

    from tfvis.cli import main
    from tfvis.datasets import shapes
    from tfvis.demo import build_model
    from tfvis.gallery import save_png

    model = build_model((32, 32, 3))
    model.save(tmp_path / "m.keras")
    images = tmp_path / "images"
    images.mkdir()
    for i, image in enumerate(shapes(3, 32).images):
        save_png(images / f"{i}.png", (image * 255).astype(np.uint8))
    out = tmp_path / "run"
    args = ["explain-dataset", str(tmp_path / "m.keras"), str(images), "--methods", "gradcam",
            "--out", str(out)]
    assert main(args) == 0
    import tfvis

    run = tfvis.open_explanations(out)
    assert len(run) == 3 and run.maps("gradcam").shape == (3, 32, 32)
    assert main(args) == 2
    assert main(args + ["--resume"]) == 0
    assert keras.config.dtype_policy().name == "float32"
