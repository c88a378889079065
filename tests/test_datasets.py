"""Built-in synthetic shapes: seeded, balanced, boxes where the objects are; pointing game."""

import numpy as np
import pytest

from tfvis.datasets import CLASSES, pointing_game, shapes


def test_shapes_are_seeded_and_balanced_and_leave_global_rng_alone():
    state = np.random.get_state()[1].copy()
    a, b, c = shapes(16, 32, seed=3), shapes(16, 32, seed=3), shapes(16, 32, seed=4)
    assert np.array_equal(np.random.get_state()[1], state)
    assert np.array_equal(a.images, b.images) and np.array_equal(a.boxes, b.boxes)
    assert not np.array_equal(a.images, c.images)
    assert np.bincount(a.labels, minlength=len(CLASSES)).tolist() == [4] * len(CLASSES)
    assert a.images.dtype == np.float32 and 0 <= a.images.min() and a.images.max() <= 1


def test_boxes_contain_the_object_on_non_square_images():
    d = shapes(12, (40, 72), seed=1)
    assert d.images.shape == (12, 40, 72, 3)
    for image, (y0, x0, y1, x1) in zip(d.images, d.boxes):
        assert 0 <= y0 < y1 <= 40 and 0 <= x0 < x1 <= 72
        bright = image.mean(-1) > 0.7  # objects are drawn in 0.65..1, background is darker
        inside = bright[y0:y1, x0:x1].sum()
        assert inside > 0.9 * bright.sum()


def test_pointing_game_on_hand_made_maps():
    maps = np.zeros((3, 10, 20))
    maps[0, 2, 3] = 1  # inside box 0
    maps[1, 9, 19] = 1  # far outside box 1
    maps[2, 6, 9] = 1  # one pixel beyond box 2, within tolerance
    boxes = np.array([[1, 1, 5, 5], [0, 0, 3, 3], [2, 2, 6, 8]])
    assert pointing_game(maps, boxes).tolist() == [True, False, True]
    assert pointing_game(maps, boxes, tolerance=0).tolist() == [True, False, False]


def test_shapes_rejects_bad_sizes():
    with pytest.raises(ValueError):
        shapes(0)
    with pytest.raises(ValueError):
        shapes(4, 10)
