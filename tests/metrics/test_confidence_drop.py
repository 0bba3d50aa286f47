"""Confidence drop (CASE) on a model whose probability is the image mean; paired t-test."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats
import torch
from torch import nn

from captum_contrast.metrics import ConfidenceDrop, paired_ttest


class MeanModel(nn.Module):
    """Two classes with softmax probability of class 0 equal to the mean pixel value."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.double().flatten(1).mean(dim=1).clamp(1e-9, 1 - 1e-9)
        return torch.stack([mean.log(), (-mean).log1p()], dim=1).float()


IMAGE = np.array([[[[1.0, 0.5], [0.25, 0.0]]]], dtype=np.float32)  # p = 1.75 / 4
RANKING = np.array([[[[0.0, 1.0], [2.0, 3.0]]]])  # most salient: (1, 1), then (1, 0)


def test_drop_after_ablating_the_top_half() -> None:
    scores = ConfidenceDrop()(
        MeanModel().eval(), IMAGE, np.array([0]), a_batch=RANKING, channel_first=True
    )
    # Pixels (1, 1) = 0 and (1, 0) = .25 become 0: p' = 1.5 / 4.
    assert scores == pytest.approx([(1.75 - 1.5) / 1.75], abs=1e-6)


def test_transpose_bug_ablates_the_mirrored_pixels() -> None:
    metric = ConfidenceDrop(reproduce_transpose_bug=True)
    scores = metric(MeanModel().eval(), IMAGE, np.array([0]), a_batch=RANKING, channel_first=True)
    # The transposed set is (1, 1) = 0 and (0, 1) = .5: p' = 1.25 / 4.
    assert scores == pytest.approx([(1.75 - 1.25) / 1.75], abs=1e-6)
    wide = np.zeros((1, 1, 2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match="square"):
        metric(
            MeanModel().eval(),
            wide,
            np.array([0]),
            a_batch=np.ones((1, 1, 2, 3)),
            channel_first=True,
        )


def test_baseline_top_k_and_no_negative_drop() -> None:
    # Ablating to 1 raises the mean: the drop is clipped at 0.
    raised = ConfidenceDrop(baseline=1.0)(
        MeanModel().eval(), IMAGE, np.array([0]), a_batch=RANKING, channel_first=True
    )
    assert raised == [0.0]
    # top_k 75% of 4 pixels is int(3) pixels: (1,1), (1,0), (0,1) -> p' = 1 / 4.
    three = ConfidenceDrop(top_k=75)(
        MeanModel().eval(), IMAGE, np.array([0]), a_batch=RANKING, channel_first=True
    )
    assert three == pytest.approx([(1.75 - 1.0) / 1.75], abs=1e-6)
    with pytest.raises(ValueError, match="top_k"):
        ConfidenceDrop(top_k=0)


def test_constant_map_scores_nan_without_stopping_the_batch() -> None:
    x = np.repeat(IMAGE, 2, axis=0)
    maps = np.concatenate([np.zeros((1, 1, 2, 2)), RANKING])  # the whole-batch check passes
    scores = ConfidenceDrop()(
        MeanModel().eval(), x, np.array([0, 0]), a_batch=maps, channel_first=True
    )
    assert math.isnan(scores[0]) and scores[1] == pytest.approx(0.25 / 1.75, abs=1e-6)
    all_zero = ConfidenceDrop()(
        MeanModel().eval(), x, np.array([0, 0]), a_batch=np.zeros((2, 1, 2, 2)), channel_first=True
    )
    assert all(math.isnan(s) for s in all_zero)


def test_paired_ttest_is_scipys_ttest_rel_paired_by_example() -> None:
    case = np.array([0.21, 0.35, 0.10, 0.42, 0.18, 0.27])
    other = np.array([0.20, 0.30, 0.12, 0.35, 0.15, 0.22])
    for alternative in ("two-sided", "greater", "less"):
        expected = scipy.stats.ttest_rel(case, other, alternative=alternative)
        result = paired_ttest(case, other, alternative=alternative)
        assert result.pvalue == pytest.approx(expected.pvalue, rel=1e-12)
        assert result.statistic == pytest.approx(expected.statistic, rel=1e-12)
    # Mappings pair by example id, whatever their order.
    by_id = paired_ttest(
        dict(zip("abcdef", case, strict=True)), dict(zip("fedcba", other[::-1], strict=True))
    )
    assert by_id.pvalue == pytest.approx(scipy.stats.ttest_rel(case, other).pvalue)
    with pytest.warns(RuntimeWarning, match="1 of 7 scores are NaN"):
        dropped = paired_ttest(np.append(case, np.nan), np.append(other, 0.5))
    assert dropped.pvalue == pytest.approx(scipy.stats.ttest_rel(case, other).pvalue)
    with pytest.raises(ValueError, match="same examples"):
        paired_ttest(case, other[:-1])
