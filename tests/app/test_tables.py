"""Tables: per-method aggregation (means, MinMax-CAM's macro protocol) and the files."""

from __future__ import annotations

import csv

import pytest

from captum_contrast.app.tables import Record, summarise, write_tables
from captum_contrast.metrics import multilabel_macro_scores


def test_summarise_means_macro_averages_and_f1() -> None:
    records = [
        Record(
            0, 1, "grad-cam", {"ml-drop": 30.0, "ml-retention-others": 2.0, "average-drop": 1.0}
        ),
        Record(
            0, 2, "grad-cam", {"ml-drop": 50.0, "ml-retention-others": 0.0, "average-drop": 3.0}
        ),
        Record(
            1,
            1,
            "grad-cam",
            {"ml-drop": 10.0, "ml-retention-others": 4.0, "average-drop": float("nan")},
        ),
    ]
    header, rows = summarise(
        records, ["grad-cam"], ["ml-drop", "ml-retention-others", "average-drop"]
    )
    assert header == ["method", "examples", "AD ↓", "ARO ↓", "AD ↓", "F1- ↓"]
    macro = multilabel_macro_scores({"AD": [30, 50, 10], "ARO": [2, 0, 4]}, [1, 2, 1])
    assert rows[0][:2] == ["Grad-CAM (Captum)", 3]
    assert rows[0][2] == pytest.approx((20 + 50) / 2) == macro["AD"]  # per class, then mean
    assert rows[0][3] == pytest.approx(macro["ARO"])
    assert rows[0][4] == pytest.approx(2.0)  # NaN left out of the plain mean
    assert rows[0][5] == pytest.approx(macro["F1-"])


def test_write_tables(tmp_path) -> None:
    records = [Record(0, 3, "grad-cam", {"average-drop": 0.1 + 0.2})]
    header, rows = summarise(records, ["grad-cam"], ["average-drop"])
    md, table, per_example = write_tables(header, rows, tmp_path, records=records)
    assert md.read_text().splitlines() == [
        "| method | examples | AD ↓ |",
        "|---|---|---|",
        "| Grad-CAM (Captum) | 1 | 0.300 |",
    ]
    with table.open() as handle:
        assert float(list(csv.reader(handle))[1][2]) == 0.1 + 0.2  # full precision
    with per_example.open() as handle:
        assert list(csv.reader(handle)) == [
            ["index", "label", "method", "average-drop"],
            ["0", "3", "grad-cam", repr(0.1 + 0.2)],
        ]
