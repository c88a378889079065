"""Plotting helpers: normalisation modes, colour maps, overlays (grey, non-square), figures."""

import numpy as np
import pytest
from matplotlib.figure import Figure

from tfvis.plotting import colorize, grid, normalize, overlay, resize, show_map, to_uint8_rgb


def test_normalize_modes_on_known_values():
    m = np.array([[-2.0, 0.0], [1.0, 2.0]])
    np.testing.assert_allclose(normalize(m), [[0, 0.5], [0.75, 1]])
    np.testing.assert_allclose(normalize(m, "positive"), [[0, 0], [0.5, 1]])
    np.testing.assert_allclose(normalize(m, "absolute"), [[1, 0], [0.5, 1]])
    np.testing.assert_allclose(normalize(m, "diverging"), [[-1, 0], [0.5, 1]])


def test_normalize_is_per_sample_and_constant_maps_are_zero_with_warning():
    maps = np.stack([np.zeros((3, 4)), np.arange(12.0).reshape(3, 4) * 100])
    with pytest.warns(RuntimeWarning, match="constant"):
        out = normalize(maps, warn_constant=True)
    assert np.all(out[0] == 0) and not np.any(np.isnan(out))
    assert out[1].min() == 0 and out[1].max() == 1


def test_normalize_percentile_clip_tames_a_hot_pixel():
    m = np.zeros((20, 20))
    m[15, 15] = 1000.0
    m[:10] = 1.0
    plain = normalize(m)
    clipped = normalize(m, clip_percentile=99)
    assert plain[0, 0] < 0.01 and clipped[0, 0] == pytest.approx(1.0)


def test_normalize_rejects_bad_input():
    with pytest.raises(ValueError, match="mode"):
        normalize(np.ones((2, 2)), "log")
    with pytest.raises(ValueError, match="NaN"):
        normalize(np.array([[np.nan, 1.0]]))


def test_resize_uses_height_width_order():
    a = np.zeros((4, 6), np.float32)
    a[0, 5] = 1.0  # top-right corner
    out = resize(a, 8, 12)
    assert out.shape == (8, 12)
    r, c = np.unravel_index(out.argmax(), out.shape)
    assert r < 2 and c > 9


def test_to_uint8_rgb_keeps_ranges():
    grey = np.linspace(0, 1, 12, dtype=np.float32).reshape(3, 4)
    rgb = to_uint8_rgb(grey)
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert rgb[-1, -1, 0] == 255 and rgb[0, 0, 0] == 0
    img255 = np.full((2, 2, 3), 200.0)
    assert to_uint8_rgb(img255)[0, 0, 0] == 200  # a [0, 255] float image is not stretched
    assert to_uint8_rgb(np.full((2, 2, 1), 7, np.uint8))[0, 0, 1] == 7
    with pytest.raises(ValueError):
        to_uint8_rgb(np.zeros((2, 2, 4)))


def test_colorize_is_rgb_not_bgr():
    hot = colorize(np.ones((2, 2)), "jet")[0, 0]
    cold = colorize(np.zeros((2, 2)), "jet")[0, 0]
    assert hot[0] > hot[2]  # jet's top is red
    assert cold[2] > cold[0]  # jet's bottom is blue
    with pytest.raises(ValueError, match="colormap"):
        colorize(np.ones((2, 2)), "nope")


def test_overlay_on_grey_non_square_image_puts_heat_in_place():
    image = np.zeros((30, 50), np.float32)
    heat = np.zeros((3, 5), np.float32)
    heat[2, 4] = 1.0  # bottom-right cell
    out = overlay(image, heat, alpha=1.0)
    assert out.shape == (30, 50, 3) and out.dtype == np.uint8
    red = out[..., 0].astype(int) - out[..., 2].astype(int)
    r, c = np.unravel_index(red.argmax(), red.shape)
    assert r >= 20 and c >= 40
    with pytest.raises(ValueError, match="alpha"):
        overlay(image, heat, alpha=2)


def test_figures_take_ax_and_return_figure():
    fig = Figure()
    ax = fig.add_subplot()
    assert show_map(np.zeros((8, 8, 3)), np.eye(8), ax=ax, title="t") is fig
    images = np.random.default_rng(0).random((2, 8, 12, 3))
    out = grid(images, {"a": np.random.default_rng(1).random((2, 8, 12))}, row_titles=["x", "y"])
    assert isinstance(out, Figure) and len(out.axes) == 4
    with pytest.raises(ValueError, match="maps"):
        grid(images, {"a": np.zeros((3, 8, 12))})


# --- one image or a batch, everywhere -------------------------------------------------------

def drawn(ax):
    """The pixels an Axes shows (its first image)."""
    return np.asarray(ax.images[0].get_array())


def test_grid_of_one_image_and_its_explanation(model, images):
    """The reported case: grid(x[0], {"Grad-CAM": GradCAM(m)(x[0])}) drew "1 maps for 16 images"."""
    import tfvis

    x = images[0]
    e = tfvis.GradCAM(model, verbose=0)(x)
    fig = grid(x, {"Grad-CAM": e})
    assert len(fig.axes) == 2
    np.testing.assert_array_equal(drawn(fig.axes[0]), to_uint8_rgb(x))
    np.testing.assert_array_equal(drawn(fig.axes[1]), overlay(x, e.maps[0]))
    assert fig.axes[1].get_title() == "Grad-CAM"
    # the same with a bare (H, W) map, a batch of one, and a grey single image
    np.testing.assert_array_equal(drawn(grid(x, {"m": e.maps[0]}).axes[1]), overlay(x, e.maps[0]))
    np.testing.assert_array_equal(drawn(grid(x[None], {"m": e}).axes[1]), overlay(x, e.maps[0]))
    grey = grid(x[..., 0], {"m": e.maps[0]})
    np.testing.assert_array_equal(drawn(grey.axes[0]), to_uint8_rgb(x[..., 0]))


def test_grid_of_a_grey_batch_puts_each_map_on_its_image():
    rng = np.random.default_rng(4)
    grey = rng.random((3, 6, 7)).astype(np.float32)  # (N, H, W): three grey images
    maps = rng.random((3, 6, 7)).astype(np.float32)
    fig = grid(grey, {"a": maps})
    assert len(fig.axes) == 6
    for i in range(3):
        np.testing.assert_array_equal(drawn(fig.axes[2 * i]), to_uint8_rgb(grey[i]))
        np.testing.assert_array_equal(drawn(fig.axes[2 * i + 1]), overlay(grey[i], maps[i]))


def test_grid_errors_name_the_shapes():
    with pytest.raises(ValueError, match=r"'a' has 2 maps \(shape \(2, 8, 8\)\) for 1 images "
                                         r"\(shape \(8, 8, 3\)\)"):
        grid(np.zeros((8, 8, 3)), {"a": np.zeros((2, 8, 8))})
    with pytest.raises(ValueError, match=r"maps of 'a' must be .* got shape \(8,\)"):
        grid(np.zeros((8, 8, 3)), {"a": np.zeros(8)})
    with pytest.raises(ValueError, match=r"got shape \(2, 8, 8, 3, 1\)"):
        grid(np.zeros((2, 8, 8, 3, 1)), {"a": np.zeros((2, 8, 8))})
    with pytest.raises(ValueError, match="row_titles"):
        grid(np.zeros((2, 8, 8, 3)), {"a": np.zeros((2, 8, 8))}, row_titles=["only one"])


def test_show_map_takes_one_image_or_a_batch_of_one():
    image = np.random.default_rng(5).random((8, 6, 3))
    heat = np.random.default_rng(6).random((4, 3))
    expected = overlay(image, heat)
    np.testing.assert_array_equal(drawn(show_map(image, heat).axes[0]), expected)
    np.testing.assert_array_equal(drawn(show_map(image[None], heat[None]).axes[0]), expected)
    with pytest.raises(ValueError, match=r"2 image\(s\) \(shape \(2, 8, 6, 3\)\).*use "
                                         r"tfvis.plotting.grid"):
        show_map(np.stack([image, image]), np.stack([heat, heat]))


def test_overlay_single_and_batches():
    rng = np.random.default_rng(7)
    images = rng.random((3, 10, 12, 3)).astype(np.float32)
    maps = rng.random((3, 5, 6)).astype(np.float32)
    one = overlay(images[0], maps[0], alpha=0.3)
    assert one.shape == (10, 12, 3)
    # by hand: (1 - alpha) * image + alpha * colour, rounded
    colour = colorize(resize(maps[0], 10, 12)).astype(np.float32)
    np.testing.assert_array_equal(
        one, np.round(0.7 * to_uint8_rgb(images[0]) + 0.3 * colour).astype(np.uint8))
    batch = overlay(images, maps, alpha=0.3)
    assert batch.shape == (3, 10, 12, 3)
    for i in range(3):
        np.testing.assert_array_equal(batch[i], overlay(images[i], maps[i], alpha=0.3))
    np.testing.assert_array_equal(overlay(images[0], maps[:1], 0.3), one[None])  # batch of one
    grey = overlay(images[..., 0], maps)  # (N, H, W) grey batch
    np.testing.assert_array_equal(grey[2], overlay(images[2, ..., 0], maps[2]))
    with pytest.raises(ValueError, match=r"1 image\(s\) \(shape \(10, 12, 3\)\) and 3 map\(s\) "
                                         r"\(shape \(3, 5, 6\)\)"):
        overlay(images[0], maps)


def test_batched_helpers_equal_their_single_image_results():
    rng = np.random.default_rng(8)
    images = rng.random((2, 4, 5, 3)).astype(np.float32) * [[[[1, 100, 300]]]]
    rgb = to_uint8_rgb(images)
    assert rgb.shape == (2, 4, 5, 3)
    for i in range(2):
        np.testing.assert_array_equal(rgb[i], to_uint8_rgb(images[i]))
    maps = rng.random((2, 4, 5))
    coloured = colorize(maps)
    assert coloured.shape == (2, 4, 5, 3)
    np.testing.assert_array_equal(coloured[1], colorize(maps[1]))
    big = resize(images, 8, 10)
    assert big.shape == (2, 8, 10, 3)
    np.testing.assert_array_equal(big[0], resize(images[0], 8, 10))
    with pytest.raises(ValueError, match=r"got shape \(2, 4, 5, 3, 1\)"):
        resize(images[..., None], 8, 10)
    with pytest.raises(ValueError, match=r"got shape \(2, 2, 4, 5\)"):
        colorize(np.zeros((2, 2, 4, 5)))
    with pytest.raises(ValueError, match=r"got shape \(2, 4, 5, 4\)"):
        to_uint8_rgb(np.zeros((2, 4, 5, 4)))


def test_image_and_map_batches_resolve_three_axis_arrays():
    from tfvis.plotting import image_batch, map_batch

    assert image_batch(np.zeros((6, 7, 3))).shape == (1, 6, 7, 3)   # one RGB image
    assert image_batch(np.zeros((6, 7, 1))).shape == (1, 6, 7, 1)   # one grey image
    assert image_batch(np.zeros((6, 7))).shape == (1, 6, 7)         # one grey image
    assert image_batch(np.zeros((5, 6, 7))).shape == (5, 6, 7)      # five grey images
    assert image_batch(np.zeros((3, 7, 3)), count=3).shape == (3, 7, 3)  # three grey 7x3
    assert image_batch(np.zeros((3, 7, 3)), count=1).shape == (1, 3, 7, 3)
    assert map_batch(np.zeros((6, 7))).shape == (1, 6, 7)
    assert map_batch(np.zeros((2, 6, 7, 1))).shape == (2, 6, 7)
    with pytest.raises(ValueError, match=r"got shape \(6,\)"):
        image_batch(np.zeros(6))


def test_tile_layout_by_hand():
    from tfvis.plotting import tile

    cells = np.stack([np.full((2, 3, 3), 10 * (k + 1), np.uint8) for k in range(3)])
    out = tile(cells, columns=2, gap=1)
    assert out.shape == (2 * 2 + 1, 2 * 3 + 1, 3)
    assert out[0, 0, 0] == 10 and out[0, 4, 0] == 20 and out[3, 0, 0] == 30
    assert out[2, 0, 0] == 255 and out[0, 3, 0] == 255 and out[4, 6, 0] == 255  # gaps, empty
    np.testing.assert_array_equal(tile(cells[0]), cells[0])  # one image is one tile
    grey = tile(np.ones((4, 2, 2), np.float32))  # float grey batch -> via to_uint8_rgb
    assert grey.shape == (5, 5, 3) and grey[0, 0, 0] == 255 and grey.dtype == np.uint8
    with pytest.raises(ValueError, match="at least one"):
        tile(np.zeros((0, 2, 2, 3), np.uint8))
