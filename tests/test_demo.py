"""The demo end to end: it trains, every registered method runs and points at the objects."""

import json

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
