"""The intervals and paired tests of metrics.md, against a hand computation on a tiny run."""

from __future__ import annotations

import csv
import itertools

import numpy as np
import pytest
import torch

from captum_contrast.app.evaluation import run_evaluation
from captum_contrast.app.tables import Record, intervals, paired_tests
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.models import small_cnn
from captum_contrast.metrics.stats import bootstrap_interval, holm, paired_wilcoxon


def _exact_wilcoxon(differences: np.ndarray) -> float:
    """Two-sided exact signed-rank p-value by enumerating every sign assignment."""
    nonzero = differences[differences != 0]
    ranks = np.argsort(np.argsort(np.abs(nonzero))) + 1.0  # no ties in these data
    observed = ranks[nonzero > 0].sum()
    totals = [
        sum(r for r, s in zip(ranks, signs, strict=True) if s)
        for signs in itertools.product([0, 1], repeat=len(ranks))
    ]
    below = np.mean([t <= observed for t in totals])
    above = np.mean([t >= observed for t in totals])
    return min(1.0, 2 * min(below, above))


def _hand_bootstrap(values: np.ndarray) -> tuple[float, float]:
    """The documented procedure: 1000 draws from default_rng(0), the 2.5% and 97.5% quantiles."""
    rng = np.random.default_rng(0)
    means = values[rng.integers(0, len(values), size=(1000, len(values)))].mean(axis=1)
    return tuple(np.quantile(means, [0.025, 0.975]))


def test_wilcoxon_effect_and_holm_by_hand() -> None:
    scores = np.array([0.9, 0.7, 0.85, 0.4, 0.6, 0.95])
    baseline = np.array([0.5, 0.65, 0.3, 0.55, 0.1, 0.15])
    out = paired_wilcoxon(scores, baseline)
    differences = scores - baseline  # 0.4, 0.05, 0.55, -0.15, 0.5, 0.8: no ties
    # Ranks 3, 1, 5, 2 (negative), 4, 6: R- = 2; the subsets of 1..6 summing to <= 2 are
    # {}, {1}, {2}: P(T <= 2) = 3 / 64, two-sided 6 / 64.
    assert out["pvalue"] == pytest.approx(_exact_wilcoxon(differences)) == pytest.approx(6 / 64)
    ranks = np.argsort(np.argsort(np.abs(differences))) + 1
    positive, negative = ranks[differences > 0].sum(), ranks[differences < 0].sum()
    assert out["effect"] == pytest.approx((positive - negative) / (positive + negative))
    assert out["difference"] == pytest.approx(differences.mean())
    # Holm by hand: sorted 0.01, 0.02, 0.04 -> 3 * 0.01, max(0.03, 2 * 0.02), max(0.04, 0.04).
    assert holm([0.04, 0.01, 0.02]).tolist() == pytest.approx([0.04, 0.03, 0.04])


def test_macro_interval_resamples_examples_and_recomputes_the_macro() -> None:
    records = [
        Record(i, label, "grad-cam", {"ml-drop": value, "ml-retention-others": other})
        for i, (label, value, other) in enumerate(
            [(0, 10.0, 1.0), (0, 30.0, 2.0), (1, 50.0, 0.5), (1, 70.0, 4.0), (2, 20.0, 3.0)]
        )
    ]
    bounds = intervals(records, ["grad-cam"], ["ml-drop", "ml-retention-others"])[0]
    assert len(bounds) == 3  # AD, ARO, F1-
    for low, high in bounds:
        assert low <= high
    # A class present only in some resamples still counts once per resample it is in.
    assert bounds[0][0] >= 10.0 and bounds[0][1] <= 70.0


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    torch.manual_seed(0)
    model = small_cnn(num_classes=10, width=4).eval()
    data = MultiDigitCanvases(n=8, split="test", size=32, seed=2)
    out = tmp_path_factory.mktemp("stats")
    paths = run_evaluation(
        model,
        model.features,
        data,
        ["grad-cam", "contrast-grad-cam", "fake-cam"],
        ["average-drop", "average-increase"],
        out,
        targets="predicted",
        batch_size=4,
        progress=False,
        baseline="contrast-grad-cam",
    )
    return out, paths


def test_the_tables_carry_the_hand_computed_intervals_and_tests(tiny_run) -> None:
    out, paths = tiny_run
    with (out / "metrics_per_example.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    score = {
        (row["method"], metric): np.array(
            [float(r[metric]) for r in rows if r["method"] == row["method"]]
        )
        for row in rows
        for metric in ("average-drop", "average-increase")
    }
    with (out / "metrics.csv").open() as handle:
        table = list(csv.reader(handle))
    assert table[0][2:5] == ["AD ↓", "AD ↓ low", "AD ↓ high"]
    for line, method in zip(table[1:], ["grad-cam", "contrast-grad-cam", "fake-cam"], strict=True):
        values = score[(method, "average-drop")]
        assert float(line[2]) == pytest.approx(values.mean())
        assert (float(line[3]), float(line[4])) == pytest.approx(_hand_bootstrap(values))
        assert bootstrap_interval(values) == pytest.approx(_hand_bootstrap(values))
    markdown = (out / "metrics.md").read_text().splitlines()
    low, high = _hand_bootstrap(score[("grad-cam", "average-drop")])
    mean = score[("grad-cam", "average-drop")].mean()
    assert markdown[2].startswith(f"| Grad-CAM (Captum) | 8 | {mean:.3f} [{low:.3f}, {high:.3f}] |")
    assert "Paired tests against ContrastGradCAM" in "\n".join(markdown)
    # Tests against the chosen baseline, Holm over the 4 tests of the table.
    with (out / "metrics_tests.csv").open() as handle:
        tests = list(csv.DictReader(handle))
    assert [(t["method"], t["metric"]) for t in tests] == [
        ("Grad-CAM (Captum)", "AD ↓"),
        ("Grad-CAM (Captum)", "AI ↑"),
        ("Fake-CAM", "AD ↓"),
        ("Fake-CAM", "AI ↑"),
    ]
    raw = []
    for test, (method, metric) in zip(
        tests,
        [(m, k) for m in ("grad-cam", "fake-cam") for k in ("average-drop", "average-increase")],
        strict=True,
    ):
        differences = score[(method, metric)] - score[("contrast-grad-cam", metric)]
        assert float(test["mean difference"]) == pytest.approx(differences.mean())
        assert int(test["pairs"]) == 8
        if np.any(differences != 0) and len(set(np.abs(differences[differences != 0]))) == len(
            differences[differences != 0]
        ):
            assert float(test["p"]) == pytest.approx(_exact_wilcoxon(differences))
        raw.append(float(test["p"]))
    finite = sorted(p for p in raw if not np.isnan(p))
    m = len(finite)
    expected = np.maximum.accumulate([min(1, (m - i) * p) for i, p in enumerate(finite)])
    got = sorted(float(t["p (Holm)"]) for t in tests if t["p (Holm)"] != "nan")
    assert got == pytest.approx(sorted(expected))


def test_paired_tests_pair_by_example_and_class() -> None:
    records = [
        Record(0, 1, "grad-cam", {"average-drop": 1.0}),
        Record(0, 1, "fake-cam", {"average-drop": 3.0}),
        Record(1, 2, "grad-cam", {"average-drop": 2.0}),
        Record(1, 3, "fake-cam", {"average-drop": 9.0}),  # another class: no partner
    ]
    _, rows = paired_tests(records, ["grad-cam", "fake-cam"], ["average-drop"], "grad-cam")
    assert rows == [["Fake-CAM", "AD ↓", 1, 2.0, 1.0, 1.0, 1.0]]
    with pytest.raises(ValueError, match="--baseline 'opti-cam' is not among"):
        paired_tests(records, ["grad-cam"], ["average-drop"], "opti-cam")
