"""Pointing game (Zhang et al. 2016), its energy variant, CAM boxes and localisation error:
hand counts on synthetic maps, masks and boxes."""

import numpy as np
import pytest

from tfvis.datasets import pointing_game as demo_pointing_game
from tfvis.explanation import Explanation
from tfvis.metrics.localization import LocalizationError, boxes, iou
from tfvis.metrics.pointing import PointingGame, boxes_to_masks

H = W = 40


def square_masks(n):
    mask = np.zeros((n, H, W), bool)
    mask[:, 10:20, 10:20] = True  # rows 10..19, cols 10..19; as a box (10, 10, 20, 20)
    return mask


def peaked_maps():
    """One map per case; the comment gives the Euclidean distance of the tested maximum."""
    peaks = [
        [(15, 15)],            # 0: inside                                   -> 0
        [(15, 25)],            # 1: 6 px right of the mask                   -> 6
        [(35, 35)],            # 2: far off the corner                       -> sqrt(2) * 16
        [(31, 31)],            # 3: off the corner: Chebyshev 12 but Euclidean sqrt(288) > 15
        [(2, 2), (15, 15)],    # 4: tie; the first in raster order is outside -> sqrt(128)
        [(15, 34)],            # 5: exactly 15 px away: inclusive           -> 15
    ]
    maps = np.random.default_rng(0).uniform(0, 0.5, (len(peaks), H, W))
    for i, points in enumerate(peaks):
        for r, c in points:
            maps[i, r, c] = 1.0
    return maps


def test_pointing_game_tolerance_0_and_15_against_hand_counts():
    maps, masks = peaked_maps(), square_masks(6)
    strict = PointingGame(tolerance=0)(maps, masks)
    loose = PointingGame(tolerance=15)(maps, masks)
    assert strict.name == "pointing_game"
    assert strict.values.tolist() == [1, 0, 0, 0, 0, 0]
    assert loose.values.tolist() == [1, 1, 0, 0, 1, 1]
    assert loose.mean == pytest.approx(4 / 6)
    assert loose.extras["points"][4].tolist() == [2, 2]  # the first maximum in raster order
    np.testing.assert_allclose(loose.extras["distances"],
                               [0, 6, np.hypot(16, 16), np.hypot(12, 12), np.hypot(8, 8), 15])


def test_boxes_and_explanations_are_accepted_and_agree_with_masks():
    maps, masks = peaked_maps(), square_masks(6)
    box = np.tile([10, 10, 20, 20], (6, 1))
    assert np.array_equal(boxes_to_masks(box, maps.shape), masks)
    explanation = Explanation(maps.astype(np.float32), maps, np.zeros(6, int), np.zeros(6),
                              "test")
    for tolerance in (0, 15):
        game = PointingGame(tolerance=tolerance)
        assert np.array_equal(game(explanation, box).values, game(maps, masks).values)


def test_boxes_follow_the_xy_convention_with_exclusive_ends():
    m = np.zeros((1, 10, 20))
    m[0, 2, 7] = 1  # row 2, column 7
    assert PointingGame(0)(m, [[7, 2, 8, 3]]).values.tolist() == [1]   # x0=7, y0=2
    assert PointingGame(0)(m, [[2, 7, 3, 8]]).values.tolist() == [0]   # (y, x) order misses
    assert PointingGame(0)(m, [[0, 0, 7, 2]]).values.tolist() == [0]   # x1=7, y1=2 exclusive


def test_energy_equals_a_hand_computation_and_lies_in_0_1():
    m = np.zeros((1, H, W))
    m[0, 12, 12] = 1.0   # inside
    m[0, 30, 30] = 3.0   # outside
    m[0, 35, 5] = -5.0   # negative: no energy
    energy = PointingGame(energy=True)(m, square_masks(1))
    assert energy.name == "energy_pointing_game"
    assert energy.values.tolist() == [0.25]

    rng = np.random.default_rng(1)
    maps = rng.normal(size=(8, H, W))
    masks = rng.random((8, H, W)) < 0.3
    values = PointingGame(energy=True)(maps, masks).values
    positive = np.maximum(maps, 0)
    expected = (positive * masks).sum(axis=(1, 2)) / positive.sum(axis=(1, 2))
    np.testing.assert_allclose(values, expected)
    assert np.all((values >= 0) & (values <= 1))
    assert PointingGame(energy=True)(np.zeros((1, H, W)), square_masks(1)).values.tolist() == [0]


def test_inputs_are_not_mutated_and_errors_name_the_shapes():
    maps, masks = peaked_maps(), square_masks(6)
    maps_before, masks_before = maps.copy(), masks.copy()
    PointingGame()(maps, masks)
    PointingGame(energy=True)(maps, masks)
    assert np.array_equal(maps, maps_before) and np.array_equal(masks, masks_before)
    with pytest.raises(ValueError, match=r"\(6, 40, 40\).*\(6, 30, 30\)"):
        PointingGame()(maps, np.ones((6, 30, 30), bool))
    with pytest.raises(ValueError, match=r"\(40, 40\).*map\[None\]"):
        PointingGame()(maps[0], masks)
    with pytest.raises(ValueError, match=r"\(6, 4\).*\(5, 4\)"):
        PointingGame()(maps, np.zeros((5, 4)))
    empty = masks.copy()
    empty[3] = False
    with pytest.raises(ValueError, match=r"images \[3\] are empty"):
        PointingGame()(maps, empty)
    with pytest.raises(ValueError, match="tolerance"):
        PointingGame(tolerance=-1)


def test_the_demo_pointing_game_is_the_metric():
    """`tfvis.datasets.pointing_game` keeps its (y0, x0, y1, x1) boxes grown by a square
    tolerance, computed through the metric: equal to PointingGame on the converted boxes."""
    rng = np.random.default_rng(2)
    maps = rng.random((32, 24, 24))
    y0, x0 = rng.integers(0, 16, (2, 32))
    yx = np.stack([y0, x0, y0 + rng.integers(1, 8, 32), x0 + rng.integers(1, 8, 32)], axis=1)
    for tol in (0, 2):
        xy = np.stack([yx[:, 1] - tol, yx[:, 0] - tol, yx[:, 3] + tol, yx[:, 2] + tol], axis=1)
        expected = PointingGame(tolerance=0)(maps, xy).values.astype(bool)
        got = demo_pointing_game(maps, yx, tolerance=tol)
        assert got.dtype == bool and np.array_equal(got, expected)
    assert 0 < demo_pointing_game(maps, yx).sum() < 32  # the case is not trivial


# --------------------------------------------------------------------------- boxes and CAM error
def two_blobs():
    m = np.zeros((30, 40))
    m[2:6, 3:9] = 1.0      # small blob (24 px) holding the maximum
    m[15:25, 20:30] = 0.5  # large blob (100 px): box (20, 15, 30, 25)
    return m


def test_boxes_give_the_larger_blob():
    m = two_blobs()
    assert boxes(m[None]).tolist() == [[20, 15, 30, 25]]
    # above 50% of the max only the small blob remains
    assert boxes(m[None], threshold=0.6).tolist() == [[3, 2, 9, 6]]


def test_boxes_threshold_is_inclusive_at_exactly_20_percent_and_8_connected():
    m = two_blobs()
    m[25, 20] = 0.2          # exactly 0.2 * max, touching the large blob from below
    assert boxes(m[None], threshold=0.2).tolist() == [[20, 15, 30, 26]]
    assert boxes(m[None], threshold=0.2 + 1e-9).tolist() == [[20, 15, 30, 25]]
    m[25, 30] = 0.3          # touches (24, 29) only diagonally: joins with 8-connectivity
    assert boxes(m[None]).tolist() == [[20, 15, 31, 26]]


def test_boxes_of_maps_without_positive_evidence_are_empty():
    maps = np.stack([np.zeros((8, 8)), -np.ones((8, 8)), np.ones((8, 8))])
    assert boxes(maps).tolist() == [[0, 0, 0, 0], [0, 0, 0, 0], [0, 0, 8, 8]]


def test_iou_against_hand_values():
    assert iou([0, 0, 10, 10], [5, 5, 15, 15]) == pytest.approx(25 / 175)
    assert iou([0, 0, 10, 10], [0, 0, 10, 10]) == 1.0
    assert iou([0, 0, 10, 10], [10, 0, 20, 10]) == 0.0  # touching, ends exclusive
    assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0


def test_localization_error_against_hand_values():
    maps = np.stack([two_blobs()] * 3)  # predicted box (20, 15, 30, 25), area 100
    gt = np.array([[20, 15, 30, 20],    # IoU 50/100 = 0.5: a hit (>= iou)
                   [20, 15, 30, 19],    # IoU 0.4: a miss
                   [0, 0, 40, 30]])     # IoU 100/1200: a miss
    result = LocalizationError()(maps, gt)
    assert result.name == "localization_error"
    assert result.values.tolist() == [0.0, 1.0, 1.0]
    np.testing.assert_allclose(result.extras["iou"], [0.5, 0.4, 100 / 1200])
    assert result.extras["boxes"].tolist() == [[20, 15, 30, 25]] * 3
    assert LocalizationError(iou=0.4)(maps, gt).values.tolist() == [0.0, 0.0, 1.0]

    # several objects per image: the best box counts
    several = [gt[1:3], gt[:1], gt[1:2]]
    assert LocalizationError()(maps, several).values.tolist() == [1.0, 0.0, 1.0]

    # ILSVRC: the class must be right too (top-1, or top-k rows)
    classed = LocalizationError()(maps, gt, predictions=[3, 3, 3], labels=[3, 1, 3])
    assert classed.values.tolist() == [0.0, 1.0, 1.0]
    wrong = LocalizationError()(maps, gt, predictions=[1, 3, 3], labels=[3, 3, 3])
    assert wrong.values.tolist() == [1.0, 1.0, 1.0]
    top2 = LocalizationError()(maps, gt, predictions=[[1, 3]] * 3, labels=[3, 3, 3])
    assert top2.values.tolist() == [0.0, 1.0, 1.0]
    assert top2.extras["correct"].tolist() == [True] * 3


def test_localization_errors_name_the_problem():
    maps = np.stack([two_blobs()] * 3)
    with pytest.raises(ValueError, match=r"\(3, 4\).*\(2, 4\)"):
        LocalizationError()(maps, np.zeros((2, 4)))
    with pytest.raises(ValueError, match="both predictions and labels"):
        LocalizationError()(maps, np.zeros((3, 4)), predictions=[1, 2, 3])
    with pytest.raises(ValueError, match="threshold"):
        boxes(maps, threshold=1.5)
