"""Evaluation metrics of the four papers as Quantus metrics, with their statistics.

Every metric is a ``quantus.Metric``: numpy in, one score per example out, usable alone
or in ``quantus.evaluate`` beside Quantus's own metrics. :func:`register_with_quantus`
lists them in ``quantus.AVAILABLE_METRICS`` (called once, at the end of this module, so
on ``import captum_contrast.metrics``; ``import captum_contrast`` alone does not load
Quantus). Each metric class also carries the attributes the command
line derives its tables from (``cli_name``, ``short_name``, ``multilabel``,
``needs_explain_func``, ``needs_object_masks``; see :class:`CAMMetric`).
"""

from __future__ import annotations

import warnings

import quantus

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._masking import MaskingMetric, run_masking
from captum_contrast.metrics.baselines import random_cam, randomisation_scores
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
from captum_contrast.metrics.mass_on_object import MassOnObject
from captum_contrast.metrics.multilabel import (
    AverageDropOfOthers,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
    MultiLabelMasking,
    detections,
)
from captum_contrast.metrics.retention import AverageRetention, AverageRetentionOfOthers
from captum_contrast.metrics.shared import masking_scores, score_masking
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
    MassOnObject,
)
"""Every metric class of the package, in the order they are registered."""


def register_with_quantus() -> None:
    """Add every metric to ``quantus.AVAILABLE_METRICS`` under its evaluation category.

    Keys are the metrics' ``name`` attributes, e.g. ``"Average Drop"`` under
    ``"Faithfulness"``, ``"Class Sensitivity"`` under ``"Randomisation"`` (with Random
    Logit) and ``"Mass on Object"`` under ``"Localisation"``. Calling it again changes
    nothing. It never raises, so ``import captum_contrast.metrics`` (which calls it) cannot fail
    here: a key already held by another project's class is left to that class, and the
    metric is skipped with a ``UserWarning`` naming the key and the class holding it (as is
    a category this Quantus version lacks). The metric classes work the same unregistered.

    Example:
        >>> import quantus
        >>> from captum_contrast.metrics import register_with_quantus
        >>> register_with_quantus()
        >>> "Class Sensitivity" in quantus.available_metrics()["Randomisation"]
        True
        >>> "Mass on Object" in quantus.available_metrics()["Localisation"]
        True
    """
    registry = quantus.AVAILABLE_METRICS
    for metric in METRICS:
        category = metric.evaluation_category.value
        if category not in registry:
            warnings.warn(
                f"Quantus has no metric category {category!r}: {metric.__name__} is not "
                "registered in quantus.AVAILABLE_METRICS",
                UserWarning,
                stacklevel=2,
            )
            continue
        present = registry[category].get(metric.name)
        if present is not None and not _same_class(present, metric):
            warnings.warn(
                f"quantus.AVAILABLE_METRICS[{category!r}][{metric.name!r}] is already "
                f"{present.__module__}.{present.__qualname__}; "
                f"{metric.__module__}.{metric.__qualname__} is not registered under that key",
                UserWarning,
                stacklevel=2,
            )
            continue
        registry[category][metric.name] = metric  # type: ignore[index]


def _same_class(present: object, metric: type) -> bool:
    # The same class, or the same class from a reloaded module.
    return present is metric or (
        getattr(present, "__module__", None),
        getattr(present, "__qualname__", None),
    ) == (metric.__module__, metric.__qualname__)


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
    "MaskingMetric",
    "MassOnObject",
    "MultiLabelAverageDrop",
    "MultiLabelIncreaseInConfidence",
    "MultiLabelMasking",
    "detections",
    "drop_scores",
    "explainer",
    "fake_cam",
    "gain_scores",
    "harmonic_mean",
    "increase_scores",
    "masking_scores",
    "multilabel_macro_scores",
    "paired_ttest",
    "random_cam",
    "randomisation_scores",
    "register_with_quantus",
    "run_masking",
    "score_masking",
    "top_k_agreement",
    "trapezoid",
    "wilcoxon_below",
]

register_with_quantus()
