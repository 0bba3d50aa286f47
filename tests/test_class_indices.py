"""One check of class indices everywhere an index is taken (issue 22): a float, a bool or
NaN is refused by the methods, the Quantus explainer, the metrics, the confusion matrix, the
channel analysis and the losses alike, with an error naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast import ContrastGradCAM, confusion_matrix
from captum_contrast._validation import ClassIndexError, class_indices
from captum_contrast.methods.analysis import active_channels
from captum_contrast.metrics import AverageDrop, explainer
from captum_contrast.training import CYBORGLoss
from tests.helpers import TwoConvNet

torch.manual_seed(0)
NET = TwoConvNet(inplace=False).eval()
IMAGES = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)


@pytest.mark.parametrize(
    "value",
    [
        1.7,
        True,
        np.float64(2.0),
        np.array([1.7, 2.2]),
        np.array([1.0, 2.0]),  # whole floats too: 1.0 may be a rounded 0.97
        np.array([True, False]),
        np.array([0, np.nan]),
        [1, 2.5],
        [True, 1],
        torch.tensor([1.0, 2.0]),
        torch.tensor([True]),
        "1",
        np.array(["a"]),
        None,
    ],
    ids=repr,
)
def test_non_integers_are_refused_naming_the_argument(value) -> None:
    with pytest.raises(ClassIndexError, match="`where` must hold integer class indices"):
        class_indices(value, "where")
    assert issubclass(ClassIndexError, TypeError) and issubclass(ClassIndexError, ValueError)


def test_integers_pass_in_every_form() -> None:
    for value in (3, np.int32(3), [3], (3,), range(3, 4), np.array([3]), torch.tensor([3])):
        assert class_indices(value, "x").reshape(-1).tolist() == [3]
    assert class_indices([[0, 1], [2, 3]], "x").shape == (2, 2)
    with pytest.raises(ValueError, match=r"`x` holds class indices \[-1, 5\] outside \[0, 4\]"):
        class_indices([-1, 5, 2], "x", num_classes=5)


def test_explainer_refuses_float_and_bool_targets() -> None:
    # Issue 22: np.array([1.7, 2.2]) explained classes 1 and 2; bools became 0/1.
    explain = explainer(ContrastGradCAM, layer="conv2", k=2)
    for targets in (np.array([1.7, 2.2]), np.array([True, False])):
        with pytest.raises(ValueError, match="`targets` must hold integer class indices"):
            explain(NET, IMAGES, targets)
    maps = explain(NET, IMAGES, np.array([1, 2]))
    expected = ContrastGradCAM(NET, NET.conv2).attribute(torch.from_numpy(IMAGES), [1, 2], k=2)
    assert maps.shape == (2, 1, 8, 8)
    np.testing.assert_allclose(maps, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_metrics_refuse_float_labels() -> None:
    maps = np.random.default_rng(1).random((2, 1, 4, 4))
    with pytest.raises(ValueError, match="`y_batch` must hold integer class indices"):
        AverageDrop()(NET, IMAGES, np.array([1.0, 2.0]), a_batch=maps)


class Scores(nn.Module):
    """Returns its input as the scores: predictions are the argmax of each row."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _one_hot_scores(predicted: list[int], classes: int) -> torch.Tensor:
    return torch.nn.functional.one_hot(torch.tensor(predicted), classes).float()


def test_confusion_matrix_refuses_float_labels() -> None:
    # Issue 22: labels 1.7, 9.5, -0.5 were truncated and counted.
    scores = _one_hot_scores([1, 2, 0], 10)
    with pytest.raises(ValueError, match="`labels` must hold integer class indices"):
        confusion_matrix(
            Scores().eval(), [(scores, torch.tensor([1.7, 9.5, -0.5]))], num_classes=10
        )


def test_confusion_matrix_refuses_fewer_classes_than_outputs() -> None:
    # Issue 22: with num_classes=5 on 10 outputs, a class-1 example predicted as 7 was filed
    # under "correct class 2" (1 * 5 + 7 = 2 * 5 + 2).
    scores = _one_hot_scores([7], 10)
    with pytest.raises(ValueError, match="`num_classes`=5 but the model has 10 outputs"):
        confusion_matrix(Scores().eval(), [(scores, torch.tensor([1]))], num_classes=5)


@pytest.mark.parametrize(
    ("batch", "fragment"),
    [
        (torch.zeros(3, 10), "(inputs, labels, ...) batches; batch 0 is Tensor"),
        ((np.zeros((1, 10)), torch.tensor([1])), "inputs must be a tensor"),
        ((_one_hot_scores([1, 2], 10), torch.tensor([1])), "1 `labels` for 2 inputs"),
        ((_one_hot_scores([1], 10), torch.tensor([10])), r"`labels` holds class indices \[10\]"),
        ((torch.zeros(2, 10), ["a", "b"]), "`labels` must hold integer class indices"),
        ((torch.full((1, 10), float("nan")), torch.tensor([1])), "NaN or infinite outputs"),
        ((torch.zeros(2, 10, 3), torch.tensor([1, 2])), "(batch, classes) scores"),
    ],
)
def test_confusion_matrix_names_malformed_batches(batch, fragment) -> None:
    with pytest.raises(ValueError, match=fragment if "\\" in fragment else _escaped(fragment)):
        confusion_matrix(Scores().eval(), [batch], num_classes=10)


def _escaped(text: str) -> str:
    import re

    return re.escape(text)


def test_confusion_matrix_counts_integer_labels() -> None:
    scores = _one_hot_scores([1, 2, 2, 0], 3)
    counts = confusion_matrix(Scores().eval(), [(scores, np.array([1, 2, 0, 0]))], num_classes=3)
    assert counts.tolist() == [[1, 0, 1], [0, 1, 0], [0, 0, 1]]


def test_channel_analysis_and_losses_refuse_float_labels() -> None:
    loader = [(torch.rand(2, 3, 8, 8), torch.tensor([0.0, 1.0]))]
    with pytest.raises(ValueError, match="`labels` must hold integer class indices"):
        active_channels(NET, NET.conv2, loader)
    loss = CYBORGLoss(nn.Linear(4, 2))
    with pytest.raises(ValueError, match="`labels` must hold integer class indices"):
        loss(
            torch.randn(2, 2), torch.rand(2, 4, 4, 4), torch.tensor([0.0, 1.0]), torch.rand(2, 8, 8)
        )
