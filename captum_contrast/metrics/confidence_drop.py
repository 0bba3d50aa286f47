"""CASE's confidence-drop fidelity test as a Quantus metric."""

from __future__ import annotations

from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import (
    CAMMetric,
    check_classes,
    check_percent,
    constant_maps,
    finite_maps,
    maps_at_input,
    pixel_ranks,
    probabilities,
    top_count,
)
from captum_contrast.metrics.masking import _relative


class ConfidenceDrop(CAMMetric):
    """Relative drop of the class probability when the map's top pixels are ablated (CASE).

    The ``int(top_k / 100 * H * W)`` most salient pixels (map upsampled bilinearly to the
    input when smaller; ties by lower flat index) are set to ``baseline`` in every channel,
    and the score is ``max(p - p', 0) / p``, ``p`` and ``p'`` the softmax probability of
    ``y_batch`` before and after, a fraction as in CASE's Table III. A larger drop means the
    map found the evidence (higher is better). CASE ablates in the model's *normalised*
    input space, where 0 is the mean colour, and keeps only correctly classified images;
    pass inputs and labels accordingly. Compare two explainers with :func:`paired_ttest`.
    A constant map (all zero included) ranks no pixel and scores NaN, as does a non-finite
    map.

    Args:
        top_k: Percentage of pixels ablated (CASE: 50).
        baseline: The value ablated pixels take, in the model's input space (CASE: 0).
        reproduce_transpose_bug: Ablate the transposed pixel set, as CASE's official run
            does (its ``(row, col)`` pairs are read as ``(x, y)``); square images only.
        **kwargs: Quantus's metric options.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import ConfidenceDrop
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))
        >>> scores = ConfidenceDrop()(model, x, np.array([0, 1]), a_batch=maps)
        >>> all(0 <= s <= 1 for s in scores)
        True
    """

    name = "Confidence Drop"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS

    def __init__(
        self,
        top_k: float = 50.0,
        baseline: float = 0.0,
        reproduce_transpose_bug: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.top_k = check_percent(top_k, "top_k")
        if not np.isfinite(baseline):
            raise ValueError(f"`baseline` must be a finite number, got {baseline!r}")
        self.baseline = float(baseline)
        self.reproduce_transpose_bug = bool(reproduce_transpose_bug)

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        height, width = x_batch.shape[-2:]
        if self.reproduce_transpose_bug and height != width:
            raise ValueError(f"`reproduce_transpose_bug` needs square images, got {height}x{width}")
        valid = finite_maps(a_batch)
        maps = maps_at_input(np.where(valid[:, None, None, None], a_batch, 0.0), (height, width))
        valid &= ~constant_maps(maps)
        count = top_count(self.top_k, height * width)
        ablate = (pixel_ranks(maps) < count).numpy().reshape(-1, 1, height, width)
        if self.reproduce_transpose_bug:
            ablate = ablate.transpose(0, 1, 3, 2)
        ablated = np.where(ablate, np.asarray(self.baseline, dtype=x_batch.dtype), x_batch)
        before = probabilities(model, x_batch, "softmax")
        check_classes(y_batch, before.shape[1])
        after = probabilities(model, ablated, "softmax")
        rows = np.arange(len(x_batch))
        p, p_ablated = before[rows, y_batch], after[rows, y_batch]
        scores = _relative(np.maximum(p - p_ablated, 0.0), p)
        return np.where(valid, scores, np.nan).tolist()
