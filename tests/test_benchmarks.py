"""benchmarks/: the smoke run of ``run_all.py --quick`` and the head-to-head's own measures."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import _common  # noqa: E402
import contrastive  # noqa: E402


def test_keep_masks_keep_each_maps_top_pixels_and_break_ties_at_random() -> None:
    maps = np.arange(20, dtype=np.float32).reshape(1, 1, 4, 5)
    masks = contrastive.keep_masks(maps, 0.2)
    assert masks.sum() == 4 and masks[0, 0, 3].tolist() == [0, 1, 1, 1, 1]
    flat = np.ones((2, 1, 10, 10), np.float32)  # Fake-CAM-like: all ties
    first, other = contrastive.keep_masks(flat, 0.2), contrastive.keep_masks(flat, 0.2, seed=1)
    assert first.sum() == 40 and not np.array_equal(first, other)
    assert not np.array_equal(first[0], first[1])  # not the raster order, not one region


def test_bootstrap_interval_contains_the_median() -> None:
    values = np.r_[np.arange(10.0), np.nan]
    median, low, high = _common.bootstrap_ci(values)
    assert median == 4.5 and low <= median <= high and 0 <= low and high <= 9
    assert _common.with_ci(np.array([np.nan])) == "n/a"


def test_run_all_quick_runs_the_head_to_head_smoke() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "run_all.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line for line in done.stdout.splitlines() if line.startswith("| random map")]
    assert len(rows) == 1
    cells = rows[0].split(" | ")
    # The random map ignores the weights: MPRT exactly 1, eMPRT exactly 0.
    assert cells[8].startswith("1.00 [1.00, 1.00]") and cells[9].startswith("0.00 [0.00, 0.00]")
    assert "| `contrastive.py` | contrastive.md, contrastive.png | 0 |" in done.stdout


def test_the_text_direction_network_reads_page_lines_both_ways() -> None:
    import torch

    from captum_contrast.app.registry import explain, explain_func

    found = _common.pretrained_networks(8)
    (network,) = [net for net in found if net.name.startswith("PP-OCR text direction")]
    # Windows 0, 7, 14, 21 of the 25 upright ones, then four of their 180-degree rotations.
    assert network.logits().argmax(1).tolist() == [0, 0, 0, 0, 1, 1, 1, 1]
    targets = np.zeros(8, dtype=int)
    found = explain_func("finer-cam", network.model, network.layer, init_kwargs=network.init_kwargs)
    assert found(network.model, network.images, targets).shape == (8, 1, 48, 192)
    # registry.explain keeps the layer's own grid (strides 24 and 2: no one stride fits).
    layer_maps = explain(
        "finer-cam", network.model, network.layer_module, network.images[:2],
        torch.zeros(2, dtype=torch.long), init_kwargs=network.init_kwargs,
    )  # fmt: skip
    assert layer_maps.shape == (2, 1, 2, 96)
    # Without the identity reshape_transform the layer (200 x 2 x 96) is refused, by name.
    plain = explain_func("finer-cam", network.model, network.layer)
    with pytest.raises(ValueError, match="layout"):
        plain(network.model, network.images, targets)


def test_paired_above_is_the_one_sided_exact_wilcoxon() -> None:
    import analyses

    # Three positive differences: the exact one-sided p is 1/2**3.
    assert analyses.paired_above(np.array([10.0, 20, 31]), np.array([5.0, 5, 5])) == 0.125
    assert analyses.paired_above(np.array([5.0, 5, 5]), np.array([10.0, 20, 31])) == 1.0
    assert np.isnan(analyses.paired_above(np.ones(3), np.ones(3)))  # nothing to test
