"""Models and checks shared by the tests; every model is built in code, nothing is downloaded.

Names differ from the library's (``TwoConvNet``, not ``small_cnn``) so a test never confuses
the two.
"""

from __future__ import annotations

import sys

import pytest
import torch
from torch import Tensor, nn

TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
"""``torchrun`` of the interpreter running the tests. The ``torchrun`` on the PATH may belong to
another Python (``tools/compat.sh`` does not activate its venv), whose torch would then
compute the multi-process side of a comparison: under torch 2.3.1 that made the one- and
two-process tables differ in their last digits."""

needs_torchrun = pytest.mark.skipif(
    not torch.distributed.is_available(), reason="this torch has no torch.distributed"
)


class LinearHead(nn.Module):
    """``output[c] = sum_{k,i,j} weight[c, k, i, j] * layer(x)[k, i, j]`` with ``layer = Identity``.

    The gradient of output ``c`` with respect to the layer is exactly ``weight[c]``, so
    Grad-CAM channel weights can be set by hand.
    """

    def __init__(self, weight: Tensor) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.weight = nn.Parameter(weight.clone())

    def forward(self, x: Tensor) -> Tensor:
        return torch.einsum("bkhw,ckhw->bc", self.layer(x), self.weight)


class TwoConvNet(nn.Module):
    """Two conv + ReLU blocks (in-place ReLUs by default), global pooling, a linear head."""

    def __init__(self, num_classes: int = 5, channels: int = 6, inplace: bool = True) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.relu1 = nn.ReLU(inplace=inplace)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu2 = nn.ReLU(inplace=inplace)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        hidden = self.relu1(self.conv1(x))
        features = self.relu2(self.conv2(hidden))
        return self.fc(self.pool(features).flatten(1))


class BatchNormDropoutNet(nn.Module):
    """Conv, BatchNorm, ReLU, conv, ReLU, dropout, linear: a model whose train-mode forward
    changes buffers (BatchNorm's running statistics) and is random (dropout)."""

    def __init__(self, num_classes: int = 5, channels: int = 6) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.bn = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.dropout = nn.Dropout(0.5)
        self.fc = nn.Linear(channels, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        hidden = torch.relu(self.bn(self.conv1(x)))
        features = torch.relu(self.conv2(hidden))
        return self.fc(self.dropout(features.mean(dim=(2, 3))))


def model_snapshot(model: nn.Module) -> dict[str, object]:
    """Everything an attribution call must leave as it found it."""
    return {
        "training": [m.training for m in model.modules()],
        "requires_grad": [p.requires_grad for p in model.parameters()],
        "grads": [None if p.grad is None else p.grad.clone() for p in model.parameters()],
        "state": {name: value.detach().clone() for name, value in model.state_dict().items()},
        "hooks": [
            len(m._forward_hooks)
            + len(m._forward_pre_hooks)
            + len(m._backward_hooks)
            + len(getattr(m, "_backward_pre_hooks", {}))
            for m in model.modules()
        ],
        "params": [p.detach().clone() for p in model.parameters()],
    }


def assert_untouched(before: dict[str, object], model: nn.Module) -> None:
    """Modes, flags, ``.grad``, hooks, parameters and buffers exactly as in ``before``."""
    after = model_snapshot(model)
    assert after["training"] == before["training"]
    assert after["requires_grad"] == before["requires_grad"]
    for old, new in zip(before["grads"], after["grads"], strict=True):
        assert (old is None) == (new is None), "a parameter .grad was written or cleared"
        if old is not None:
            assert torch.equal(old, new), "a parameter .grad changed"
    assert after["hooks"] == before["hooks"], "a hook was left on the model"
    for old, new in zip(before["params"], after["params"], strict=True):
        torch.testing.assert_close(old, new, rtol=0, atol=0)
    assert after["state"].keys() == before["state"].keys()
    for name, old in before["state"].items():
        new = after["state"][name]
        assert old.dtype == new.dtype and torch.equal(old, new), f"{name} changed"
