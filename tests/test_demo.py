"""The demo end to end: it trains, every registered method runs and points at the objects."""

import json

import numpy as np
import pytest

import tfvis
from tfvis.demo import run_demo

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    return out, run_demo(out, n_eval=32, n_show=4, verbose=0)


def test_demo_trains_a_working_model(demo):
    _, result = demo
    assert result.accuracy >= 0.9


def test_every_registered_method_runs_in_the_gallery(demo):
    out, result = demo
    assert result.skipped == {}
    assert set(result.pointing) == set(tfvis.methods())
    page = result.index.read_text()
    for name in tfvis.methods():
        assert tfvis.REGISTRY[name].title in page
    images = sorted((out / "images").iterdir())
    assert len(images) == 4 * (len(tfvis.methods()) + 1)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pointing_game"] == result.pointing


def test_cam_family_points_at_the_objects(demo):
    _, result = demo
    for name in ("cam", "gradcam", "gradcampp"):
        assert result.pointing[name] >= 0.8, (name, result.pointing)
    # evidence *against* the true class lies elsewhere than the object
    assert result.pointing["counterfactual_gradcam"] < result.pointing["gradcam"]


def test_summary_and_gallery_state_deletion_and_insertion_per_method(demo):
    out, result = demo
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["deletion_auc"]) == set(summary["insertion_auc"]) == set(result.pointing)
    assert summary["deletion_auc"] == result.deletion
    assert summary["insertion_auc"] == result.insertion
    for name in result.pointing:
        assert 0.0 <= result.deletion[name] <= 1.0 and 0.0 <= result.insertion[name] <= 1.0
    settings = summary["metric_settings"]
    assert settings["images"] == 32 and settings["deletion"]["steps"] == 16
    assert settings["insertion"]["substrate"] == "blur"
    assert set(summary["baselines"]) == {"random", "centre"}
    # a CAM map removes the evidence faster than a random map, and inserts it faster
    random = summary["baselines"]["random"]
    assert result.deletion["gradcam"] < random["deletion"]
    assert result.insertion["gradcam"] > random["insertion"]
    assert result.pointing["gradcam"] > random["pointing_game"]
    # evidence *against* the class, removed first, hardly lowers its probability
    assert result.deletion["counterfactual_gradcam"] > result.deletion["gradcam"]
    page = result.index.read_text()
    assert "Deletion / insertion AUC" in page and "baselines: random" in page
    assert ", deletion 0." in page and ", insertion 0." in page  # per-image captions


def test_each_method_has_its_own_file_names(demo):
    out, _ = demo
    row = sorted(p.name for p in (out / "images").iterdir() if p.name.startswith("000_"))
    # without the column number, no two methods share a name ("Grad-CAM++" sanitised alone
    # would read "Grad-CAM"), and each carries its registry name
    assert len({n[len("000_00_"):] for n in row}) == len(row) == len(tfvis.methods()) + 1
    for column, name in enumerate(tfvis.methods(), start=1):
        assert row[column].startswith(f"000_{column:02d}_") and row[column].endswith(
            f"_{name}.png"), (column, name, row[column])


def test_settings_and_per_class_results_are_stated(demo):
    out, result = demo
    summary = json.loads((out / "summary.json").read_text())
    for name in tfvis.methods():
        expected = json.loads(json.dumps(dict(tfvis.REGISTRY[name].quick_options)))
        assert summary["options"][name] == expected, name
    assert result.options["rise"]["num_masks"] == tfvis.RISE.quick_options["num_masks"]
    assert set(summary["pointing_game_by_class"]["rise"]) == {"square", "circle", "triangle",
                                                              "cross"}
    by_class = summary["pointing_game_by_class"]["gradcam"]
    assert sum(by_class.values()) / 4 == pytest.approx(result.pointing["gradcam"])  # 8 each
    assert summary["blank_image_prediction"]["class"] in by_class
    page = result.index.read_text()
    assert "Settings: " in page and "num_masks=300" in page and "Misses per class" in page


def test_inside_the_network_section(demo):
    out, result = demo
    page = result.index.read_text()
    assert "<h2>Inside the network</h2>" in page
    inside = sorted(n.split("/")[1] for n in result.inside["files"])
    assert inside == ["cam_boxes.png", "kernels.png", "maps_conv2b.png", "top_conv3b.png"]
    for name in inside:
        assert f'src="inside/{name}"' in page
        assert (out / "inside" / name).read_bytes()[:4] == b"\x89PNG"
    summary = json.loads((out / "summary.json").read_text())
    numbers = summary["inside"]
    assert numbers == json.loads(json.dumps(result.inside))
    assert numbers["files"] == [f"inside/{n}" for n in
                                ("kernels.png", "maps_conv2b.png", "top_conv3b.png",
                                 "cam_boxes.png")]
    # six 3x3 convs and two 2x2 pools: 1 + 2 + 2 (+1) + 2*2 + 2*2 (+2) + 4*2 + 4*2 = 32 pixels
    assert numbers["receptive_field"] == [32, 32]
    # the ILSVRC error needs the class right too, so it is never below the boxes' own error
    assert 0.0 <= numbers["box_error"] <= numbers["localization_error"] <= 1.0
    assert 0.0 <= numbers["mean_iou"] <= 1.0
    sweep = numbers["by_threshold"]
    assert list(sweep) == ["0.2", "0.4", "0.6", "0.8"]
    assert sweep["0.2"]["localization_error"] == numbers["localization_error"]
    areas = [v["mean_box_area"] for v in sweep.values()]
    assert all(a >= b for a, b in zip(areas, areas[1:])) and areas[0] > areas[-1]
    assert f"{numbers['localization_error']:.3f}" in page
    assert result.seconds["inside"] < 15  # the section keeps the demo's extra time small


def test_what_a_unit_wants_to_see_section(demo):
    out, result = demo
    page = result.index.read_text()
    assert "<h2>What a unit wants to see</h2>" in page
    numbers = result.featurevis
    assert json.loads((out / "summary.json").read_text())["featurevis"] == numbers
    for name in numbers["files"]:
        assert f'src="{name}"' in page and (out / name).read_bytes()[:4] == b"\x89PNG"
    names = list(numbers["class_model_probability"])
    # the demo CNN's landscape is rough from a flat start: most class models are their class
    right = [p == n for p, n in zip(numbers["class_model_predicted"], names)]
    assert sum(right) >= len(names) - 1, numbers["class_model_predicted"]
    assert np.mean(list(numbers["class_model_probability"].values())) > 0.6
    reached = numbers["filter_activation"]
    best = numbers["best_held_out_activation"]
    assert sum(r > b for r, b in zip(reached, best)) >= len(reached) - 1  # past the ceiling
    for before, after in numbers["deepdream_octave_values"]:
        assert after > before  # every octave raises the layer objective
    assert result.seconds["featurevis"] < 30


def test_what_a_representation_keeps_and_how_it_breaks_section(demo):
    out, result = demo
    page = result.index.read_text()
    assert "<h2>What a representation keeps and how it breaks</h2>" in page
    numbers = result.representation
    assert json.loads((out / "summary.json").read_text())["representation"] == numbers
    for name in numbers["files"]:
        assert f'src="{name}"' in page and (out / name).read_bytes()[:4] == b"\x89PNG"
    psnr = numbers["inversion_psnr_db"]
    assert numbers["inversion_layers"] == ["conv1b", "conv2b", "conv3b"]
    assert psnr[0] > psnr[-1]  # the first block keeps more of the image than the last
    assert max(numbers["inversion_feature_error"]) < 0.2
    assert numbers["network_psnr_db"] > psnr[-1]
    assert numbers["attack"]["success_rate"] >= 0.5
    assert all(-1 <= r <= 1 for r in numbers["gradcam_rank_correlation"])
    assert result.seconds["representation"] < 60


def test_options_override_quick_options_and_folder_rules(tmp_path):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "old.txt").write_text("x")
    with pytest.raises(FileExistsError, match="not empty"):
        run_demo(out, methods=["rise"], verbose=0)  # refused before any training
    with pytest.raises(ValueError, match="unknown methods"):
        run_demo(tmp_path / "other", methods=["rise"], options={"rize": {}}, verbose=0)
    result = run_demo(out, n_train=64, epochs=1, n_eval=4, n_show=2, methods=["rise"],
                      options={"rise": {"num_masks": 16, "grid_size": (4, 4)}},
                      overwrite=True, verbose=0)
    assert result.options == {"rise": {"num_masks": 16, "seed": 0, "batch_size": 128,
                                       "grid_size": (4, 4)}}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["options"]["rise"]["grid_size"] == [4, 4]
    assert (out / "old.txt").read_text() == "x"
    (out / "inside" / "stale.png").write_bytes(b"old")  # an earlier run's section figure
    run_demo(out, n_train=64, epochs=1, n_eval=4, n_show=2, methods=["rise"],
             options={"rise": {"num_masks": 16, "grid_size": (4, 4)}}, overwrite=True,
             verbose=0)
    assert not (out / "inside" / "stale.png").exists() and (out / "inside" / "kernels.png").exists()
