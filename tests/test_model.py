"""Model outputs beyond a tensor: ``.logits`` objects work, others raise showing a wrapper."""

from __future__ import annotations

from collections import OrderedDict

import pytest
import torch
from captum.attr import LayerGradCam
from torch import nn
from torchvision.models import InceptionOutputs

from captum_contrast import ContrastGradCAM, OptiCAM
from captum_contrast.scores import ClassScores
from tests.helpers import TwoConvNet


class Wrapped(nn.Module):
    def __init__(self, kind: str) -> None:
        super().__init__()
        self.kind = kind
        self.net = TwoConvNet(num_classes=4, inplace=False)

    def forward(self, x: torch.Tensor):
        logits = self.net(x)
        if self.kind == "inception":  # torchvision Inception v3 in train mode
            return InceptionOutputs(logits, logits * 0)
        return OrderedDict(logits=logits, hidden=x)


class HFStyle(OrderedDict):
    """Hugging Face's ModelOutput: a dict whose keys are also attributes."""

    def __getattr__(self, name):
        return self[name]


def test_logits_objects_are_read_through() -> None:
    torch.manual_seed(0)
    images = torch.rand(2, 3, 8, 8)
    model = Wrapped("inception").eval()
    expected = ContrastGradCAM(model.net, model.net.relu2).attribute(images, target=[1, 2])
    got = ContrastGradCAM(model, model.net.relu2).attribute(images, target=[1, 2])
    torch.testing.assert_close(got, expected)
    opti = OptiCAM(model, model.net.relu2).attribute(images, target=[1, 2], n_iter=2)
    torch.testing.assert_close(
        opti, OptiCAM(model.net, model.net.relu2).attribute(images, target=[1, 2], n_iter=2)
    )
    assert ClassScores()(HFStyle(logits=torch.ones(2, 3))).shape == (2, 3)
    reference = LayerGradCam(model.net, model.net.relu2).attribute(images, 1)
    assert reference.abs().sum() > 0


def test_other_structured_outputs_raise_showing_the_wrapper() -> None:
    model = Wrapped("dict").eval()
    with pytest.raises(ValueError, match=r"OrderedDict with fields \['logits', 'hidden'\]"):
        ContrastGradCAM(model, model.net.relu2).attribute(torch.rand(1, 3, 8, 8))
    with pytest.raises(ValueError, match=r"lambda \*inputs: model\(\*inputs\)\[0\]"):
        ClassScores()((torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(ValueError, match=r"a tensor of shape \(2, 3, 4\)"):
        ClassScores()(torch.zeros(2, 3, 4))
