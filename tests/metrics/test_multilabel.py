"""Multi-label IC/AD/ADO/AR/ARO: SPEC 5 single-image vectors through the classes, macro F1."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast.metrics import (
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
    detections,
    harmonic_mean,
    multilabel_macro_scores,
)


class LookupModel(nn.Module):
    """Logits looked up by the input's pixel sum, so a test sets every probability."""

    def __init__(self, table: dict[float, list[float]]) -> None:
        super().__init__()
        self.register_buffer("keys", torch.tensor(list(table), dtype=torch.float64))
        self.register_buffer("table", torch.tensor(list(table.values()), dtype=torch.float64))
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        sums = x.double().flatten(1).sum(dim=1)
        match = (sums[:, None] - self.keys[None]).abs() < 1e-5
        assert bool((match.sum(dim=1) == 1).all()), f"no table entry for input sums {sums}"
        return self.table[match.int().argmax(dim=1)].float()


def logits(*probabilities: float) -> list[float]:
    return [math.log(p / (1 - p)) for p in probabilities]


def spec_image() -> tuple[LookupModel, np.ndarray, np.ndarray, np.ndarray]:
    """SPEC 5 multi-label image: Y = (.9, .8, .1); label 0's and label 1's maps and outputs.

    The image is a 2x2 of ones (sum 4). Label 0's map keeps 3 pixels (M x sums to 3, its
    complement to 1); label 1's keeps 1.5 (complement 2.5), so every variant has its key.
    """
    table = {
        4.0: logits(0.9, 0.8, 0.1),  # Y
        3.0: logits(0.95, 0.2, 0.1),  # O, label 0
        1.0: logits(0.3, 0.85, 0.1),  # Obar, label 0
        1.5: logits(0.5, 0.6, 0.1),  # O, label 1
        2.5: logits(0.88, 0.2, 0.1),  # Obar, label 1
    }
    x = np.ones((2, 1, 2, 2), dtype=np.float32)
    maps = np.array([[[[0.0, 1.0], [1.0, 1.0]]], [[[0.0, 0.5], [0.0, 1.0]]]])
    return LookupModel(table).eval(), x, np.array([0, 1]), maps


@pytest.mark.parametrize(
    ("metric_class", "expected"),
    [
        (MultiLabelIncreaseInConfidence, [1.0, 0.0]),
        (MultiLabelAverageDrop, [0.0, 0.25]),
        (AverageRetention, [2 / 3, 0.75]),
        (AverageDropOfOthers, [0.75, 4 / 9]),
        (AverageRetentionOfOthers, [0.0, 0.02 / 0.9]),
    ],
)
def test_spec_vectors_through_metric_classes(metric_class, expected) -> None:
    model, x, y, maps = spec_image()
    scores = metric_class()(model, x, y, a_batch=maps, channel_first=True)
    assert scores == pytest.approx([100 * e for e in expected], abs=1e-4)
    assert model.calls == 2  # Y and one masked variant, each one batched forward


def test_others_use_the_models_detections_and_threshold() -> None:
    model, x, y, maps = spec_image()
    # With threshold .85 only label 0 is detected: label 0 has no others (ADO 0, still
    # counted), label 1's others are {0}.
    scores = AverageDropOfOthers(threshold=0.85)(model, x, y, a_batch=maps, channel_first=True)
    assert scores == pytest.approx([0.0, 100 * 0.4 / 0.9], abs=1e-4)
    with pytest.raises(ValueError, match="threshold"):
        AverageDropOfOthers(threshold=1.5)


def test_detections_lists_every_detected_label() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3)).eval()
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].weight[1, 0] = 10.0  # label 1 fires only when the first pixel is bright
        model[1].bias.copy_(torch.tensor([1.0, -5.0, -1.0]))
    x = np.zeros((2, 1, 2, 2), dtype=np.float32)
    x[1, 0, 0, 0] = 1.0
    examples, labels = detections(model, x)
    assert examples.tolist() == [0, 1, 1] and labels.tolist() == [0, 0, 1]


def test_macro_scores_average_per_class_then_over_classes() -> None:
    scores = {
        "AD": [30.0, 10.0, 50.0, np.nan],
        "ARO": [2.0, 4.0, 0.0, 8.0],
        "AR": [0.0, 0.0, 20.0, 40.0],
        "ADO": [0.0, 0.0, 60.0, 20.0],
    }
    labels = [0, 0, 1, 3]  # class 2 has no detection and does not count
    result = multilabel_macro_scores(scores, labels)
    # Per class: AD (20, 50, nan->skipped), ARO (3, 0, 8), AR (0, 20, 40), ADO (0, 60, 20).
    assert result["AD"] == pytest.approx(35.0)
    assert result["ARO"] == pytest.approx(11 / 3)
    # F1- per class: HM(20, 3) = 120/23, HM(50, 0) = 0, HM(nan, 8) = nan (skipped).
    assert result["F1-"] == pytest.approx((120 / 23 + 0) / 2)
    # F1+ per class: HM(0, 0) = 0 (zero denominator -> 1), HM(20, 60) = 30, HM(40, 20) = 80/3.
    assert result["F1+"] == pytest.approx((0 + 30 + 80 / 3) / 3)
    # Per-class F1 then the mean is not the HM of the macro averages (SPEC 2's check).
    assert result["F1-"] != pytest.approx(harmonic_mean(np.array(35.0), np.array(11 / 3)))
    assert set(result) == {"AD", "ARO", "AR", "ADO", "F1-", "F1+"}


def test_macro_scores_reject_misaligned_inputs() -> None:
    with pytest.raises(ValueError, match="scores\\['AD'\\]"):
        multilabel_macro_scores({"AD": [1.0, 2.0]}, [0, 1, 2])
    with pytest.raises(ValueError, match="labels"):
        multilabel_macro_scores({"AD": [1.0]}, [0.5])


def test_reference_protocol_end_to_end() -> None:
    model, x, y, maps = spec_image()
    examples, labels = detections(model, x[:1])
    assert labels.tolist() == [0, 1]
    batch = x[examples]
    per_example = {
        "AD": MultiLabelAverageDrop()(model, batch, labels, a_batch=maps, channel_first=True),
        "ARO": AverageRetentionOfOthers()(model, batch, labels, a_batch=maps, channel_first=True),
    }
    result = multilabel_macro_scores(per_example, labels)
    assert result["AD"] == pytest.approx(12.5, abs=1e-4)
    aro = 100 * 0.02 / 0.9
    assert result["F1-"] == pytest.approx(
        harmonic_mean(np.array(25.0), np.array(aro)) / 2, abs=1e-4
    )
