"""Target forms shared by the methods."""

from __future__ import annotations

import torch

from captum_contrast._targets import runner_up, top_other_classes


def test_runner_up_skips_the_target() -> None:
    outputs = torch.tensor([[0.1, 5.0, 3.0], [9.0, 1.0, 2.0]])
    assert runner_up(outputs, torch.tensor([1, 2])).tolist() == [2, 0]


def test_top_other_classes_ranks_by_score_and_never_returns_the_target() -> None:
    outputs = torch.tensor([[0.1, 5.0, 3.0, 4.0], [9.0, 1.0, 2.0, 8.0]])
    assert top_other_classes(outputs, torch.tensor([1, 0]), 2).tolist() == [[3, 2], [3, 2]]
