"""Fixtures shared by every test folder; the models themselves live in :mod:`tests.helpers`."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

from tests.helpers import TwoConvNet

# The property-based suite (tests/properties): a bounded, derandomised run in CI (the same
# examples every time); HYPOTHESIS_PROFILE=long for a longer random search.
settings.register_profile(
    "ci",
    max_examples=8,
    derandomize=True,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "long",
    max_examples=300,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture
def two_conv_net() -> TwoConvNet:
    """A seeded :class:`TwoConvNet` in eval mode (5 classes, 6 channels, 8x8 inputs work)."""
    torch.manual_seed(0)
    return TwoConvNet().eval()
