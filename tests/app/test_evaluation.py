"""The evaluation loop, and sharding it across processes."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys

import pytest
import torch

from captum_contrast.app.evaluation import batch_targets, evaluate
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.models import small_cnn


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return small_cnn(num_classes=10, width=4).eval()


@pytest.fixture(scope="module")
def canvases() -> MultiDigitCanvases:
    return MultiDigitCanvases(n=12, split="test", size=32, seed=3)


def test_batch_targets_modes() -> None:
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([2.0, -2.0, 1.0]))
    images, labels = torch.zeros(2, 1, 2, 2), torch.tensor([1, 2])
    rows, classes = batch_targets(model, images, labels, "detections")
    assert rows.tolist() == [0, 0, 1, 1] and classes.tolist() == [0, 2, 0, 2]
    assert batch_targets(model, images, labels, "predicted")[1].tolist() == [0, 0]
    assert batch_targets(model, images, labels, "label")[1].tolist() == [1, 2]


def test_shards_of_two_ranks_together_are_the_single_process_records(tiny, canvases) -> None:
    options = {
        "targets": "predicted",
        "batch_size": 4,
        "progress": False,
        "method_kwargs": {"opti-cam": {"n_iter": 2}},
    }
    methods, metrics = ["grad-cam", "opti-cam"], ["average-drop", "mass-on-object"]
    whole = evaluate(tiny, tiny.features, canvases, methods, metrics, **options)
    shards = [
        evaluate(
            tiny, tiny.features, canvases, methods, metrics, rank=rank, world_size=2, **options
        )
        for rank in (0, 1)
    ]
    assert {r.index for r in shards[0]} == {0, 1, 2, 3, 8, 9, 10, 11}  # batches 0 and 2
    key = lambda r: (r.index, r.label, r.method)  # noqa: E731
    assert sorted(shards[0] + shards[1], key=key) == sorted(whole, key=key)
    assert len(whole) == 2 * len(canvases)


@pytest.mark.parametrize(
    "targets,metrics",
    [
        ("predicted", ["average-drop", "average-gain", "average-increase"]),
        ("detections", ["ml-increase", "ml-drop", "ml-drop-others", "ml-retention"]),
    ],
)
def test_shared_forward_scores_are_each_metrics_own(tiny, canvases, targets, metrics) -> None:
    options = {"targets": targets, "batch_size": 6, "progress": False}
    together = evaluate(tiny, tiny.features, canvases, ["grad-cam"], metrics, **options)
    calls = []
    handle = tiny.register_forward_hook(lambda *args: calls.append(1))
    try:
        alone = {
            m: evaluate(tiny, tiny.features, canvases, ["grad-cam"], [m], **options)
            for m in metrics
        }
        per_metric = len(calls)
        calls.clear()
        evaluate(tiny, tiny.features, canvases, ["grad-cam"], metrics, **options)
    finally:
        handle.remove()
    for metric in metrics:
        assert [r.scores[metric] for r in together] == [r.scores[metric] for r in alone[metric]]
    assert len(together) > 0
    # Per batch: explain + targets forwards, then 2 (single-label) or 3 (multi-label) shared
    # forwards where the classes take 2 per metric.
    assert calls and len(calls) < per_metric


def test_unknown_metric_is_rejected(tiny, canvases) -> None:
    with pytest.raises(ValueError, match="unknown"):
        evaluate(tiny, tiny.features, canvases, ["grad-cam"], ["pointing-game"])


@pytest.mark.skipif(shutil.which("torchrun") is None, reason="torchrun not on PATH")
def test_two_gloo_processes_write_the_single_process_table(tmp_path, tiny) -> None:
    weights = tmp_path / "tiny.pt"
    torch.save(tiny.state_dict(), weights)
    args = [
        "evaluate",
        "--data",
        "canvases",
        "--canvases",
        "16",
        "--arch",
        "small-cnn",
        "--weights",
        str(weights),
        "--layer",
        "features",
        "--batch-size",
        "4",
        "--opti-iters",
        "3",
        "--method",
        "grad-cam",
        "--method",
        "contrast-grad-cam",
        "--method",
        "opti-cam",
        "--metric",
        "ml-drop",
        "--metric",
        "ml-retention-others",
        "--metric",
        "average-gain",
        "--targets",
        "predicted",
        "--no-progress",
    ]
    env = {key: value for key, value in os.environ.items() if key != "WORLD_SIZE"}
    single = subprocess.run(
        [sys.executable, "-m", "captum_contrast.app.cli", *args, "--out", str(tmp_path / "one")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert single.returncode == 0, single.stderr
    double = subprocess.run(
        [
            "torchrun",
            "--standalone",
            "--nproc_per_node",
            "2",
            "-m",
            "captum_contrast.app.cli",
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert double.returncode == 0, double.stderr
    for name in ("metrics.md", "metrics.csv", "metrics_per_example.csv"):
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes()
    table = (tmp_path / "two" / "metrics.md").read_text().splitlines()
    assert table[0] == "| method | examples | AD ↓ | ARO ↓ | AG ↑ | F1- ↓ |"
    assert len(table) == 5 and all(row.split("|")[2].strip() == "16" for row in table[2:])
    with (tmp_path / "two" / "metrics_per_example.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + 3 * 16
    assert [int(row[0]) for row in rows[1::3]] == list(range(16))  # sorted by dataset index
