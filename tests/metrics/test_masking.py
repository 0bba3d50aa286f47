"""Average Drop / Increase / Gain: SPEC 5 vectors through the metric classes, masking, Fake-CAM."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast.metrics import (
    AverageDrop,
    AverageGain,
    AverageIncrease,
    drop_scores,
    fake_cam,
    gain_scores,
    increase_scores,
)

P = np.array([0.6, 0.2, 0.9, 0.5])
P_MASKED = np.array([0.3, 0.5, 0.9, 0.55])
FAKE_2X2 = np.array([[[[0.0, 1.0], [1.0, 1.0]]]])  # range-normalises to itself: keeps 3 of 4


class LookupModel(nn.Module):
    """Logits looked up by the input's pixel sum, so a test sets every probability."""

    def __init__(self, table: dict[float, list[float]]) -> None:
        super().__init__()
        self.register_buffer("keys", torch.tensor(list(table), dtype=torch.float64))
        self.register_buffer("table", torch.tensor(list(table.values()), dtype=torch.float64))
        self.calls = 0
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.seen.append(x.detach().clone())
        sums = x.double().flatten(1).sum(dim=1)
        match = (sums[:, None] - self.keys[None]).abs() < 1e-5
        assert bool((match.sum(dim=1) == 1).all()), f"no table entry for input sums {sums}"
        return self.table[match.int().argmax(dim=1)].float()


def softmax_logits(p: float) -> list[float]:
    # Two classes: softmax((log p, log(1 - p)))_0 = p.
    return [math.log(p), math.log(1 - p)]


def spec_case() -> tuple[LookupModel, np.ndarray, np.ndarray, np.ndarray]:
    """Four constant 2x2 images; the map keeps 3 of 4 pixels, so x has sum 4v and s*x 3v."""
    values = [1.0, 10.0, 100.0, 1000.0]
    table = {}
    for v, p, o in zip(values, P, P_MASKED, strict=True):
        table[4 * v] = softmax_logits(p)
        table[3 * v] = softmax_logits(o)
    x = np.stack([np.full((1, 2, 2), v, dtype=np.float32) for v in values])
    maps = np.repeat(FAKE_2X2, 4, axis=0)
    return LookupModel(table).eval(), x, np.zeros(4, dtype=np.int64), maps


def small_cnn(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, num_classes),
    ).eval()


def test_score_functions_match_spec_vectors() -> None:
    assert drop_scores(P, P_MASKED).mean() == pytest.approx(12.5)
    assert gain_scores(P, P_MASKED).mean() == pytest.approx(11.875, abs=1e-6)
    assert increase_scores(P, P_MASKED).mean() == pytest.approx(50.0)
    # AI is strict: o == p (the third example) is no increase.
    assert increase_scores(P, P_MASKED).tolist() == [0.0, 100.0, 0.0, 100.0]


@pytest.mark.parametrize(
    ("metric", "expected", "mean"),
    [
        (AverageDrop(), [50.0, 0.0, 0.0, 0.0], 12.5),
        (AverageGain(), [0.0, 37.5, 0.0, 10.0], 11.875),
        (AverageIncrease(), [0.0, 100.0, 0.0, 100.0], 50.0),
    ],
)
def test_spec_vectors_through_metric_classes(metric, expected, mean) -> None:
    model, x, y, maps = spec_case()
    scores = metric(model, x, y, a_batch=maps, channel_first=True)
    assert scores == pytest.approx(expected, abs=1e-4)
    assert np.mean(scores) == pytest.approx(mean, abs=1e-4)
    # One batched forward for x and one for s * x: no per-example model calls.
    assert model.calls == 2


def test_aggregate_and_batches_keep_one_forward_per_variant() -> None:
    model, x, y, maps = spec_case()
    metric = AverageDrop(return_aggregate=True)
    assert metric(model, x, y, a_batch=maps, channel_first=True, batch_size=2) == pytest.approx(
        [12.5], abs=1e-4
    )
    assert model.calls == 4  # two Quantus batches, two forwards each


def test_low_resolution_map_is_upsampled_bilinearly_without_corner_alignment() -> None:
    model = LookupModel({16.0: [0.0, 0.0], 12.0: [0.0, 0.0]}).eval()
    x = np.ones((1, 1, 4, 4), dtype=np.float32)
    AverageDrop()(model, x, np.array([0]), a_batch=FAKE_2X2, channel_first=True)
    # align_corners=False samples the 2x2 map at 0, .25, .75, 1 along each axis.
    positions = np.array([0.0, 0.25, 0.75, 1.0])
    expected = 1 - np.outer(1 - positions, 1 - positions)
    np.testing.assert_allclose(model.seen[1][0, 0].numpy(), expected, atol=1e-6)


def test_map_is_range_normalised_and_broadcast_over_channels() -> None:
    model = LookupModel({3 * 4 * 2.0: [0.0, 0.0], 3 * 3 * 2.0: [0.0, 0.0]}).eval()
    x = np.full((1, 3, 2, 2), 2.0, dtype=np.float32)
    maps = 5 + 10 * FAKE_2X2  # any affine rescaling gives the same mask
    AverageDrop()(model, x, np.array([0]), a_batch=maps, channel_first=True)
    for channel in range(3):
        np.testing.assert_allclose(model.seen[1][0, channel].numpy(), 2 * FAKE_2X2[0, 0])


def test_constant_maps_mask_everything_and_nan_maps_score_nan() -> None:
    # Quantus would reject this batch (all zero); here it means "hide the whole image".
    model = LookupModel({4.0: softmax_logits(0.8), 0.0: softmax_logits(0.2)}).eval()
    x = np.ones((2, 1, 2, 2), dtype=np.float32)
    scores = AverageDrop()(model, x, np.array([0, 0]), a_batch=np.zeros((2, 1, 2, 2)))
    assert scores == pytest.approx([75.0, 75.0], abs=1e-4)
    maps = np.zeros((2, 1, 2, 2))
    maps[1, 0, 0, 0] = np.nan
    scores = AverageDrop()(model, x, np.array([0, 0]), a_batch=maps, channel_first=True)
    assert scores[0] == pytest.approx(75.0, abs=1e-4) and math.isnan(scores[1])


def test_fake_cam_scores_near_zero_drop_and_gain_on_a_real_model() -> None:
    model = small_cnn()
    x = np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    maps = fake_cam(model, x, y)
    drop = AverageDrop(return_aggregate=True)(model, x, y, a_batch=maps)[0]
    gain = AverageGain(return_aggregate=True)(model, x, y, a_batch=maps)[0]
    assert 0 <= drop < 0.5 and 0 <= gain < 0.5
    # The complementary map (only the top-left pixel kept) must hurt far more.
    inverse = AverageDrop(return_aggregate=True)(model, x, y, a_batch=1 - maps)[0]
    assert inverse > 10 * max(drop, 1e-3)


def test_explain_func_path_equals_precomputed_maps_and_channel_last_inputs() -> None:
    model = small_cnn()
    x = np.random.default_rng(1).random((4, 3, 16, 16), dtype=np.float32)
    y = np.array([0, 1, 2, 3])
    maps = np.random.default_rng(2).random((4, 1, 8, 8))
    given = AverageGain()(model, x, y, a_batch=maps)
    explained = AverageGain()(model, x, y, explain_func=lambda model, inputs, targets, **kw: maps)
    channel_last = AverageGain()(
        model, x.transpose(0, 2, 3, 1), y, a_batch=maps, channel_first=False
    )
    np.testing.assert_allclose(given, explained)
    np.testing.assert_allclose(given, channel_last, rtol=1e-6)


def test_bad_arguments_raise_errors_naming_them() -> None:
    model, x, y, maps = spec_case()
    with pytest.raises(ValueError, match="`a_batch`.*must hold maps, one per example"):
        AverageDrop()(model, x, y, a_batch=np.ones((4, 2, 2, 2)), channel_first=True)
    with pytest.raises(ValueError, match="h <= 2"):
        AverageDrop()(model, x, y, a_batch=np.ones((4, 1, 3, 3)), channel_first=True)
    with pytest.raises(ValueError, match="y_batch"):
        AverageDrop()(model, x, np.zeros(3, dtype=int), a_batch=maps, channel_first=True)
    with pytest.raises(ValueError, match="outside"):
        AverageDrop()(model, x, np.full(4, 2), a_batch=maps, channel_first=True)
    with pytest.raises(ValueError, match="a_batch` or `explain_func"):
        AverageDrop()(model, x, y, channel_first=True)
    with pytest.raises(ValueError, match="mask_normalization"):
        AverageDrop(mask_normalization="minmax")
    with pytest.warns(UserWarning, match="ignores softmax=True"):
        AverageDrop()(model, x, y, a_batch=maps, channel_first=True, softmax=True)
