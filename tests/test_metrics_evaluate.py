"""`tfvis.metrics.evaluate`: the table equals the metrics called directly, baselines give the
scale, each method explains once, and the table round-trips through CSV and Markdown."""

import keras
import numpy as np
import pytest

import tfvis
from tfvis.metrics import (
    AverageDrop,
    Deletion,
    Evaluation,
    IncreaseInConfidence,
    Insertion,
    LocalizationError,
    MuFidelity,
    PointingGame,
    evaluate,
)
from tfvis.metrics.evaluate import METRICS, boxes_of_masks, centre_maps, random_maps

SIZE = 32


def detector_model() -> keras.Model:
    """Class 0's logit is 40 x the mean of relu(mean colour - 0.5): bright pixels are the
    evidence, and only they (a 1x1 conv, so Grad-CAM's map is that evidence)."""
    inp = keras.Input((SIZE, SIZE, 3), name="image")
    detect = keras.layers.Conv2D(2, 1, activation="relu", name="detect")
    gap = keras.layers.GlobalAveragePooling2D(name="gap")
    head = keras.layers.Dense(2, activation="softmax", name="predictions")
    model = keras.Model(inp, head(gap(detect(inp))), name="detector")
    kernel = np.zeros((1, 1, 3, 2), np.float32)
    kernel[0, 0, :, 0] = 1 / 3
    detect.set_weights([kernel, np.array([-0.5, 0.1], np.float32)])
    head.set_weights([np.array([[40.0, -40.0], [0.0, 0.0]], np.float32),
                      np.array([-1.0, 1.0], np.float32)])
    return model


def objects(n: int = 12, seed: int = 0):
    """Dark noisy images with one bright 6x6 square each; its mask and (x0, y0, x1, y1) box."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 0.3, (n, SIZE, SIZE, 3)).astype(np.float32)
    masks = np.zeros((n, SIZE, SIZE), bool)
    for i in range(n):
        y, x = rng.integers(2, SIZE - 8, 2)
        images[i, y:y + 6, x:x + 6] = rng.uniform(0.85, 1.0, 3)
        masks[i, y:y + 6, x:x + 6] = True
    return images, masks, boxes_of_masks(masks)


@pytest.fixture(scope="module")
def setup():
    model = detector_model()
    images, masks, boxes = objects()
    metrics = [Deletion(model, steps=8, batch_size=16), Insertion(model, steps=8),
               PointingGame(tolerance=0), PointingGame(energy=True), AverageDrop(model),
               IncreaseInConfidence(model), MuFidelity(model, num_subsets=16, seed=3),
               LocalizationError()]
    ev = evaluate(model, images, ["gradcam", "Saliency", "random", "centre"], metrics,
                  targets=0, masks=masks, seed=5, verbose=0)
    return model, images, masks, boxes, metrics, ev


def test_table_equals_the_metrics_called_directly_on_the_same_maps(setup):
    model, images, masks, boxes, metrics, ev = setup
    assert ev.methods == ["gradcam", "saliency", "random", "centre"]
    assert ev.metrics == list(METRICS)  # every metric ran, in the table's order
    maps = {"gradcam": tfvis.GradCAM(model, verbose=0)(images, targets=0).maps,
            "saliency": tfvis.Saliency(model, verbose=0)(images, targets=0).maps,
            "random": random_maps(masks.shape, 5), "centre": centre_maps(masks.shape)}
    for method, m in maps.items():
        np.testing.assert_allclose(ev.maps[method], m, atol=1e-6)
        direct = {"deletion": metrics[0](images, m, 0), "insertion": metrics[1](images, m, 0),
                  "pointing_game": metrics[2](m, masks), "pointing_energy": metrics[3](m, masks),
                  "average_drop": metrics[4](images, m, 0),
                  "increase_in_confidence": metrics[5](images, m, 0),
                  "mu_fidelity": metrics[6](images, m, 0),
                  "localization_error": metrics[7](m, boxes)}
        for metric, result in direct.items():
            got = ev.results[method][metric]
            np.testing.assert_allclose(got.values, result.values, atol=1e-6,
                                       err_msg=f"{method} {metric}")
            cell = ev.table[method][metric]
            assert cell.mean == pytest.approx(result.mean, abs=1e-6)
            assert (cell.low, cell.high) == pytest.approx(result.interval(0.95), abs=1e-6)
            assert cell.low <= cell.mean <= cell.high and cell.n == len(images)
    assert ev.results["gradcam"]["deletion"].curves.shape == (len(images), 9)


def test_a_cam_method_beats_the_random_baseline_where_it_must(setup):
    *_, ev = setup
    table = ev.table
    # the evidence is the square: Grad-CAM points at it on every image, a random map rarely
    assert table["gradcam"]["pointing_game"].mean == 1.0
    assert table["random"]["pointing_game"].mean <= 0.25
    assert table["gradcam"]["pointing_energy"].mean > 3 * table["random"]["pointing_energy"].mean
    assert table["gradcam"]["deletion"].mean < table["random"]["deletion"].mean
    assert table["gradcam"]["insertion"].mean > table["random"]["insertion"].mean
    assert table["gradcam"]["localization_error"].mean < table["random"]["localization_error"].mean


def test_each_method_explains_once_and_its_maps_serve_every_metric():
    model = detector_model()
    images, masks, _ = objects(4)
    explainer = tfvis.GradCAM(model, verbose=0)
    calls = []
    original = explainer.explain

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    explainer.explain = counted
    ev = evaluate(model, images, [explainer, "random"], ["deletion", "insertion",
                                                          "pointing_game", "average_drop"],
                  targets=0, masks=masks, verbose=0)
    assert len(calls) == 1
    assert ev.methods == ["gradcam", "random"]
    assert set(ev.results["gradcam"]) == {"deletion", "insertion", "pointing_game",
                                           "average_drop"}


def test_metrics_needing_objects_are_skipped_with_a_note_and_boxes_serve_instead():
    model = detector_model()
    images, masks, boxes = objects(4)
    ev = evaluate(model, images, ["random"], ["pointing_game", "localization_error",
                                              "average_drop"], verbose=0)
    assert ev.metrics == ["average_drop"]
    assert any("pointing_game skipped" in n for n in ev.notes)
    assert "pointing_game skipped" in ev.to_markdown()
    with pytest.raises(ValueError, match="no metric left"):
        evaluate(model, images, ["random"], ["pointing_game"], verbose=0)
    by_box = evaluate(model, images, ["centre"], ["pointing_game"], boxes=boxes, verbose=0)
    by_mask = evaluate(model, images, ["centre"], ["pointing_game"], masks=masks, verbose=0)
    # a box of a square object is its mask
    np.testing.assert_array_equal(by_box.results["centre"]["pointing_game"].values,
                                  by_mask.results["centre"]["pointing_game"].values)


def test_csv_and_markdown_round_trip_the_table(setup, tmp_path):
    *_, ev = setup
    path = tmp_path / "table.csv"
    text = ev.to_csv(path)
    assert path.read_text() == text
    assert Evaluation.read_csv(path) == ev.table  # floats written exactly
    assert Evaluation.read_csv(text) == ev.table
    with pytest.raises(FileExistsError):
        ev.to_csv(path, overwrite=False)
    md = ev.to_markdown()
    lines = md.splitlines()
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header == ["method"] + [f"{m} {'↑' if METRICS[m] else '↓'}" for m in ev.metrics]
    for line in lines[2:2 + len(ev.methods)]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        method, values = cells[0], cells[1:]
        for metric, cell in zip(ev.metrics, values):
            s = ev.table[method][metric]
            mean, low, high = (float(v) for v in cell.replace("[", "").replace("]", "")
                               .replace(",", "").split())
            assert (mean, low, high) == pytest.approx((s.mean, s.low, s.high), abs=5e-4)
    assert len([x for x in lines if x.startswith("| ")]) == 1 + len(ev.methods)


def test_deletion_curves_draw_one_line_per_method(setup):
    *_, ev = setup
    fig = tfvis.plotting.deletion_curves(ev)
    assert len(fig.axes) == 2
    for ax, key in zip(fig.axes, ("deletion", "insertion")):
        lines = ax.get_lines()
        assert len(lines) == len(ev.methods)
        np.testing.assert_allclose(lines[0].get_ydata(),
                                   ev.results["gradcam"][key].curves.mean(axis=0), atol=1e-6)
    no_curves = Evaluation(["random"], ["average_drop"], {"random": {}})
    with pytest.raises(ValueError, match="deletion"):
        tfvis.plotting.deletion_curves(no_curves)


def test_names_build_metrics_seeded_and_errors_name_the_fix(capsys):
    model = detector_model()
    images, masks, _ = objects(3)
    a = evaluate(model, images, ["random", "occlusion"], ["mu_fidelity"], seed=1, verbose=0,
                 options={"occlusion": {"patch_size": 4, "stride": 4}})
    b = evaluate(model, images, ["random"], ["mu_fidelity"], seed=1, verbose=0)
    np.testing.assert_array_equal(a.results["random"]["mu_fidelity"].values,
                                  b.results["random"]["mu_fidelity"].values)
    assert capsys.readouterr().out == ""  # verbose=0 is quiet
    evaluate(model, images, ["random"], ["average_drop"], verbose=1)
    assert "2/2" in capsys.readouterr().out  # the progress bar: one explanation, one metric
    with pytest.raises(ValueError, match="Did you mean 'deletion'"):
        evaluate(model, images, ["random"], ["deletoin"], verbose=0)
    with pytest.raises(ValueError, match="gradcam"):
        evaluate(model, images, ["gradkam"], ["deletion"], verbose=0)
    with pytest.raises(ValueError, match="SanityCheck"):
        evaluate(model, images, ["random"], ["sanity_check"], verbose=0)
    with pytest.raises(ValueError, match=r"\(3, 4\)"):
        evaluate(model, images, ["random"], ["pointing_game"], boxes=np.zeros((2, 4)),
                 verbose=0)
    with pytest.raises(ValueError, match="not among the methods"):
        evaluate(model, images, ["random"], ["deletion"], options={"rise": {}}, verbose=0)
    with pytest.raises(TypeError, match="registry names"):
        evaluate(model, images, [3], ["deletion"], verbose=0)
