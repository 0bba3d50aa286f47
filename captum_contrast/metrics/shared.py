"""The masking metrics from shared forwards: :func:`masking_scores`.

Average Drop, Gain and Increase all read ``p = softmax(f(x))_c`` and
``o = softmax(f(s * x))_c``; as three Quantus metrics they run those two forwards three
times. :func:`masking_scores` runs each once per batch and returns every score, through the
same preprocessing (:class:`captum_contrast.metrics.CAMMetric`), batches and helpers as the
metric classes, so its numbers are theirs. Likewise for MinMax-CAM's multi-label family
(IC, AD, ADO, AR, ARO): one forward of ``x``, one of ``M * x`` and one of ``(1 - M) * x``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import Activation, check_normalization, masked_variants
from captum_contrast.metrics.masking import (
    GAIN_EPS,
    AverageDrop,
    AverageGain,
    AverageIncrease,
    drop_scores,
    gain_scores,
    increase_scores,
)
from captum_contrast.metrics.multilabel import (
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
    increases,
    others_drops,
    own_drops,
)
from captum_contrast.normalization import Normalization

SINGLE_LABEL: tuple[type[CAMMetric], ...] = (AverageDrop, AverageGain, AverageIncrease)
"""The single-label masking metrics :func:`masking_scores` computes, keyed by ``short_name``."""
MULTI_LABEL: tuple[type[CAMMetric], ...] = (
    MultiLabelIncreaseInConfidence,
    MultiLabelAverageDrop,
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
)
"""The multi-label masking metrics :func:`masking_scores` computes with ``multilabel=True``."""


def masking_scores(
    model: Any,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    a_batch: np.ndarray,
    *,
    multilabel: bool = False,
    threshold: float = 0.5,
    mask_normalization: Normalization = "range",
    eps: float = GAIN_EPS,
    channel_first: bool | None = None,
    model_predict_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-example masking scores, each model forward run once per batch.

    Single-label (default): ``{"AD", "AG", "AI"}`` equal to :class:`AverageDrop`,
    :class:`AverageGain` and :class:`AverageIncrease` called with the same arguments, from
    two forwards per batch (``x`` and ``s * x``) instead of six. ``multilabel=True``:
    ``{"IC", "AD", "ADO", "AR", "ARO"}`` equal to the MinMax-CAM metric classes, from three
    forwards per batch (``x``, ``M * x``, ``(1 - M) * x``) instead of ten.

    Args:
        model: A torch model in eval mode returning logits ``(B, classes)``.
        x_batch: Images ``(B, C, H, W)`` (or channel-last), 0 meaning "removed".
        y_batch: The class each map explains, ``(B,)``.
        a_batch: Maps ``(B, 1, h, w)`` or ``(B, h, w)`` at most the input's size.
        multilabel: Sigmoid outputs and the multi-label family instead of softmax and
            AD/AG/AI.
        threshold: The multi-label detection threshold, in [0, 1).
        mask_normalization: ``"range"`` (default), ``"max"`` or ``"sigmoid"``.
        eps: Average Gain's ``eps``, >= 0.
        channel_first, model_predict_kwargs, device, batch_size: As for the metric classes.

    Returns:
        Per-example scores in percent, keyed by the metrics' ``short_name``; ``NaN`` where
        a map holds NaN or infinity.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageGain, masking_scores
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))
        >>> scores = masking_scores(model, x, np.array([0, 1]), maps)
        >>> sorted(scores), np.round(scores["AG"], 2).tolist()
        (['AD', 'AG', 'AI'], [1.97, 0.49])
        >>> scores["AG"].tolist() == AverageGain()(model, x, np.array([0, 1]), a_batch=maps)
        True
    """
    if a_batch is None:
        raise ValueError("`a_batch` is required: masking_scores scores given maps")
    metric = _SharedMasking(multilabel, threshold, mask_normalization, eps)
    rows: list[Any] = metric(  # one dict of scores per example
        model,
        x_batch,
        y_batch,
        a_batch=a_batch,
        channel_first=channel_first,
        model_predict_kwargs=model_predict_kwargs,
        device=device,
        batch_size=batch_size,
    )
    keys = [cls.short_name for cls in (MULTI_LABEL if multilabel else SINGLE_LABEL)]
    return {key: np.array([row[key] for row in rows], dtype=np.float64) for key in keys}


class _SharedMasking(CAMMetric):
    """The metric classes' Quantus path, with one dict of scores per example.

    Not a metric of its own (it is in no registry): it exists so that
    :func:`masking_scores` checks, batches and wraps the model exactly as they do.
    """

    name = "Masking scores"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "masking-scores"
    short_name = "masking"

    def __init__(
        self, multilabel: bool, threshold: float, mask_normalization: Normalization, eps: float
    ) -> None:
        super().__init__(disable_warnings=True)
        if not 0 <= threshold < 1:
            raise ValueError(f"`threshold` must be a probability in [0, 1), got {threshold!r}")
        if not eps >= 0:
            raise ValueError(f"`eps` must be >= 0, got {eps!r}")
        # multilabel is a class attribute of the metrics; this one helper serves both kinds
        self.multilabel = bool(multilabel)  # type: ignore[misc]
        self.threshold, self.eps = float(threshold), float(eps)
        self.mask_normalization = check_normalization(mask_normalization)

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[dict[str, float]]:
        activation: Activation = "sigmoid" if self.multilabel else "softmax"
        complements = (False, True) if self.multilabel else (False,)
        original, variants, valid = masked_variants(
            model, x_batch, y_batch, a_batch, self.mask_normalization, activation, complements
        )
        if self.multilabel:
            scores = self._multilabel(original, variants[0], variants[1], y_batch)
        else:
            rows = np.arange(len(x_batch))
            p, o = original[rows, y_batch], variants[0][rows, y_batch]
            scores = {
                "AD": drop_scores(p, o),
                "AG": gain_scores(p, o, self.eps),
                "AI": increase_scores(p, o),
            }
        scores = {key: np.where(valid, value, np.nan) for key, value in scores.items()}
        return [{key: float(value[i]) for key, value in scores.items()} for i in range(len(valid))]

    def _multilabel(
        self, original: np.ndarray, kept: np.ndarray, removed: np.ndarray, labels: np.ndarray
    ) -> dict[str, np.ndarray]:
        # Multiplied by 100 after the ratio, as the classes do, so the floats are theirs.
        return {
            "IC": 100 * increases(original, kept, labels),
            "AD": 100 * own_drops(original, kept, labels),
            "ADO": 100 * others_drops(original, kept, labels, self.threshold),
            "AR": 100 * own_drops(original, removed, labels),
            "ARO": 100 * others_drops(original, removed, labels, self.threshold),
        }
