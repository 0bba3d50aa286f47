"""The evaluation loop, and sharding it across processes."""

from __future__ import annotations

import csv
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from captum_contrast.app.evaluation import batch_targets, evaluate
from captum_contrast.app.registry import METRICS, explain
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.models import small_cnn
from tests.helpers import TORCHRUN, needs_torchrun


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


GRADIENT = ["grad-cam", "contrast-grad-cam", "minmax-cam", "difference-salience"]
MASKING = ["average-drop", "average-gain", "average-increase"]


def _counting(model):
    calls = []
    handle = model.register_forward_hook(lambda module, args, out: calls.append(len(args[0])))
    return calls, handle


def test_forward_floor_one_hooked_forward_plus_one_masked_forward_per_method(tiny) -> None:
    # 32 images in batches of 16, AD + AG + AI, four gradient methods: (1 + 4) * 32 = 160
    # image-forwards (the old loop ran 13 per image: 416).
    data = MultiDigitCanvases(n=32, split="test", size=32, seed=5)
    calls, handle = _counting(tiny)
    try:
        records = evaluate(
            tiny,
            tiny.features,
            data,
            GRADIENT,
            MASKING,
            targets="predicted",
            batch_size=16,
            progress=False,
        )
    finally:
        handle.remove()
    assert sum(calls) == (1 + len(GRADIENT)) * 32 == 160
    assert len(records) == 4 * 32


@pytest.mark.parametrize(
    "targets,metrics",
    [
        ("predicted", MASKING),
        ("detections", ["ml-increase", "ml-drop", "ml-drop-others", "ml-retention"]),
    ],
)
def test_scores_are_each_metric_class_on_each_methods_own_maps(
    tiny, canvases, targets, metrics
) -> None:
    # The tables of the old loop: every method's own attribute, every metric's own class.
    options = {"targets": targets, "batch_size": 6, "progress": False}
    records = evaluate(tiny, tiny.features, canvases, GRADIENT, metrics, **options)
    assert len(records) > len(GRADIENT) * len(canvases) * (targets == "detections")
    for start in (0, 6):
        images = torch.stack([canvases[i][0] for i in range(start, start + 6)])
        rows, classes = batch_targets(tiny, images, torch.zeros(6), targets)
        x, y = images[rows], classes
        for name in GRADIENT:
            maps = explain(name, tiny, tiny.features, x, y).numpy()
            mine = [r for r in records if r.method == name and start <= r.index < start + 6]
            assert [(r.index - start, r.label) for r in mine] == list(
                zip(rows.tolist(), y.tolist(), strict=True)
            )
            for metric in metrics:
                expected = METRICS[metric](disable_warnings=True)(
                    tiny, x.numpy(), y.numpy(), a_batch=maps
                )
                got = [r.scores[metric] for r in mine]
                np.testing.assert_allclose(
                    got, expected, rtol=1e-5, atol=1e-6, err_msg=f"{name} {metric}"
                )


def test_detections_of_one_image_share_its_forward(tiny, canvases) -> None:
    calls, handle = _counting(tiny)
    try:
        records = evaluate(
            tiny,
            tiny.features,
            canvases,
            ["grad-cam", "contrast-grad-cam"],
            ["ml-drop"],
            targets="detections",
            batch_size=12,
            progress=False,
        )
    finally:
        handle.remove()
    detections = len(records) // 2
    assert detections > len(canvases)  # several per image, yet one forward of each image
    assert sum(calls) == len(canvases) + 2 * detections  # + one masked forward per detection


def test_unknown_metric_is_rejected(tiny, canvases) -> None:
    with pytest.raises(ValueError, match="unknown"):
        evaluate(tiny, tiny.features, canvases, ["grad-cam"], ["pointing-game"])


@needs_torchrun
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
            *TORCHRUN,
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
    table = (tmp_path / "two" / "metrics.md").read_text().split("\n\n")[0].splitlines()
    assert table[0] == "| method | examples | AD ↓ | ARO ↓ | AG ↑ | F1- ↓ |"
    assert len(table) == 5 and all(row.split("|")[2].strip() == "16" for row in table[2:])
    with (tmp_path / "two" / "metrics_per_example.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + 3 * 16
    assert [int(row[0]) for row in rows[1::3]] == list(range(16))  # sorted by dataset index
