"""benchmarks/ocr_minmax.py: its localisation measure by hand, and its smoke run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

import ocr_minmax  # noqa: E402


def test_each_step_belongs_to_the_nearest_emission_within_the_radius() -> None:
    # steps 0..5, characters emitted at 0 and 3: 1 is nearer 0, 2 nearer 3, 5 too far
    assert ocr_minmax.owners([0, 3], 6, radius=1).tolist() == [0, 0, 1, 1, 1, -1]
    assert ocr_minmax.owners([0, 2], 3, radius=2).tolist() == [0, 0, 1]  # tie: the earlier
    assert ocr_minmax.owners([], 3).tolist() == [-1, -1, -1]


def test_step_mass_sums_the_positive_map_per_step_and_drops_the_odd_column() -> None:
    maps = np.array([[[[1, -2, 3, 0, 2, 2, 9], [0, 1, 0, 0, -1, 3, 9]]]], dtype=np.float32)
    # positive column sums 1, 1, 3, 0, 2, 5 (and 18, which the pooling drops): pairs
    assert ocr_minmax.step_mass(maps, 3).tolist() == [[2.0, 3.0, 7.0]]
    with pytest.raises(ValueError, match="narrower than 8 steps"):
        ocr_minmax.step_mass(maps, 8)


def test_localisation_shares_and_pointing_game_by_hand() -> None:
    mass = np.array([2.0, 3.0, 7.0])
    own, other = np.array([False, True, False]), np.array([True, False, False])
    assert ocr_minmax.localisation(mass, own, other) == (0.25, 2 / 12, 0.0)  # peak: step 2
    assert ocr_minmax.localisation(mass, ~own, own) == (0.75, 0.25, 1.0)
    empty = ocr_minmax.localisation(np.zeros(3), own, other)
    assert np.isnan(empty[0]) and np.isnan(empty[1]) and empty[2] == 0.0


def test_a_lines_labels_and_their_spans() -> None:
    # "ab a" emitted at steps 0, 2, 4, 6 of 8: owners 0 0 1 1 2 2 3 3 (ties to the earlier)
    line = ocr_minmax.Line(0, torch.zeros(1), "ab a", (0, 2, 4, 6), 8)
    assert line.characters == ["a", "b"] and line.explained == ["a", "b"]
    assert np.flatnonzero(line.span({"a"})).tolist() == [0, 1, 6, 7]
    assert np.flatnonzero(line.span({"b"})).tolist() == [2, 3]
    thrice = ocr_minmax.Line(0, torch.zeros(1), "a a a b", (0, 2, 4, 6, 8, 10, 12), 14)
    assert thrice.explained == ["b"]  # read more than MAX_READ = 2 times: not explained


def test_quick_run_measures_three_characters_of_the_title() -> None:
    done = subprocess.run(
        [sys.executable, str(BENCHMARKS / "ocr_minmax.py"), "--quick"],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(BENCHMARKS.parent), "MPLBACKEND": "Agg"},
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "line 0: 'Region-based segmentation', 3 labels" in done.stdout
    rows = {line.split(" | ")[0]: line for line in done.stdout.splitlines() if line[:2] == "| "}
    assert set(rows) >= {"| Grad-CAM", "| MinMax-CAM", "| uniform map (chance)"}
    # '-', 'R', 'a' own 4, 3 and 5 of the title's 82 steps: a uniform map's share, median 4/82
    assert rows["| uniform map (chance)"].startswith("| uniform map (chance) | 4.9 [3.7, 6.1]")


def test_summary_hands_the_head_to_head_its_section_and_verdict(tmp_path: Path) -> None:
    report = tmp_path / "ocr_minmax.md"
    report.write_text(
        "# T\n\nintro\n\n## Summary\n\n- **verdict**\n- b\n\n| t |\n\n![f](f.png)\n\n## Lines\nx\n"
    )
    section = ocr_minmax.summary(report)
    assert section[0].startswith("## MinMax-CAM") and section[2:6] == [
        "- **verdict**",
        "- b",
        "",
        "| t |",
    ]
    assert not any(line.startswith("![") or line == "x" for line in section)
    assert ocr_minmax.summary(report, verdict_only=True) == [
        "- **PP-OCRv4 recogniser (text lines, multi-label)**: **verdict**"
    ]
    assert "not measured yet" in ocr_minmax.summary(tmp_path / "absent.md", verdict_only=True)[0]
