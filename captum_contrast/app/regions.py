"""``explain --region``: a box of a segmentation network's output, read as class scores."""

from __future__ import annotations

import argparse
from typing import Any

import torch

from captum_contrast.app.loading import CommandError
from captum_contrast.scores import RegionScores


def parse_region(text: str) -> tuple[int, int, int, int]:
    """An argparse ``type`` for ``--region``: ``x1,y1,x2,y2`` integers, a non-empty box."""
    parts = text.split(",")
    try:
        values = tuple(int(part) for part in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or min(values) < 0 or values[2] <= values[0] or values[3] <= values[1]:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not x1,y1,x2,y2: four integers >= 0 with x2 > x1 and y2 > y1"
        )
    return values  # type: ignore[return-value]


def probe_scores(scores: Any, side: int) -> Any:
    """The selection for the default-layer probe: the whole output of a dense network."""
    if scores is None:
        return None
    return lambda outputs: RegionScores(torch.ones(tuple(_dense(outputs).shape[2:])))(outputs)


def _dense(outputs: Any) -> torch.Tensor:
    return outputs["out"] if isinstance(outputs, dict) else outputs


def region_scores(region: tuple[int, int, int, int], images: torch.Tensor, outputs: Any) -> Any:
    """``--region`` (model-input pixels) as a RegionScores at the output's resolution."""
    dense = _dense(outputs)
    if not isinstance(dense, torch.Tensor) or dense.dim() != 4:
        raise CommandError(
            "--region needs a segmentation network returning (B, C, H, W) maps (or "
            f"{{'out': ...}}); this model returns {type(dense).__name__}"
            + (f" of shape {tuple(dense.shape)}" if isinstance(dense, torch.Tensor) else "")
        )
    height, width = images.shape[-2:]
    x1, y1, x2, y2 = region
    if x2 > width or y2 > height:
        raise CommandError(
            f"--region {x1},{y1},{x2},{y2} is outside the {width}x{height} model input"
        )
    out_h, out_w = dense.shape[-2:]
    mask = torch.zeros(out_h, out_w, dtype=torch.bool)
    # Input pixels to output cells: the cells whose centres fall inside the box.
    rows = (torch.arange(out_h) + 0.5) * height / out_h
    cols = (torch.arange(out_w) + 0.5) * width / out_w
    mask[((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1) & (cols < x2))[None, :]] = True
    if not bool(mask.any()):
        raise CommandError(
            f"--region {x1},{y1},{x2},{y2} covers no cell of the {out_w}x{out_h} output"
        )
    return RegionScores(mask)
