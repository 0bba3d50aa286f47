"""Class sensitivity (CASE): top-k agreement, which maps are re-explained, Wilcoxon."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from captum_contrast.metrics import ClassSensitivity, top_k_agreement, wilcoxon_below

SIZE = 20  # 400 pixels: the top 5% are 20 pixels, one row


def bias_model() -> nn.Module:
    """Ignores its input: softmax ranks class 0 first and class 2 second for every image."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(SIZE * SIZE, 4)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([3.0, 1.0, 2.0, 0.0]))
    return model


def row_map(rows: np.ndarray) -> np.ndarray:
    """One map per entry of ``rows``: ones on that row, zeros elsewhere."""
    maps = np.zeros((len(rows), 1, SIZE, SIZE), dtype=np.float32)
    maps[np.arange(len(rows)), 0, rows] = 1.0
    return maps


class RowExplainer:
    """Explain function whose map for class c lights row ``c + offset``; records its calls."""

    def __init__(self, offset: int = 5) -> None:
        self.offset = offset
        self.calls: list[list[int]] = []

    def __call__(self, model, inputs, targets, **kwargs) -> np.ndarray:
        self.calls.append(np.asarray(targets).tolist())
        return row_map(np.asarray(targets) + self.offset)


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).random((n, 1, SIZE, SIZE), dtype=np.float32)


def test_identical_maps_agree_fully_and_disjoint_maps_not_at_all() -> None:
    same = np.random.default_rng(1).random((3, 1, SIZE, SIZE))
    assert top_k_agreement(same, same).tolist() == [100.0] * 3
    assert top_k_agreement(row_map(np.array([0, 1])), row_map(np.array([2, 3]))).tolist() == [0, 0]
    half = np.zeros((1, 1, SIZE, SIZE))
    half[0, 0, 0, :10] = half[0, 0, 1, :10] = 1.0
    assert top_k_agreement(row_map(np.array([0])), half).tolist() == [50.0]


def test_agreement_clips_negatives_reads_nan_as_zero_and_flags_empty_maps() -> None:
    first = row_map(np.array([0, 0]))
    second = -5 * np.ones((2, 1, SIZE, SIZE))
    second[0, 0, 0] = np.nan  # NaN row reads as 0, same as the clipped rest: all zero
    second[1, 0, 0] = 2.0
    result = top_k_agreement(first, second)
    assert math.isnan(result[0]) and result[1] == 100.0
    with pytest.raises(ValueError, match="top_k"):
        top_k_agreement(first, first, top_k=0.1)


def test_metric_gives_100_for_identical_maps_and_0_for_disjoint_ones() -> None:
    x, y = images(3), np.zeros(3, dtype=np.int64)
    fixed = np.random.default_rng(2).random((3, 1, SIZE, SIZE))
    identical = ClassSensitivity()(
        bias_model(), x, y, a_batch=fixed, explain_func=lambda model, inputs, targets, **kw: fixed
    )
    assert identical == [100.0] * 3
    explain = RowExplainer()
    disjoint = ClassSensitivity()(bias_model(), x, y, explain_func=explain)
    assert disjoint == [0.0] * 3


def test_a_batch_is_used_for_top1_labels_and_re_explained_otherwise() -> None:
    explain = RowExplainer()
    # The given maps light row 7, which is what class 2 (the second class) gets.
    given = row_map(np.array([7, 7, 7]))
    labels = np.array([0, 1, 0])  # example 1's label is not its top-1 class
    scores = ClassSensitivity()(
        bias_model(), images(3), labels, a_batch=given, explain_func=explain
    )
    assert scores == [100.0, 0.0, 100.0]
    # One batched call for the second classes, one for the single re-explained top-1 map.
    assert explain.calls == [[0], [2, 2, 2]]


def test_metric_needs_an_explain_func() -> None:
    with pytest.raises(ValueError, match="explain_func"):
        ClassSensitivity()(bias_model(), images(1), np.array([0]), a_batch=row_map(np.array([0])))


def test_wilcoxon_below_is_scipys_one_sided_test() -> None:
    agreements = np.array([12.0, 35.5, 61.0, 48.0, 20.0, 75.0, 5.0, 33.0, 49.0, 10.0])
    for threshold in (50.0, 70.0):
        expected = scipy.stats.wilcoxon(agreements - threshold, alternative="less").pvalue
        assert wilcoxon_below(agreements, threshold) == pytest.approx(expected, rel=1e-12)
    # Only the median's side matters: agreements far above 50 give a large p-value.
    assert wilcoxon_below(agreements + 50) > 0.9
    with pytest.warns(RuntimeWarning, match="1 of 11 scores are NaN"):
        with_nan = wilcoxon_below(np.append(agreements, np.nan))
    assert with_nan == pytest.approx(wilcoxon_below(agreements))
