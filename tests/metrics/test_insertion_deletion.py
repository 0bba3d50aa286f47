"""Insertion and Deletion (RISE) on a model whose probability is the image mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast.metrics import Deletion, Insertion, trapezoid
from captum_contrast.metrics.insertion_deletion import gaussian_blur


class MeanModel(nn.Module):
    """Two classes with softmax probability of class 0 equal to the mean pixel value."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(x.detach().clone())
        mean = x.double().flatten(1).mean(dim=1).clamp(1e-9, 1 - 1e-9)
        return torch.stack([mean.log(), (-mean).log1p()], dim=1).float()


IMAGE = np.array([[[[1.0, 0.5], [0.25, 0.0]]]], dtype=np.float32)
LABEL = np.array([0])


def test_trapezoid_matches_hand_computation() -> None:
    values = np.array([[0.4375, 0.1875, 0.0625, 0.0, 0.0]])
    positions = np.linspace(0, 1, 5)
    assert trapezoid(values, positions) == pytest.approx([0.1171875])


def test_deletion_curve_area_with_one_pixel_per_step() -> None:
    model = MeanModel().eval()
    scores = Deletion(step=1)(model, IMAGE, LABEL, a_batch=IMAGE, channel_first=True)
    # Pixels leave in order 1, .5, .25, 0: curve (1.75, .75, .25, 0, 0) / 4 over 0..1.
    assert scores == pytest.approx([100 * 0.1171875], abs=1e-4)
    assert len(model.seen) == 5  # one batched forward per step, steps 0..4


def test_insertion_curve_area_and_partial_last_step() -> None:
    scores = Insertion(step=1, substrate=0.0)(
        MeanModel().eval(), IMAGE, LABEL, a_batch=IMAGE, channel_first=True
    )
    # Curve (0, 1, 1.5, 1.75, 1.75) / 4.
    assert scores == pytest.approx([100 * 0.3203125], abs=1e-4)
    # step 3 on 4 pixels: counts 0, 3, 4 at positions 0, .75, 1; curve (1.75, 0, 0) / 4.
    partial = Deletion(step=3)(MeanModel().eval(), IMAGE, LABEL, a_batch=IMAGE, channel_first=True)
    assert partial == pytest.approx([100 * 0.75 * 0.4375 / 2], abs=1e-4)


def test_default_step_is_one_row_and_blur_is_the_insertion_start() -> None:
    model = MeanModel().eval()
    x = np.random.default_rng(0).random((2, 3, 6, 6), dtype=np.float32)
    maps = np.random.default_rng(1).random((2, 1, 3, 3))
    scores = Insertion()(model, x, np.array([0, 1]), a_batch=maps)
    assert len(model.seen) == 7  # 36 pixels, 6 per step
    np.testing.assert_allclose(model.seen[0].numpy(), gaussian_blur(x), atol=1e-6)
    np.testing.assert_allclose(model.seen[-1].numpy(), x)
    assert all(0 <= s <= 100 for s in scores)


def test_gaussian_blur_kernel_is_normalised_with_zero_padding() -> None:
    impulse = np.zeros((1, 1, 11, 11))
    impulse[0, 0, 5, 5] = 1.0
    kernel = gaussian_blur(impulse)[0, 0]
    assert kernel.sum() == pytest.approx(1.0)
    line = np.exp(-((np.arange(11) - 5) ** 2) / 50)
    np.testing.assert_allclose(kernel, np.outer(line, line) / line.sum() ** 2)
    # Zero padding darkens the border of a constant image.
    flat = gaussian_blur(np.ones((1, 1, 11, 11)))[0, 0]
    assert flat[5, 5] > flat[0, 0]


def test_constant_maps_score_nan_and_bad_arguments_raise() -> None:
    x = np.repeat(IMAGE, 2, axis=0)
    maps = np.concatenate([np.full((1, 1, 2, 2), 3.0), IMAGE])
    scores = Deletion(step=1)(
        MeanModel().eval(), x, np.array([0, 0]), a_batch=maps, channel_first=True
    )
    assert math.isnan(scores[0]) and scores[1] == pytest.approx(11.71875, abs=1e-4)
    with pytest.raises(ValueError, match="step"):
        Deletion(step=0)
    with pytest.raises(ValueError, match="substrate"):
        Insertion(substrate="noise")
    with pytest.raises(ValueError, match="substrate` returned"):
        Insertion(substrate=lambda images: images[:, :1])(
            MeanModel().eval(),
            np.ones((1, 3, 2, 2), dtype=np.float32),
            LABEL,
            a_batch=IMAGE,
            channel_first=True,
        )
