"""Captum's NoiseTunnel over every method equals the hand-rolled average of noisy calls."""

from __future__ import annotations

import pytest
import torch
from captum.attr import NoiseTunnel

from captum_contrast import ContrastGradCAM, DifferenceSalience, FinerCAM, MinMaxCAM, OptiCAM
from tests.helpers import BatchNormDropoutNet, TwoConvNet, assert_untouched, model_snapshot

METHODS = [
    (ContrastGradCAM, {"k": 2}),
    (MinMaxCAM, {"variant": "d-minmax"}),
    (OptiCAM, {"n_iter": 2}),
    (DifferenceSalience, {"contrast": "runner-up"}),
    (FinerCAM, {"k": 2}),
]
SAMPLES, STDEV = 3, 0.1


def hand_rolled(method, images, target, kwargs, seed):
    """Captum's noise draw (one normal tensor, samples of an example adjacent), then one
    call per sample; returns the mean map and the mean squared map."""
    torch.manual_seed(seed)
    batch = images.shape[0]
    noise = torch.normal(0, torch.tensor(STDEV).repeat((batch * SAMPLES, *images.shape[1:])))
    noisy = (images.repeat_interleave(SAMPLES, dim=0) + noise).reshape(
        batch, SAMPLES, *images.shape[1:]
    )
    maps = torch.stack([method.attribute(noisy[:, s], target, **kwargs) for s in range(SAMPLES)])
    return maps.mean(0), maps.pow(2).mean(0)


@pytest.mark.parametrize(("cls", "kwargs"), METHODS, ids=[m[0].__name__ for m in METHODS])
def test_smoothgrad_and_vargrad_equal_the_hand_rolled_average(cls, kwargs) -> None:
    torch.manual_seed(0)
    model = TwoConvNet(num_classes=5, inplace=False).eval()
    images = torch.rand(2, 3, 8, 8)
    target = [1, 4]
    method = cls(model, model.relu2)
    mean, mean_sq = hand_rolled(method, images, target, kwargs, seed=3)
    assert mean.abs().sum() > 0
    tunnel = NoiseTunnel(method)
    torch.manual_seed(3)
    smooth = tunnel.attribute(
        images, nt_type="smoothgrad", nt_samples=SAMPLES, stdevs=STDEV, target=target, **kwargs
    )
    torch.manual_seed(3)
    var = tunnel.attribute(
        images, nt_type="vargrad", nt_samples=SAMPLES, stdevs=STDEV, target=target, **kwargs
    )
    torch.testing.assert_close(smooth, mean)
    torch.testing.assert_close(var, mean_sq - mean.pow(2))
    assert not torch.equal(smooth, method.attribute(images, target, **kwargs))  # noise mattered


@pytest.mark.parametrize(("cls", "kwargs"), METHODS, ids=[m[0].__name__ for m in METHODS])
def test_noise_tunnel_keeps_the_eval_mode_switch(cls, kwargs) -> None:
    # NoiseTunnel calls `attribute.__wrapped__` (to skip Captum's usage logging): that path
    # must still explain a train-mode model in eval mode and leave BatchNorm's buffers alone.
    torch.manual_seed(0)
    model = BatchNormDropoutNet(num_classes=5).train()
    before = model_snapshot(model)
    tunnel = NoiseTunnel(cls(model, model.conv2))
    with pytest.warns(UserWarning, match="explained in eval mode"):
        torch.manual_seed(1)
        first = tunnel.attribute(torch.rand(2, 3, 8, 8), nt_samples=2, target=[1, 4], **kwargs)
    assert_untouched(before, model)
    with pytest.warns(UserWarning, match="explained in eval mode"):
        torch.manual_seed(1)
        again = tunnel.attribute(torch.rand(2, 3, 8, 8), nt_samples=2, target=[1, 4], **kwargs)
    torch.testing.assert_close(first, again, rtol=0, atol=0)  # no dropout: reproducible
