"""CASE's confidence-drop fidelity test as a Quantus metric: :class:`ConfidenceDrop`."""

from __future__ import annotations

from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import (
    check_classes,
    check_percent,
    constant_maps,
    finite_maps,
    finite_rows,
    maps_at_input,
    pixel_ranks,
    probabilities,
    safe_ratio,
    top_count,
)


class ConfidenceDrop(CAMMetric):
    r"""Confidence Drop (CASE): the class probability lost when the map's top pixels are ablated.

    CASE's fidelity test (Williamson, Dwyer and Ji, "CASE: Contrastive Activation for
    Saliency Estimation", Sec. V-C and Table III): if the map found the evidence the model
    uses, removing the pixels it ranks highest should lower the model's confidence in the
    explained class. With ``T_k(S)`` the ``int(top_k / 100 * H W)`` most salient pixels
    of the map (upsampled bilinearly to the input when smaller; ties broken by the lower
    flat pixel index) and ``x^{(k)}`` the image with those pixels set to ``baseline`` in
    every channel:

    .. math::

        \mathrm{CD}_i = \frac{[p_i^c - \tilde p_i^c]_+}{p_i^c},
        \qquad p_i^c = \mathrm{softmax}(f(x_i))_c,
        \quad \tilde p_i^c = \mathrm{softmax}(f(x_i^{(k)}))_c

    with ``c`` = ``y_batch``. CASE ablates in the model's *normalised* input space, where
    0 is the mean colour, and keeps only correctly classified images, explained for their
    predicted class; pass inputs and labels accordingly. Compare two explainers on the
    same images with :func:`paired_ttest`. Two batched forwards per batch.

    Scores: one per example, a fraction in [0, 1] as in CASE's Table III (not percent);
    higher is better (``ScoreDirection.HIGHER``). A probability that underflows to 0 gives
    0.

    Degenerate maps: a constant map (all zero included) ranks no pixel above another and
    scores NaN, as does a map holding NaN or infinity; the rest of the batch is unaffected.

    References:
        Williamson, Dwyer and Ji, "CASE: Contrastive Activation for Saliency Estimation";
        official code ``dwil2444/case-saliency``.

    Args:
        top_k: Percentage of pixels ablated, in (0, 100] (CASE: 50).
        baseline: The value ablated pixels take, in the model's input space (CASE: 0).
        reproduce_transpose_bug: Ablate the transposed pixel set, as CASE's official run
            does (its ``(row, col)`` pairs are read as ``(x, y)``); square images only.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import ConfidenceDrop
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> scores = ConfidenceDrop(top_k=50)(model, x, np.array([0, 1]), a_batch=maps)
        >>> np.round(scores, 3).tolist()
        [0.011, 0.048]
    """

    name = "Confidence Drop"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "confidence-drop"
    short_name = "Conf. drop"

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
        before = probabilities(model, x_batch, "softmax", self.batch_scores)
        check_classes(y_batch, before.shape[1])
        after = probabilities(model, ablated, "softmax", self.batch_scores)
        rows = np.arange(len(x_batch))
        p, p_ablated = before[rows, y_batch], after[rows, y_batch]
        scores = safe_ratio(np.maximum(p - p_ablated, 0.0), p)
        valid &= finite_rows(before) & finite_rows(after)
        return np.where(valid, scores, np.nan).tolist()
