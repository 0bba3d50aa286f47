"""The masking metrics from shared forwards: :func:`score_masking` and :func:`masking_scores`.

Average Drop, Gain and Increase all read ``p = softmax(f(x))_c`` and
``o = softmax(f(s * x))_c``; as three Quantus metrics they run those two forwards three
times. :func:`masking_scores` runs each once per batch and returns every score, through the
same preprocessing (:class:`captum_contrast.metrics.CAMMetric`), batches and helpers as the
metric classes, so its numbers are theirs. Likewise for MinMax-CAM's multi-label family
(IC, AD, ADO, AR, ARO): one forward of ``x``, one of ``M * x`` and one of ``(1 - M) * x``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._masking import MaskingMetric, run_masking
from captum_contrast.metrics.masking import GAIN_EPS, AverageDrop, AverageGain, AverageIncrease
from captum_contrast.metrics.multilabel import (
    AverageDropOfOthers,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
)
from captum_contrast.metrics.retention import AverageRetention, AverageRetentionOfOthers
from captum_contrast.normalization import Normalization
from captum_contrast.scores import ScoresLike

SINGLE_LABEL: tuple[type[MaskingMetric], ...] = (AverageDrop, AverageGain, AverageIncrease)
"""The single-label masking metrics :func:`masking_scores` computes, keyed by ``short_name``."""
MULTI_LABEL: tuple[type[MaskingMetric], ...] = (
    MultiLabelIncreaseInConfidence,
    MultiLabelAverageDrop,
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
)
"""The multi-label masking metrics :func:`masking_scores` computes with ``multilabel=True``."""


def score_masking(
    metrics: Sequence[MaskingMetric],
    model: Any,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    a_batch: np.ndarray,
    *,
    scores: ScoresLike = None,
    original_scores: np.ndarray | None = None,
    channel_first: bool | None = None,
    model_predict_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-example scores of several masking metrics, each input variant forwarded once.

    The numbers are those of calling each metric on the same arguments: the same checks,
    batches and model wrapping (Quantus's path), but the unmasked input and each masked
    variant (``s * x``, ``(1 - s) * x``) are forwarded once per batch for all of them.

    Args:
        metrics: Masking metric instances (:class:`~captum_contrast.metrics.AverageDrop`,
            the multi-label family, ...) sharing one ``mask_normalization``.
        model, x_batch, y_batch, a_batch: As for the metric classes.
        scores: How the model's output is read (:mod:`captum_contrast.scores`); a
            per-example selection follows the batches.
        original_scores: The unmasked inputs' ``(N, C)`` class scores, when the caller
            already has them (e.g. from the forward that computed the maps): the unmasked
            forward is then skipped.
        channel_first, model_predict_kwargs, device, batch_size: As for the metric classes.

    Returns:
        ``{short_name: (N,) scores}``; NaN where a map or a forward is not finite.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageDrop, AverageIncrease, score_masking
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 4 * 4, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 4, 4), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))
        >>> got = score_masking([AverageDrop(), AverageIncrease()], model, x, np.array([0, 1]), maps)
        >>> got["AD"].tolist() == AverageDrop()(model, x, np.array([0, 1]), a_batch=maps)
        True
    """
    if a_batch is None:
        raise ValueError("`a_batch` is required: score_masking scores given maps")
    metrics = list(metrics)
    if not metrics or not all(isinstance(metric, MaskingMetric) for metric in metrics):
        raise TypeError(
            "`metrics` must be a non-empty sequence of masking metric instances, e.g. "
            f"[AverageDrop(), AverageGain()]; got {[type(m).__name__ for m in metrics]}"
        )
    if original_scores is not None:
        original_scores = np.asarray(original_scores, dtype=np.float64)
        if original_scores.ndim != 2 or len(original_scores) != len(x_batch):
            raise ValueError(
                f"`original_scores` must be ({len(x_batch)}, classes), one row per example, "
                f"got shape {original_scores.shape}"
            )
    runner = _SharedMasking(metrics, original_scores)
    rows: list[Any] = runner(  # one dict of scores per example
        model,
        x_batch,
        y_batch,
        a_batch=a_batch,
        channel_first=channel_first,
        model_predict_kwargs=model_predict_kwargs,
        device=device,
        batch_size=batch_size,
        scores=scores,
    )
    keys = [metric.short_name for metric in metrics]
    return {key: np.array([row[key] for row in rows], dtype=np.float64) for key in keys}


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
    scores: ScoresLike = None,
    original_scores: np.ndarray | None = None,
    channel_first: bool | None = None,
    model_predict_kwargs: dict[str, Any] | None = None,
    device: str | None = None,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Per-example masking scores of a whole family, each model forward run once per batch.

    Single-label (default): ``{"AD", "AG", "AI"}`` equal to :class:`AverageDrop`,
    :class:`AverageGain` and :class:`AverageIncrease` called with the same arguments, from
    two forwards per batch (``x`` and ``s * x``) instead of six. ``multilabel=True``:
    ``{"IC", "AD", "ADO", "AR", "ARO"}`` equal to the MinMax-CAM metric classes, from three
    forwards per batch (``x``, ``M * x``, ``(1 - M) * x``) instead of ten. It is
    :func:`score_masking` over the family.

    Args:
        model: A torch model in eval mode; its output is read by ``scores``.
        x_batch: Images ``(B, C, H, W)`` (or channel-last), 0 meaning "removed".
        y_batch: The class each map explains, ``(B,)``.
        a_batch: Maps ``(B, 1, h, w)`` or ``(B, h, w)`` at most the input's size.
        multilabel: Sigmoid outputs and the multi-label family instead of softmax and
            AD/AG/AI.
        threshold: The multi-label detection threshold, in [0, 1).
        mask_normalization: ``"range"`` (default), ``"max"`` or ``"sigmoid"``.
        eps: Average Gain's ``eps``, >= 0.
        scores, original_scores: See :func:`score_masking`.
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
    if not 0 <= threshold < 1:
        raise ValueError(f"`threshold` must be a probability in [0, 1), got {threshold!r}")
    if not eps >= 0:
        raise ValueError(f"`eps` must be >= 0, got {eps!r}")
    if multilabel:
        metrics: list[MaskingMetric] = [
            cls(threshold=threshold, mask_normalization=mask_normalization) for cls in MULTI_LABEL
        ]
    else:
        metrics = [
            AverageDrop(mask_normalization=mask_normalization),
            AverageGain(mask_normalization=mask_normalization, eps=eps),
            AverageIncrease(mask_normalization=mask_normalization),
        ]
    return score_masking(
        metrics,
        model,
        x_batch,
        y_batch,
        a_batch,
        scores=scores,
        original_scores=original_scores,
        channel_first=channel_first,
        model_predict_kwargs=model_predict_kwargs,
        device=device,
        batch_size=batch_size,
    )


class _SharedMasking(CAMMetric):
    """Several masking metrics' Quantus path, with one dict of scores per example.

    Not a metric of its own (it is in no registry): it exists so that
    :func:`score_masking` checks, batches and wraps the model exactly as the metrics do.
    The given unmasked scores travel with the batches as ``custom_batch``'s companion.
    """

    name = "Masking scores"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "masking-scores"
    short_name = "masking"

    def __init__(self, metrics: list[MaskingMetric], original_scores: np.ndarray | None) -> None:
        super().__init__(disable_warnings=True)
        self.metrics = metrics
        self.original_scores = original_scores

    def custom_preprocess(self, **kwargs: Any) -> dict[str, Any] | None:  # type: ignore[override]
        if self.original_scores is None:
            return None
        return {"original_batch": self.original_scores}

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        original_batch: np.ndarray | None = None,
        **kwargs: Any,
    ) -> list[dict[str, float]]:
        results = run_masking(
            self.metrics, model, x_batch, y_batch, a_batch, self.batch_scores, original_batch
        )
        named = {
            metric.short_name: values for metric, values in zip(self.metrics, results, strict=True)
        }
        return [{key: float(value[i]) for key, value in named.items()} for i in range(len(x_batch))]
