"""Per-method tables from per-example records: aggregates with intervals, paired tests, files.

Every aggregate carries a seeded 95% percentile bootstrap interval (resampling the
examples, :func:`captum_contrast.metrics.stats.bootstrap_interval`); every other method is
compared with a baseline method per metric by a two-sided Wilcoxon signed-rank test on the
per-example scores paired by (example, class), with the rank-biserial effect size and
Holm's correction over all the tests of the table.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captum_contrast.app.registry import METHODS, METRICS, column
from captum_contrast.metrics import multilabel_macro_scores
from captum_contrast.metrics.stats import bootstrap_interval, holm, paired_wilcoxon

BOOTSTRAP_SEED = 0
BOOTSTRAP_RESAMPLES = 1000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Record:
    """One explained example: dataset index, explained class, method, score per metric."""

    index: int
    label: int
    method: str
    scores: dict[str, float]


def metric_column(metric: str) -> str:
    """The table column of any metric name, the package's or ``quantus:<Class>``."""
    if metric in METRICS:
        return column(metric)
    from captum_contrast.app.quantus_metrics import parse

    return parse(metric).column


def _macro_keys(metrics: Sequence[str]) -> dict[str, str]:
    return {METRICS[m].short_name: m for m in metrics if m in METRICS and METRICS[m].multilabel}


def _f1_columns(keys: dict[str, str]) -> list[str]:
    return [
        name
        for name, needs in (("F1- ↓", ("AD", "ARO")), ("F1+ ↑", ("AR", "ADO")))
        if all(key in keys for key in needs)
    ]


def _aggregate(values: dict[str, np.ndarray], labels: np.ndarray, metrics: Sequence[str]) -> list:
    """One method's aggregates: means (NaN left out), MinMax-CAM's macro scores and F1."""
    keys = _macro_keys(metrics)
    macro = (
        multilabel_macro_scores({key: values[m] for key, m in keys.items()}, labels)
        if keys and labels.size
        else {}
    )
    row: list[float] = []
    for metric in metrics:
        if metric in keys.values():
            row.append(macro.get(METRICS[metric].short_name, np.nan))
        else:
            finite = values[metric][~np.isnan(values[metric])]
            row.append(float(finite.mean()) if finite.size else float("nan"))
    return row + [macro.get(name.split()[0], np.nan) for name in _f1_columns(keys)]


def _method_values(
    records: Sequence[Record], method: str, metrics: Sequence[str]
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    mine = [r for r in records if r.method == method]
    values = {m: np.array([r.scores[m] for r in mine], dtype=np.float64) for m in metrics}
    return values, np.array([r.label for r in mine], dtype=int)


def summarise(
    records: Sequence[Record], methods: Sequence[str], metrics: Sequence[str]
) -> tuple[list[str], list[list[Any]]]:
    """Per-method aggregates as ``(header, rows)``; records must be sorted by example.

    Each metric is aggregated as its paper does: the mean over examples (NaN left out),
    except the multi-label metrics, macro-averaged over classes with F1- = HM(AD, ARO) and
    F1+ = HM(AR, ADO) per class (:func:`captum_contrast.metrics.multilabel_macro_scores`).
    """
    header = ["method", "examples"] + [metric_column(m) for m in metrics]
    header += _f1_columns(_macro_keys(metrics))
    rows = []
    for name in methods:
        values, labels = _method_values(records, name, metrics)
        rows.append([METHODS[name].title, len(labels), *_aggregate(values, labels, metrics)])
    return header, rows


def intervals(
    records: Sequence[Record], methods: Sequence[str], metrics: Sequence[str]
) -> list[list[tuple[float, float]]]:
    """The 95% bootstrap interval of every aggregate of :func:`summarise`, row by row.

    Plain means resample their finite scores; the macro averages and F1 resample the
    method's examples and recompute the macro protocol on each resample. Seeded
    (``BOOTSTRAP_SEED``), so the intervals are the same on every run.
    """
    keys = _macro_keys(metrics)
    macro_columns = [m for m in metrics if m in keys.values()] + _f1_columns(keys)
    macro_keys = [METRICS[c].short_name if c in METRICS else c.split()[0] for c in macro_columns]
    table = []
    for name in methods:
        values, labels = _method_values(records, name, metrics)
        bounds: dict[str, tuple[float, float]] = {}
        if macro_columns and labels.size:

            def statistic(
                rows: np.ndarray, values: dict = values, labels: np.ndarray = labels
            ) -> list[float]:
                out = multilabel_macro_scores(
                    {k: values[m][rows] for k, m in keys.items()}, labels[rows]
                )
                return [out[key] for key in macro_keys]

            low, high = bootstrap_interval(
                labels,
                statistic,
                confidence=CONFIDENCE,
                resamples=BOOTSTRAP_RESAMPLES,
                seed=BOOTSTRAP_SEED,
            )
            bounds = {
                c: (float(lo), float(hi))
                for c, lo, hi in zip(macro_columns, low, high, strict=True)
            }
        row = [
            bounds.get(metric)
            or bootstrap_interval(
                values[metric],
                confidence=CONFIDENCE,
                resamples=BOOTSTRAP_RESAMPLES,
                seed=BOOTSTRAP_SEED,
            )
            for metric in metrics
        ]
        table.append(row + [bounds.get(c, (np.nan, np.nan)) for c in _f1_columns(keys)])
    return table


def paired_tests(
    records: Sequence[Record], methods: Sequence[str], metrics: Sequence[str], baseline: str
) -> tuple[list[str], list[list[Any]]]:
    """Every other method against ``baseline``, per metric: ``(header, rows)``.

    Scores are paired by (example, class); the p-values are Holm-corrected together, one
    family for the whole table.
    """
    if baseline not in methods:
        raise ValueError(f"--baseline {baseline!r} is not among the methods {list(methods)}")
    by_key = {(r.method, r.index, r.label): r for r in records}
    reference = [r for r in records if r.method == baseline]
    rows = []
    for name in methods:
        if name == baseline:
            continue
        for metric in metrics:
            first = [by_key.get((name, r.index, r.label)) for r in reference]
            pairs = [
                (a.scores[metric], r.scores[metric])
                for a, r in zip(first, reference, strict=True)
                if a
            ]
            result = paired_wilcoxon([a for a, _ in pairs], [b for _, b in pairs])
            rows.append(
                [
                    METHODS[name].title,
                    metric_column(metric),
                    result["pairs"],
                    result["difference"],
                    result["effect"],
                    result["pvalue"],
                ]
            )
    adjusted = holm([row[-1] for row in rows])
    rows = [row + [float(p)] for row, p in zip(rows, adjusted, strict=True)]
    header = ["method", "metric", "pairs", "mean difference", "rank-biserial r", "p", "p (Holm)"]
    return header, rows


def _cell(value: Any, bounds: tuple[float, float] | None = None) -> str:
    if not isinstance(value, float):
        return str(value)
    text = f"{value:.3f}"
    if bounds is not None and not np.isnan(bounds[0]):
        text += f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
    return text


def _p_cell(value: float) -> str:
    return "–" if np.isnan(value) else (f"{value:.2e}" if value < 1e-3 else f"{value:.3f}")


def markdown(
    header: list[str],
    rows: list[list[Any]],
    bounds: list[list[tuple[float, float]]] | None = None,
) -> list[str]:
    """The table as markdown lines, each aggregate followed by its interval when given."""
    cells = [
        [row[0], str(row[1])]
        + [_cell(v, bounds[i][j] if bounds else None) for j, v in enumerate(row[2:])]
        for i, row in enumerate(rows)
    ]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in cells]


def tests_markdown(header: list[str], rows: list[list[Any]], baseline_title: str) -> list[str]:
    """The paired tests as a titled markdown section."""
    lines = [
        "",
        f"Paired tests against {baseline_title}: two-sided Wilcoxon signed-rank on the "
        "per-example scores (paired by example and class), effect size the matched-pairs "
        f"rank-biserial r (> 0: the method scores higher), p-values Holm-corrected over the "
        f"{len(rows)} tests; intervals above are 95% percentile bootstraps "
        f"({BOOTSTRAP_RESAMPLES} resamples, seed {BOOTSTRAP_SEED}).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for name, metric, pairs, difference, effect, p, p_holm in rows:
        lines.append(
            f"| {name} | {metric} | {pairs} | {difference:.3f} | {effect:.3f} | "
            f"{_p_cell(p)} | {_p_cell(p_holm)} |"
        )
    return lines


def write_tables(
    header: list[str],
    rows: list[list[Any]],
    out_dir: str | Path,
    stem: str = "metrics",
    records: Sequence[Record] = (),
    bounds: list[list[tuple[float, float]]] | None = None,
    tests: tuple[list[str], list[list[Any]], str] | None = None,
) -> list[Path]:
    """Write ``<stem>.md`` (3 decimals), ``<stem>.csv`` (full precision) and, with
    ``records``, ``<stem>_per_example.csv``; returns the paths.

    With ``bounds`` (:func:`intervals`) each aggregate carries its interval: ``[low,
    high]`` after it in markdown, two columns ``<column> low`` and ``<column> high`` after
    it in the CSV. With ``tests`` (``(header, rows, baseline title)`` from
    :func:`paired_tests`) the markdown ends with the tests, also written to
    ``<stem>_tests.csv``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = markdown(header, rows, bounds)
    if tests is not None and tests[1]:
        lines += tests_markdown(*tests)
    paths = [out / f"{stem}.md", out / f"{stem}.csv"]
    paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
    csv_header, csv_rows = list(header[:2]), [list(row[:2]) for row in rows]
    for j, name in enumerate(header[2:]):
        csv_header += [name] + ([f"{name} low", f"{name} high"] if bounds else [])
        for i, row in enumerate(rows):
            csv_rows[i] += [row[2 + j]] + (list(bounds[i][j]) if bounds else [])
    _write_csv(paths[1], [csv_header] + csv_rows)
    if records:
        paths.append(out / f"{stem}_per_example.csv")
        metric_names = list(records[0].scores)
        _write_csv(
            paths[-1],
            [["index", "label", "method"] + metric_names]
            + [[r.index, r.label, r.method] + [r.scores[m] for m in metric_names] for r in records],
        )
    if tests is not None and tests[1]:
        paths.append(out / f"{stem}_tests.csv")
        _write_csv(paths[-1], [tests[0]] + tests[1])
    return paths


def write_curves(
    curves: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
    out_dir: str | Path,
) -> Path:
    """``curves.csv``: per (method, metric) the mean curve and its interval at each fraction."""
    path = Path(out_dir) / "curves.csv"
    rows: list[list[Any]] = [["method", "metric", "fraction", "mean", "low", "high"]]
    for (method, metric), (fractions, mean, low, high) in curves.items():
        rows += [
            [method, metric, *values] for values in zip(fractions, mean, low, high, strict=True)
        ]
    _write_csv(path, rows)
    return path


def _write_csv(path: Path, rows: list[list[Any]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [
                [repr(float(v)) if isinstance(v, (float, np.floating)) else v for v in row]
                for row in rows
            ]
        )
