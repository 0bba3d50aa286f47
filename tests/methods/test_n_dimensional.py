"""1-D and 3-D grids (signals, volumes): the methods agree with Captum's LayerGradCam."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from captum.attr import LayerAttribution, LayerGradCam
from torch import nn

from captum_contrast import (
    ContrastGradCAM,
    DifferenceSalience,
    MinMaxCAM,
    OptiCAM,
    normalize,
)

CONV = {1: nn.Conv1d, 3: nn.Conv3d}
POOL = {1: nn.AdaptiveAvgPool1d, 3: nn.AdaptiveAvgPool3d}
GRID = {1: (24,), 3: (4, 6, 8)}


def conv_net(rank: int, classes: int = 4) -> nn.Sequential:
    torch.manual_seed(rank)
    return nn.Sequential(
        CONV[rank](2, 5, 3, padding=1),
        nn.ReLU(),
        CONV[rank](5, 6, 3, stride=2, padding=1),
        nn.ReLU(),
        POOL[rank](1),
        nn.Flatten(),
        nn.Linear(6, classes),
    ).eval()


@pytest.mark.parametrize("rank", [1, 3])
def test_gradient_methods_reduce_to_grad_cam(rank: int) -> None:
    model = conv_net(rank)
    inputs = torch.rand(3, 2, *GRID[rank])
    layer = model[3]
    target = torch.tensor([0, 1, 3])
    grad_cam = LayerGradCam(model, layer)
    relu_cam = grad_cam.attribute(inputs, target, relu_attributions=True)
    assert relu_cam.shape == (3, 1, *(s // 2 for s in GRID[rank])) and relu_cam.sum() > 0
    # MinMax with the target as its only label is Grad-CAM.
    labels = F.one_hot(target, 4).bool()
    torch.testing.assert_close(
        MinMaxCAM(model, layer).attribute(inputs, target, labels=labels), relu_cam
    )
    # A class minus a class: Grad-CAM is linear in the score.
    contrast = torch.tensor([2, 0, 0])
    torch.testing.assert_close(
        DifferenceSalience(model, layer).attribute(inputs, target, contrast=contrast),
        grad_cam.attribute(inputs, target) - grad_cam.attribute(inputs, contrast),
    )
    # CASE against a contrast class whose channel gradient is orthogonal keeps Grad-CAM:
    # here, check the projection by hand on Grad-CAM's own channel weights.
    case, weights = ContrastGradCAM(model, layer).attribute(
        inputs, target, contrast=contrast.unsqueeze(1), return_weights=True
    )
    pooled = torch.autograd.functional.jacobian(
        lambda a: model[4:](a), layer(model[:3](inputs))
    )  # d logits / d A, (B, C, B, K, *grid)
    gamma = torch.stack([pooled[b, :, b].flatten(2).mean(-1) for b in range(3)])  # (B, C, K)
    g_t, g_c = gamma[torch.arange(3), target], gamma[torch.arange(3), contrast]
    expected = (
        g_t - (g_t * g_c).sum(1, keepdim=True) / (g_c.pow(2).sum(1, keepdim=True) + 1e-8) * g_c
    )
    torch.testing.assert_close(weights, expected)
    activations = layer(model[:3](inputs))
    torch.testing.assert_close(
        case, torch.relu(torch.einsum("bk,bk...->b...", expected, activations)).unsqueeze(1)
    )


@pytest.mark.parametrize("rank", [1, 3])
def test_opticam_masks_with_the_matching_interpolation(rank: int) -> None:
    model = conv_net(rank)
    inputs = torch.rand(2, 2, *GRID[rank])
    layer = model[3]
    start = OptiCAM(model, layer).attribute(inputs, target=[1, 2], n_iter=0)
    activations = layer(model[:3](inputs))
    torch.testing.assert_close(start, activations.mean(1, keepdim=True))  # softmax(0.5) is uniform
    attr = OptiCAM(model, layer).attribute(inputs, target=[1, 2], n_iter=3, early_stop=None)
    assert attr.shape == start.shape and not torch.equal(attr, start)
    mode = {1: "linear", 3: "trilinear"}[rank]
    mask = normalize(LayerAttribution.interpolate(attr, GRID[rank], mode), "range")
    assert mask.shape == (2, 1, *GRID[rank])
    flat = mask.flatten(1)
    torch.testing.assert_close(flat.min(1).values, torch.zeros(2))
    torch.testing.assert_close(flat.max(1).values, torch.ones(2))


def test_opticam_needs_maps_with_the_inputs_grid_rank() -> None:
    model = nn.Sequential(nn.Conv1d(2, 3, 3), nn.Flatten(), nn.Linear(3 * 6, 2)).eval()
    with pytest.raises(ValueError, match="`inputs` must be one batch"):
        OptiCAM(model, model[0]).attribute(torch.rand(2, 16))
