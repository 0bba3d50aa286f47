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
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise TypeError(f"`threshold` must be a number, got {type(threshold).__name__}")
    if not np.isfinite(threshold):
        raise ValueError(f"`threshold` must be finite, got {threshold!r}")
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
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(
            f"`alternative` must be 'two-sided', 'less' or 'greater', got {alternative!r}"
        )
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
        first = _numbers([scores[key] for key in shared], "scores")
        second = _numbers([other_scores[key] for key in shared], "other_scores")
    else:
        first = _numbers(scores, "scores").ravel()
        second = _numbers(other_scores, "other_scores").ravel()
        if first.shape != second.shape:
            raise ValueError(
                f"`scores` and `other_scores` must score the same examples, got "
                f"{len(first)} and {len(second)} scores"
            )
    pairs = _drop_nan(np.stack([first, second], axis=1), "paired_ttest") if first.size else None
    if pairs is None or len(pairs) < 2:
        raise ValueError("paired_ttest needs at least two complete pairs of scores")
    return stats.ttest_rel(pairs[:, 0], pairs[:, 1], alternative=alternative)


def _numbers(values: Any, name: str) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"`{name}` must hold numbers (one score per example)") from None


def harmonic_mean(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """``2ab / (a + b)``, with a zero denominator replaced by 1 (MinMax-CAM's code).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import harmonic_mean
        >>> harmonic_mean(np.array([0.5, 0.2, 0.0]), np.array([0.5, 0.8, 0.0])).round(3).tolist()
        [0.5, 0.32, 0.0]
    """
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    if first.shape != second.shape:
        raise ValueError(
            f"`first` and `second` must have the same shape, got {first.shape} and {second.shape}"
        )
    for name, values in (("first", first), ("second", second)):
        if (values < 0).any():  # the mean of rates or percentages; NaN passes
            raise ValueError(f"`{name}` must be non-negative, got {values.tolist()}")
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


def bootstrap_interval(
    values: Sequence[float] | np.ndarray,
    statistic: Any = None,
    *,
    confidence: float = 0.95,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[Any, Any]:
    """Percentile bootstrap interval of ``statistic`` (default: the mean) over ``values``.

    ``resamples`` draws of ``len(values)`` examples with replacement from
    ``numpy.random.default_rng(seed)``, so the interval is the same on every run; the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles of the resampled
    statistics (NumPy's default linear interpolation) are the bounds. With the mean, NaN
    values are left out first (as the tables' means leave them out). ``statistic``, when
    given, maps an integer index array (one resample of ``range(len(values))``) to a
    number or to a 1-D array of numbers (then both bounds are arrays), for aggregates that
    are not a plain mean (the multi-label macro average); resamples where it gives NaN are
    left out. NaN bounds when nothing is left.

    Example:
        >>> from captum_contrast.metrics.stats import bootstrap_interval
        >>> low, high = bootstrap_interval([1.0, 2.0, 3.0, 4.0, 10.0])
        >>> round(low, 2), round(high, 2)
        (1.8, 7.0)
    """
    if not 0 < confidence < 1:
        raise ValueError(f"`confidence` must lie in (0, 1), got {confidence!r}")
    if resamples < 1:
        raise ValueError(f"`resamples` must be >= 1, got {resamples!r}")
    array = np.asarray(values, dtype=np.float64).ravel()
    if statistic is None:
        array = array[~np.isnan(array)]
    if array.size == 0:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    drawn: list[Any] = []
    # Chunks keep the index matrix small on 50 000 examples.
    chunk = max(1, min(resamples, 2_000_000 // array.size))
    for start in range(0, resamples, chunk):
        indices = rng.integers(0, array.size, size=(min(chunk, resamples - start), array.size))
        if statistic is None:
            drawn.extend(array[indices].mean(axis=1))
        else:
            drawn.extend(np.asarray(statistic(row), dtype=np.float64) for row in indices)
    tail = (1 - confidence) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a column whose resamples are all NaN
        low, high = np.nanquantile(np.asarray(drawn), [tail, 1 - tail], axis=0)
    if np.ndim(low) == 0:
        return float(low), float(high)
    return low, high


def bootstrap_mean_curve(
    curves: np.ndarray, *, confidence: float = 0.95, resamples: int = 1000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The mean of per-example curves ``(N, steps)`` with its pointwise bootstrap interval.

    Rows holding a NaN (an example whose map gave no order) are left out; the examples are
    resampled together (one draw of rows for the whole curve), seeded like
    :func:`bootstrap_interval`. Returns ``(mean, low, high)``, each ``(steps,)``.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics.stats import bootstrap_mean_curve
        >>> mean, low, high = bootstrap_mean_curve(np.array([[1.0, 0.5], [1.0, 0.1], [1.0, 0.3]]))
        >>> mean.round(2).tolist(), low.round(2).tolist()[0], bool(low[1] <= 0.3 <= high[1])
        ([1.0, 0.3], 1.0, True)
    """
    array = np.asarray(curves, dtype=np.float64)
    if array.ndim != 2:
        raise ValueError(f"`curves` must be (examples, steps), got shape {array.shape}")
    array = array[~np.isnan(array).any(axis=1)]
    if len(array) == 0:
        empty = np.full(array.shape[1], np.nan)
        return empty, empty.copy(), empty.copy()
    rng = np.random.default_rng(seed)
    drawn = []
    chunk = max(1, min(resamples, 2_000_000 // len(array)))
    for start in range(0, resamples, chunk):
        rows = rng.integers(0, len(array), size=(min(chunk, resamples - start), len(array)))
        counts = np.stack([np.bincount(row, minlength=len(array)) for row in rows])
        drawn.append(counts @ array / len(array))
    tail = (1 - confidence) / 2
    low, high = np.quantile(np.concatenate(drawn), [tail, 1 - tail], axis=0)
    return array.mean(axis=0), low, high


def holm(pvalues: Sequence[float] | np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error), in the input's order.

    The ``i``-th smallest of the ``m`` p-values becomes ``max_{j <= i} min(1, (m - j + 1)
    p_(j))``; NaN p-values stay NaN and do not count in ``m``.

    Example:
        >>> from captum_contrast.metrics.stats import holm
        >>> holm([0.01, 0.04, 0.03, float("nan")]).round(2).tolist()
        [0.03, 0.06, 0.06, nan]
    """
    p = np.asarray(pvalues, dtype=np.float64).ravel()
    adjusted = np.full_like(p, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    running = 0.0
    for rank, index in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[index]))
        adjusted[index] = running
    return adjusted


def paired_wilcoxon(
    scores: Sequence[float] | np.ndarray, baseline: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """Two-sided Wilcoxon signed-rank test of paired scores, with its effect size.

    Pairs are by position; pairs holding a NaN are left out. ``scipy.stats.wilcoxon`` on
    ``scores - baseline`` with its defaults (``zero_method="wilcox"``: zero differences
    dropped); up to :data:`EXACT_PAIRS` non-zero differences the p-value is the exact one,
    enumerated here, so it does not depend on the scipy release. Returns ``pairs`` (complete pairs), ``difference`` (mean of
    ``scores - baseline``), ``effect`` (the matched-pairs rank-biserial correlation
    ``(R+ - R-) / (R+ + R-)`` over the non-zero differences, in [-1, 1]: positive when
    ``scores`` tend to be higher) and ``pvalue``. With no non-zero difference there is
    nothing to test: ``effect`` 0 and ``pvalue`` NaN.

    Example:
        >>> from captum_contrast.metrics.stats import paired_wilcoxon
        >>> out = paired_wilcoxon([3.0, 5.0, 4.0, 6.0, 7.0], [1.0, 2.0, 5.0, 2.0, 1.0])
        >>> out["pairs"], out["difference"], round(out["effect"], 3), round(out["pvalue"], 4)
        (5, 2.8, 0.867, 0.125)
    """
    first = np.asarray(scores, dtype=np.float64).ravel()
    second = np.asarray(baseline, dtype=np.float64).ravel()
    if first.shape != second.shape:
        raise ValueError(
            f"`scores` and `baseline` must score the same examples, got {first.size} and "
            f"{second.size} scores"
        )
    complete = ~(np.isnan(first) | np.isnan(second))
    differences = first[complete] - second[complete]
    result = {
        "pairs": int(complete.sum()),
        "difference": float(differences.mean()) if differences.size else float("nan"),
        "effect": 0.0,
        "pvalue": float("nan"),
    }
    nonzero = differences[differences != 0]
    if nonzero.size == 0:
        return result
    ranks = stats.rankdata(np.abs(nonzero))
    positive, negative = ranks[nonzero > 0].sum(), ranks[nonzero < 0].sum()
    result["effect"] = float((positive - negative) / (positive + negative))
    if nonzero.size <= EXACT_PAIRS:
        result["pvalue"] = _exact_signed_rank_pvalue(ranks, positive)
    else:
        result["pvalue"] = float(stats.wilcoxon(differences).pvalue)
    return result


EXACT_PAIRS = 16
"""Up to this many non-zero differences the p-value enumerates every sign assignment.

scipy's ``method="auto"`` picks the exact or the normal approximation by rules that changed
between releases (scipy 1.10 falls back to the approximation when zero differences were
dropped), so the same scores gave different p-values on different installations; the
enumeration gives one answer everywhere (ties keep their average ranks)."""


def _exact_signed_rank_pvalue(ranks: np.ndarray, positive: float) -> float:
    """Two-sided exact p-value of the signed-rank sum ``positive`` over all ``2**n`` signs."""
    count = ranks.size
    signs = (np.arange(2**count)[:, None] >> np.arange(count)) & 1
    totals = signs @ ranks
    below = float(np.mean(totals <= positive + 1e-9))
    above = float(np.mean(totals >= positive - 1e-9))
    return min(1.0, 2 * min(below, above))
