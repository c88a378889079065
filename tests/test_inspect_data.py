"""tfvis.inspect over data: boxes and localisation error, GrabCut segmentation, class mean
maps finding a watermark shortcut, and the figures."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfvis
from conftest import gap_dense_model, nested_model
from tfvis import inspect


def test_boxes_largest_component_threshold_and_all_components():
    m = np.zeros((1, 20, 30), np.float32)
    m[0, 2:5, 3:6] = 1.0  # small blob, holds the maximum
    m[0, 10:18, 12:25] = 0.5  # larger blob
    np.testing.assert_array_equal(inspect.boxes(m), [[12, 10, 25, 18]])
    every = inspect.boxes(m, all_components=True)[0]
    np.testing.assert_array_equal(every, [[12, 10, 25, 18], [3, 2, 6, 5]])
    np.testing.assert_array_equal(inspect.boxes(m, min_area=200), [[0, 0, 0, 0]])
    edge = np.zeros((1, 10, 10), np.float32)
    edge[0, 1, 1] = 1.0
    edge[0, 5:9, 5:9] = 0.2  # exactly 20% of the max: kept (>=), the larger component
    np.testing.assert_array_equal(inspect.boxes(edge, 0.2), [[5, 5, 9, 9]])
    np.testing.assert_array_equal(inspect.boxes(edge, 0.2001), [[1, 1, 2, 2]])


def test_localization_error_hand_computed():
    pred = np.array([[0, 0, 10, 10], [0, 0, 10, 10], [0, 0, 10, 10]])
    gt = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [0, 0, 10, 20]])
    # IoUs: 1, 50/150 = 1/3, 100/200 = 0.5 (counts: >= 0.5)
    assert inspect.localization_error(pred, gt) == pytest.approx(1 / 3)
    assert inspect.localization_error(pred, gt, top_k_correct=[True, True, False]) == \
        pytest.approx(2 / 3)
    several = [np.array([[50, 50, 60, 60], [0, 0, 10, 10]]), pred[1], pred[2]]
    assert inspect.localization_error(several, gt, iou=0.3) == 0.0


def test_grabcut_segmentation_of_a_salient_object():
    rng = np.random.default_rng(0)
    image = np.clip(rng.normal(0.3, 0.05, (64, 64, 3)), 0, 1).astype("float32")
    obj = np.zeros((64, 64), bool)
    obj[20:44, 16:40] = True
    image[obj] = (0.9, 0.7, 0.2)
    yy, xx = np.mgrid[:64, :64]
    saliency = np.exp(-((yy - 32) ** 2 + (xx - 28) ** 2) / (2 * 8.0 ** 2))
    mask = inspect.segment(image, saliency)
    iou = (mask & obj).sum() / (mask | obj).sum()
    assert iou > 0.7
    with pytest.raises(ValueError, match="bg_quantile < fg_quantile"):
        inspect.segment(image, saliency, fg_quantile=0.2)


def watermarked(n, rng):
    """Noise images; class 1 carries a red 6x6 watermark in the top-left corner."""
    x = rng.random((n, 24, 24, 3)).astype("float32") * 0.5
    y = np.arange(n) % 2
    x[y == 1, :6, :6] = (1.0, 0.0, 0.0)
    return x, y


def test_class_mean_maps_find_the_watermark_shortcut():
    rng = np.random.default_rng(0)
    x, y = watermarked(128, rng)
    keras.utils.set_random_seed(0)
    inp = keras.Input((24, 24, 3))
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(inp)
    h = keras.layers.Conv2D(8, 3, padding="same", activation="relu")(h)
    out = keras.layers.Dense(2, activation="softmax")(keras.layers.GlobalAveragePooling2D()(h))
    model = keras.Model(inp, out)
    model.compile(keras.optimizers.Adam(1e-2), "sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    model.fit(x, y, epochs=10, batch_size=16, verbose=0)
    test_x, test_y = watermarked(32, rng)
    assert model.evaluate(test_x, test_y, verbose=0)[1] == 1.0  # it learned the shortcut
    ds = tf.data.Dataset.from_tensor_slices((test_x, test_y)).batch(5)
    means = inspect.class_mean_maps(tfvis.GradCAM(model, verbose=0), ds, batch_size=8)
    assert means.counts.tolist() == [16, 16]
    assert means.mass(1, (0, 0, 8, 8)) > 0.5  # the mark is 6x6 of 24x24: 6% of the image
    same = inspect.class_mean_maps(tfvis.GradCAM(model, verbose=0), test_x, test_y)
    np.testing.assert_allclose(same.maps, means.maps, atol=1e-5)


def test_figures_draw(tmp_path):
    from matplotlib.figure import Figure

    import tfvis.plotting.inspect as figs  # the lead re-exports these from tfvis.plotting

    model = nested_model()
    x = np.random.default_rng(0).random((6, 16, 20, 3)).astype("float32") * 255
    acts = inspect.activations(model, x, "base/convA")
    top = inspect.top_activations(model, x, "base/convB", channels=[0, 1, 2], k=4)
    index = inspect.FeatureIndex(model, "base/convB", x)
    idx, dist = index.query(x[:2], k=3)
    stats = inspect.layer_stats(model, x)
    figures = [
        figs.feature_maps(acts, max_channels=6),
        figs.kernel_figure(inspect.kernels(model)),
        figs.top_patches(top, x),
        figs.neighbours(x[:2], x, idx, dist),
        stats.figure(),
        figs.top_classes(gap_dense_model(), x[0] / 255,
                                           "gradcam", k=3, class_names="abcd"),
        figs.class_means(inspect.class_mean_maps(
            tfvis.GradCAM(model, verbose=0), x, [0, 1, 2, 3, 0, 1])),
    ]
    for i, fig in enumerate(figures):
        assert isinstance(fig, Figure)
        fig.savefig(tmp_path / f"{i}.png")
    assert len(list(tmp_path.glob("*.png"))) == len(figures)


def test_report_folder(tmp_path):
    from tfvis.inspect.report import write_report

    model = nested_model()
    x = np.random.default_rng(0).random((6, 16, 20, 3)).astype("float32") * 255
    index = write_report(model, x, tmp_path / "out", channels=3, k=4)
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["index.html", "kernels.png", "layer_stats.json", "layer_stats.png",
                     "maps_base__convA.png", "maps_base__convB.png", "top_base__convA.png",
                     "top_base__convB.png"]
    assert "top_base__convB.png" in index.read_text()
    with pytest.raises(FileExistsError, match="overwrite"):
        write_report(model, x, tmp_path / "out")
    write_report(model, None, tmp_path / "kernels_only")
    assert sorted(p.name for p in (tmp_path / "kernels_only").iterdir()) == [
        "index.html", "kernels.png"]
