"""Per-method tables from per-example records: aggregation, markdown and CSV files."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captum_contrast.app.registry import METHODS, METRICS, column
from captum_contrast.metrics import multilabel_macro_scores


@dataclass(frozen=True)
class Record:
    """One explained example: dataset index, explained class, method, score per metric."""

    index: int
    label: int
    method: str
    scores: dict[str, float]


def summarise(
    records: Sequence[Record], methods: Sequence[str], metrics: Sequence[str]
) -> tuple[list[str], list[list[Any]]]:
    """Per-method aggregates as ``(header, rows)``; records must be sorted by example.

    Each metric is aggregated as its paper does: the mean over examples (NaN left out),
    except the multi-label metrics, macro-averaged over classes with F1- = HM(AD, ARO) and
    F1+ = HM(AR, ADO) per class (:func:`captum_contrast.metrics.multilabel_macro_scores`).
    """
    keys = {METRICS[m].short_name: m for m in metrics if METRICS[m].multilabel}
    f1 = [
        name
        for name, needs in (("F1- ↓", ("AD", "ARO")), ("F1+ ↑", ("AR", "ADO")))
        if all(key in keys for key in needs)
    ]
    header = ["method", "examples"] + [column(m) for m in metrics] + f1
    rows = []
    for name in methods:
        mine = [r for r in records if r.method == name]
        values = {m: np.array([r.scores[m] for r in mine], dtype=np.float64) for m in metrics}
        row: list[Any] = [METHODS[name].title, len(mine)]
        macro = (
            multilabel_macro_scores(
                {key: values[m] for key, m in keys.items()}, np.array([r.label for r in mine], int)
            )
            if keys and mine
            else {}
        )
        for metric in metrics:
            key = METRICS[metric].short_name if METRICS[metric].multilabel else None
            finite = values[metric][~np.isnan(values[metric])]
            row.append(
                macro.get(key, np.nan)
                if key
                else (float(finite.mean()) if finite.size else float("nan"))
            )
        row += [macro.get(name.split()[0], np.nan) for name in f1]
        rows.append(row)
    return header, rows


def write_tables(
    header: list[str],
    rows: list[list[Any]],
    out_dir: str | Path,
    stem: str = "metrics",
    records: Sequence[Record] = (),
) -> list[Path]:
    """Write ``<stem>.md`` (3 decimals), ``<stem>.csv`` (full precision) and, with
    ``records``, ``<stem>_per_example.csv``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    paths = [out / f"{stem}.md", out / f"{stem}.csv"]
    paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [header] + [[repr(v) if isinstance(v, float) else v for v in row] for row in rows]
        )
    if records:
        paths.append(out / f"{stem}_per_example.csv")
        metric_names = list(records[0].scores)
        with paths[2].open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "label", "method"] + metric_names)
            for r in records:
                writer.writerow(
                    [r.index, r.label, r.method] + [repr(r.scores[m]) for m in metric_names]
                )
    return paths
