"""Fixtures shared by every test folder; the models themselves live in :mod:`tests.helpers`."""

from __future__ import annotations

import pytest
import torch

from tests.helpers import TwoConvNet


@pytest.fixture
def two_conv_net() -> TwoConvNet:
    """A seeded :class:`TwoConvNet` in eval mode (5 classes, 6 channels, 8x8 inputs work)."""
    torch.manual_seed(0)
    return TwoConvNet().eval()
