"""benchmarks/: PP-OCRv4's text detector as a head-to-head network, read through a region."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402


def test_the_detector_network_reads_the_windows_centre_through_region_scores() -> None:
    from captum_contrast.app.registry import explain
    from captum_contrast.scores import RegionScores

    network = _common.detector_network(24)
    windows, labels = _common.detector_windows()
    assert len(windows) == 24 and labels.tolist() == [1] * 12 + [0] * 12
    assert network.images.shape == (24, 3, 64, 256)
    assert network.layer == "network.network.nodes.Concat_1"
    mask = _common.centre_region()
    assert int(mask.sum()) == 4 * 64 and bool(mask[30:34, 96:160].all())
    detector = network.model.network
    with torch.no_grad():
        dense = detector(network.images)  # (24, 2, 64, 256): (0, z) per pixel
    by_hand = dense[:, :, 30:34, 96:160].mean(dim=(2, 3))
    logits = network.logits()
    torch.testing.assert_close(logits, by_hand, rtol=1e-5, atol=1e-4)
    assert bool((logits[:, 0] == 0).all())  # DB's background logit is the constant 0
    # 22 of 24 right: two text windows (lines 2 and 3, both centred at column 192) read as
    # background; every blank window reads background.
    predicted = logits.argmax(1).numpy()
    assert predicted.tolist() == [1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1] + [0] * 12
    assert int((predicted == labels).sum()) == 22
    # By the scores contract, explaining the wrapper is explaining the detector with scores=.
    layer = network.layer_module
    x, targets = network.images[[0, 12]], torch.tensor([1, 1])
    wrapped = explain("contrast-grad-cam", network.model, layer, x, targets)
    direct = explain(
        "contrast-grad-cam", detector, layer, x, targets, scores=RegionScores(mask, "mean")
    )
    assert wrapped.shape == (2, 1, 16, 64) and float(wrapped.abs().max()) > 0
    torch.testing.assert_close(wrapped, direct)


def test_region_logits_is_the_masked_mean_of_a_fixed_dense_output() -> None:
    outputs = torch.arange(24.0).reshape(1, 2, 3, 4)
    mask = torch.zeros(3, 4, dtype=torch.bool)
    mask[1, 1:3] = True  # positions 5 and 6 of each 3x4 channel
    found = _common.RegionLogits(torch.nn.Identity(), mask)(outputs)
    assert found.tolist() == [[5.5, 17.5]]
    small = _common.centre_region(8, 16)  # rows 2-5, columns 6-9
    assert np.argwhere(small.numpy()).tolist() == [
        [r, c] for r in range(2, 6) for c in range(6, 10)
    ]
