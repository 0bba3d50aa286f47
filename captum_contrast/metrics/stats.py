"""Statistics over per-example scores: CASE's tests and MinMax-CAM's macro F1 aggregation."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeAlias

import numpy as np
from scipy import stats

Alternative = Literal["two-sided", "less", "greater"]
Scores: TypeAlias = Sequence[float] | np.ndarray | Mapping[Any, float]


def _drop_nan(values: np.ndarray, name: str) -> np.ndarray:
    missing = np.isnan(values).reshape(len(values), -1).any(axis=1)
    if missing.any():
        warnings.warn(
            f"{name}: {int(missing.sum())} of {len(values)} scores are NaN and were left out",
            RuntimeWarning,
            stacklevel=3,
        )
    return values[~missing]


def wilcoxon_below(agreements: Sequence[float] | np.ndarray, threshold: float = 50.0) -> float:
    """One-sided Wilcoxon signed-rank p-value for "the median agreement is below ``threshold``".

    ``scipy.stats.wilcoxon(agreements - threshold, alternative="less")`` with scipy's
    defaults (``zero_method="wilcox"``, ``correction=False``, ``method="auto"``), as CASE
    does; H0 is median >= threshold, rejected when p < 0.05. CASE's paper uses 50 (its code
    70). NaN agreements (all-zero maps, see :class:`ClassSensitivity`) are left out with a
    warning.

    Example:
        >>> from captum_contrast.metrics import wilcoxon_below
        >>> round(wilcoxon_below([10.0, 20.0, 30.0, 45.0, 60.0, 5.0]), 4)
        0.0469
    """
    values = _drop_nan(np.asarray(agreements, dtype=np.float64).ravel(), "wilcoxon_below")
    if values.size == 0:
        raise ValueError("`agreements` holds no finite score")
    return float(stats.wilcoxon(values - threshold, alternative="less").pvalue)


def paired_ttest(
    scores: Scores, other_scores: Scores, alternative: Alternative = "two-sided"
) -> Any:
    """Paired t-test of two explainers' per-example scores (``scipy.stats.ttest_rel``).

    Pairs are formed by example: two equal-length sequences are paired by position (the
    same ``x_batch`` for both), two mappings ``example_id -> score`` by their shared keys.
    CASE's code pairs by rank over different images and tests two-sided; pairing by image
    is the sound reading. Pairs holding a NaN are left out with a warning.

    Returns:
        scipy's result, with ``statistic``, ``pvalue`` and ``df``.

    Example:
        >>> from captum_contrast.metrics import paired_ttest
        >>> result = paired_ttest([0.3, 0.5, 0.4, 0.6], [0.2, 0.45, 0.41, 0.5], alternative="greater")
        >>> round(float(result.pvalue), 4)
        0.0527
    """
    if isinstance(scores, Mapping) != isinstance(other_scores, Mapping):
        raise TypeError("`scores` and `other_scores` must both be sequences or both mappings")
    if isinstance(scores, Mapping):
        assert isinstance(other_scores, Mapping)
        shared = [key for key in scores if key in other_scores]
        unmatched = len(scores) + len(other_scores) - 2 * len(shared)
        if unmatched:
            warnings.warn(
                f"paired_ttest: {unmatched} examples appear in only one mapping and were left out",
                RuntimeWarning,
                stacklevel=2,
            )
        first = np.array([scores[key] for key in shared], dtype=np.float64)
        second = np.array([other_scores[key] for key in shared], dtype=np.float64)
    else:
        first = np.asarray(scores, dtype=np.float64).ravel()
        second = np.asarray(other_scores, dtype=np.float64).ravel()
        if first.shape != second.shape:
            raise ValueError(
                f"`scores` and `other_scores` must score the same examples, got "
                f"{len(first)} and {len(second)} scores"
            )
    pairs = _drop_nan(np.stack([first, second], axis=1), "paired_ttest") if first.size else None
    if pairs is None or len(pairs) < 2:
        raise ValueError("paired_ttest needs at least two complete pairs of scores")
    return stats.ttest_rel(pairs[:, 0], pairs[:, 1], alternative=alternative)


def harmonic_mean(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``2ab / (a + b)``, with a zero denominator replaced by 1 (MinMax-CAM's code).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import harmonic_mean
        >>> harmonic_mean(np.array([0.5, 0.2, 0.0]), np.array([0.5, 0.8, 0.0])).round(3).tolist()
        [0.5, 0.32, 0.0]
    """
    total = first + second
    return 2 * first * second / np.where(total == 0, 1.0, total)


def multilabel_macro_scores(
    scores: Mapping[str, Sequence[float] | np.ndarray], labels: Sequence[int] | np.ndarray
) -> dict[str, float]:
    """MinMax-CAM's aggregation: per-class means, then the unweighted mean over classes.

    Args:
        scores: Per-example scores by metric name, e.g. ``{"AD": ..., "ARO": ...}`` from
            :class:`MultiLabelAverageDrop` and :class:`AverageRetentionOfOthers` on the same
            detections. Names ``"IC"``, ``"AD"``, ``"ADO"``, ``"AR"``, ``"ARO"`` enable F1.
        labels: The label each example explains (``y_batch``).

    Returns:
        The macro average of every score, plus ``"F1-"`` = HM(AD, ARO) when both are given
        and ``"F1+"`` = HM(AR, ADO) when both are given, each computed per class and then
        averaged (which differs from the HM of the macro averages). Classes without
        examples do not count; NaN scores are skipped within a class.

    Example:
        >>> from captum_contrast.metrics import multilabel_macro_scores
        >>> out = multilabel_macro_scores({"AD": [30, 10, 50], "ARO": [2, 4, 0]}, [0, 0, 1])
        >>> {name: round(value, 4) for name, value in out.items()}
        {'AD': 35.0, 'ARO': 1.5, 'F1-': 2.6087}
    """
    label_array = np.asarray(labels)
    if label_array.ndim != 1 or not np.issubdtype(label_array.dtype, np.integer):
        raise ValueError(
            f"`labels` must be a 1-D integer array, got {label_array.dtype} {label_array.shape}"
        )
    classes = np.unique(label_array)
    per_class: dict[str, np.ndarray] = {}
    for name, values in scores.items():
        array = np.asarray(values, dtype=np.float64)
        if array.shape != label_array.shape:
            raise ValueError(
                f"`scores[{name!r}]` has {array.size} scores for {label_array.size} labels"
            )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a class whose scores are all NaN
            per_class[name] = np.array([np.nanmean(array[label_array == c]) for c in classes])
    result = {name: _nanmean(values) for name, values in per_class.items()}
    if "AD" in per_class and "ARO" in per_class:
        result["F1-"] = _nanmean(harmonic_mean(per_class["AD"], per_class["ARO"]))
    if "AR" in per_class and "ADO" in per_class:
        result["F1+"] = _nanmean(harmonic_mean(per_class["AR"], per_class["ADO"]))
    return result


def _nanmean(values: np.ndarray) -> float:
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")
