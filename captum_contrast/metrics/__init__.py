"""Evaluation metrics of the four papers as Quantus metrics, with their statistics.

Every metric is a ``quantus.Metric``: numpy in, one score per example out, usable alone
or in ``quantus.evaluate`` beside Quantus's own metrics. :func:`register_with_quantus`
lists them in ``quantus.AVAILABLE_METRICS`` (``captum_contrast`` calls it on import).
"""

from __future__ import annotations

import quantus

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics.class_sensitivity import ClassSensitivity, top_k_agreement
from captum_contrast.metrics.confidence_drop import ConfidenceDrop
from captum_contrast.metrics.explain import explainer, fake_cam
from captum_contrast.metrics.insertion_deletion import Deletion, Insertion, trapezoid
from captum_contrast.metrics.masking import (
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
    detections,
)
from captum_contrast.metrics.stats import (
    harmonic_mean,
    multilabel_macro_scores,
    paired_ttest,
    wilcoxon_below,
)

METRICS: tuple[type[CAMMetric], ...] = (
    AverageDrop,
    AverageIncrease,
    AverageGain,
    MultiLabelIncreaseInConfidence,
    MultiLabelAverageDrop,
    AverageDropOfOthers,
    AverageRetention,
    AverageRetentionOfOthers,
    ClassSensitivity,
    ConfidenceDrop,
    Insertion,
    Deletion,
)
"""Every metric class of the package, in the order they are registered."""


def register_with_quantus() -> None:
    """Add every metric to ``quantus.AVAILABLE_METRICS`` under its evaluation category.

    Keys are the metrics' ``name`` attributes, e.g. ``"Average Drop"`` under
    ``"Faithfulness"`` and ``"Class Sensitivity"`` under ``"Randomisation"`` (with Random
    Logit). Calling it again changes nothing; a name already taken by another project's
    metric raises ``ValueError`` rather than replacing it.

    Example:
        >>> import quantus
        >>> from captum_contrast.metrics import register_with_quantus
        >>> register_with_quantus()
        >>> "Class Sensitivity" in quantus.available_metrics()["Randomisation"]
        True
    """
    registry = quantus.AVAILABLE_METRICS
    for metric in METRICS:
        category = metric.evaluation_category.value
        if category not in registry:
            raise ValueError(f"Quantus has no metric category {category!r} for {metric.__name__}")
        present = registry[category].get(metric.name)
        if (
            present is not None
            and present is not metric
            and (
                present.__module__,
                present.__qualname__,
            )
            != (metric.__module__, metric.__qualname__)
        ):
            raise ValueError(
                f"quantus.AVAILABLE_METRICS[{category!r}][{metric.name!r}] is already "
                f"{present.__module__}.{present.__qualname__}"
            )
        registry[category][metric.name] = metric  # type: ignore[index]


__all__ = [
    "METRICS",
    "AverageDrop",
    "AverageDropOfOthers",
    "AverageGain",
    "AverageIncrease",
    "AverageRetention",
    "AverageRetentionOfOthers",
    "CAMMetric",
    "ClassSensitivity",
    "ConfidenceDrop",
    "Deletion",
    "Insertion",
    "MultiLabelAverageDrop",
    "MultiLabelIncreaseInConfidence",
    "detections",
    "drop_scores",
    "explainer",
    "fake_cam",
    "gain_scores",
    "harmonic_mean",
    "increase_scores",
    "multilabel_macro_scores",
    "paired_ttest",
    "register_with_quantus",
    "top_k_agreement",
    "trapezoid",
    "wilcoxon_below",
]
