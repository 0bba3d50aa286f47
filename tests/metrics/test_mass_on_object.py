"""Mass on object: hand-computed values, degenerate maps, the app's formula, Quantus's RMA."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import quantus
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_contrast.metrics import MassOnObject
from captum_contrast.normalization import normalize

MAP = np.array([[[[0.0, 1.0], [1.0, 2.0]]]])  # range-normalises to [[0, .5], [.5, 1]]


def reference_mass_on_object(maps: np.ndarray, object_masks: Tensor) -> np.ndarray:
    """The app's function that :class:`MassOnObject` replaces, copied verbatim."""
    upsampled = F.interpolate(
        torch.as_tensor(maps, dtype=torch.float32),
        size=tuple(object_masks.shape[-2:]),
        mode="bilinear",
        align_corners=False,
    )
    saliency = normalize(upsampled, "range").flatten(1).double()
    inside = (saliency * object_masks.reshape(len(maps), -1).double()).sum(dim=1)
    total = saliency.sum(dim=1)
    return torch.where(total > 0, 100 * inside / total.clamp(min=1e-12), np.nan).numpy()


def linear_model(channels: int, size: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(channels * size * size, 3)).eval()


def score(maps: np.ndarray, masks: np.ndarray, channels: int = 1, **kwargs) -> list[float]:
    size = masks.shape[-1]
    x = np.random.default_rng(0).random((len(maps), channels, size, size), dtype=np.float32)
    y = np.zeros(len(maps), dtype=np.int64)
    return MassOnObject()(linear_model(channels, size), x, y, a_batch=maps, s_batch=masks, **kwargs)


def test_hand_computed_values_on_a_2x2_map() -> None:
    top_row = np.array([[[[1, 1], [0, 0]]]])  # 0/1 integers
    bottom_row = np.array([[[False, False], [True, True]]])  # bool, (B, H, W)
    # Mass 0 + .5 + .5 + 1 = 2: the top row holds .5, the bottom row 1.5.
    assert score(MAP, top_row) == pytest.approx([25.0])
    assert score(MAP, bottom_row) == pytest.approx([75.0])
    assert score(MAP, np.ones((1, 1, 2, 2))) == pytest.approx([100.0])
    # An empty object holds none of the mass.
    assert score(MAP, np.zeros((1, 1, 2, 2))) == [0.0]
    # Any affine rescaling of the map gives the same score.
    assert score(5 + 3 * MAP, top_row) == pytest.approx([25.0])


def test_low_resolution_map_is_upsampled_bilinearly() -> None:
    masks = np.zeros((1, 1, 4, 4))
    masks[0, 0, :2] = 1
    # align_corners=False samples the 2x2 map at 0, .25, .75, 1 along each axis.
    positions = np.array([0.0, 0.25, 0.75, 1.0])
    upsampled = np.add.outer(positions, positions)  # MAP is i + j at its corners
    saliency = upsampled / upsampled.max()
    expected = 100 * saliency[:2].sum() / saliency.sum()
    assert score(MAP, masks) == pytest.approx([expected])


def test_constant_and_non_finite_maps_score_nan_alone() -> None:
    maps = np.concatenate([np.zeros((1, 1, 2, 2)), np.full((1, 1, 2, 2), 3.0), MAP, MAP, MAP])
    maps[3, 0, 0, 0] = np.nan
    maps[4, 0, 1, 1] = np.inf
    masks = np.zeros((5, 1, 2, 2))
    masks[:, 0, 0] = 1
    scores = score(maps, masks)
    assert all(math.isnan(s) for s in scores[:2] + scores[3:])
    assert scores[2] == pytest.approx(25.0)


def test_equals_the_apps_function_on_random_data() -> None:
    rng = np.random.default_rng(3)
    maps = rng.normal(size=(10, 1, 7, 7)).astype(np.float32)
    maps[4] = 0.0  # a constant map: NaN for both
    masks = rng.random((10, 1, 14, 14)) < 0.3
    scores = score(maps, masks, channels=3, batch_size=4)  # three Quantus batches
    expected = reference_mass_on_object(maps, torch.from_numpy(masks[:, 0]))
    np.testing.assert_array_equal(np.array(scores), expected)
    assert math.isnan(scores[4])
    # Maps already at input resolution, float64, and masks as a (B, H, W) bool tensor.
    fine = rng.random((10, 1, 14, 14))
    scores = score(fine, torch.from_numpy(masks[:, 0]), channels=3)
    np.testing.assert_array_equal(
        np.array(scores), reference_mass_on_object(fine, torch.from_numpy(masks[:, 0]))
    )


def test_agrees_with_quantus_relevance_mass_accuracy_up_to_percent() -> None:
    """Quantus's RelevanceMassAccuracy is ``sum(a * s) / sum(a)`` on the map as given.

    It differs from MassOnObject in three ways, none of which shows on maps at input
    resolution with per-example minimum 0 and maximum 1: it does not range-normalise
    (its default ``normalise`` divides by the maximum absolute value, 1 here), it returns
    a fraction rather than a percentage, and it gives NaN (with a warning) for an empty
    object mask where MassOnObject gives 0. It also requires maps at input resolution.
    """
    rng = np.random.default_rng(0)
    x = rng.random((6, 3, 6, 6), dtype=np.float32)
    y = np.zeros(6, dtype=np.int64)
    flat = rng.random((6, 36))
    maps = ((flat - flat.min(1, keepdims=True)) / np.ptp(flat, axis=1)[:, None]).reshape(6, 1, 6, 6)
    masks = (rng.random((6, 1, 6, 6)) < 0.4).astype(np.float32)
    masks[5] = 0.0  # an empty object
    model = linear_model(3, 6)
    ours = MassOnObject()(model, x, y, a_batch=maps, s_batch=masks)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = quantus.RelevanceMassAccuracy(disable_warnings=True)(
            model, x, y, a_batch=maps, s_batch=masks
        )
    np.testing.assert_allclose(ours[:5], 100 * np.asarray(theirs[:5]), rtol=1e-6)
    assert ours[5] == 0.0 and math.isnan(theirs[5])


def test_object_masks_are_required_and_checked() -> None:
    model = linear_model(1, 2)
    x = np.zeros((1, 1, 2, 2), dtype=np.float32)
    y = np.array([0])
    metric = MassOnObject()
    with pytest.raises(ValueError, match="s_batch.*got None"):
        metric(model, x, y, a_batch=MAP)
    with pytest.raises(ValueError, match="s_batch.*got shape \\(1, 2, 2, 2\\)"):
        metric(model, x, y, a_batch=MAP, s_batch=np.ones((1, 2, 2, 2)))
    with pytest.raises(ValueError, match="s_batch.*got shape \\(1, 1, 3, 3\\)"):
        metric(model, x, y, a_batch=MAP, s_batch=np.ones((1, 1, 3, 3)))
    with pytest.raises(ValueError, match="s_batch.*got shape \\(2, 2, 2\\)"):
        metric(model, x, y, a_batch=MAP, s_batch=np.ones((2, 2, 2)))
    with pytest.raises(ValueError, match="s_batch.*binary"):
        metric(model, x, y, a_batch=MAP, s_batch=np.full((1, 1, 2, 2), 0.5))


def test_channel_last_inputs_take_channel_free_masks() -> None:
    masks = np.zeros((1, 2, 2), dtype=bool)
    masks[0, 0] = True
    x = np.zeros((1, 2, 2, 3), dtype=np.float32)
    scores = MassOnObject()(
        linear_model(3, 2), x, np.array([0]), a_batch=MAP, s_batch=masks, channel_first=False
    )
    assert scores == pytest.approx([25.0])
