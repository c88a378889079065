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
