"""The method/metric registry, the evaluation engine, and sharding across processes."""

from __future__ import annotations

import csv
import math
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam

from captum_contrast.datasets import MultiDigitCanvases
from captum_contrast.difference_salience import DifferenceSalience
from captum_contrast.evaluate import (
    METHODS,
    Record,
    batch_targets,
    evaluate,
    explain,
    mass_on_object,
    runner_up,
    summarise,
    write_tables,
)
from captum_contrast.metrics import multilabel_macro_scores
from captum_contrast.models import small_cnn


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    torch.manual_seed(0)
    return small_cnn(num_classes=10, width=4).eval()


@pytest.fixture(scope="module")
def canvases() -> MultiDigitCanvases:
    return MultiDigitCanvases(n=12, split="test", size=32, seed=3)


def test_runner_up_skips_the_target() -> None:
    outputs = torch.tensor([[0.1, 5.0, 3.0], [9.0, 1.0, 2.0]])
    assert runner_up(outputs, torch.tensor([1, 2])).tolist() == [2, 0]


def test_every_method_explains_one_map_per_example(tiny) -> None:
    images, targets = torch.rand(3, 1, 32, 32), torch.tensor([1, 4, 7])
    for name in METHODS:
        maps = explain(
            name,
            tiny,
            tiny.features,
            images,
            targets,
            **({"n_iter": 2} if name == "opti-cam" else {}),
        )
        expected = (32, 32) if name == "fake-cam" else (8, 8)
        assert maps.shape == (3, 1, *expected), name
        assert not maps.requires_grad and maps.device.type == "cpu"


def test_explain_uses_the_registry_defaults(tiny) -> None:
    images, targets = torch.rand(2, 1, 32, 32), torch.tensor([3, 5])
    grad_cam = LayerGradCam(tiny, tiny.features).attribute(
        images, target=targets, relu_attributions=True
    )
    torch.testing.assert_close(explain("grad-cam", tiny, tiny.features, images, targets), grad_cam)
    # Ten outputs: DifferenceSalience contrasts each target with its runner-up class.
    with torch.no_grad():
        contrast = runner_up(tiny(images), targets)
    expected = DifferenceSalience(tiny, tiny.features).attribute(
        images, target=targets, contrast=contrast
    )
    torch.testing.assert_close(
        explain("difference-salience", tiny, tiny.features, images, targets), expected
    )
    with pytest.raises(ValueError, match="unknown method"):
        explain("score-cam", tiny, tiny.features, images, targets)


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


def test_mass_on_object_by_hand() -> None:
    # Range-normalised: [[0, .5], [.5, 1]]; the object is the bottom-right pixel: 1 / 2.
    maps = np.array([[[[0.0, 1.0], [1.0, 2.0]]], [[[3.0, 3.0], [3.0, 3.0]]]])
    masks = torch.tensor([[[False, False], [False, True]], [[True, True], [True, True]]])
    scores = mass_on_object(maps, masks)
    assert scores[0] == pytest.approx(50.0)
    assert math.isnan(scores[1])  # a constant map has no mass to place


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
        [sys.executable, "-m", "captum_contrast.cli", *args, "--out", str(tmp_path / "one")],
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
            "captum_contrast.cli",
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


def test_vision_transformer_tokens_are_laid_on_their_grid() -> None:
    from torchvision.models import vit_b_16

    from captum_contrast import ContrastGradCAM, vit_reshape_transform
    from captum_contrast.evaluate import explain

    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=32, num_classes=4).eval()
    torch.nn.init.normal_(model.heads.head.weight, std=0.1)  # torchvision zeroes the head
    layer = model.encoder.layers[-1].ln_1
    images, targets = torch.rand(2, 3, 32, 32), torch.tensor([1, 2])
    maps = explain("contrast-grad-cam", model, layer, images, targets)
    expected = ContrastGradCAM(model, layer, reshape_transform=vit_reshape_transform).attribute(
        images, target=targets, k=1
    )
    torch.testing.assert_close(maps, expected)
    with pytest.raises(ValueError, match="vision-transformer tokens"):
        explain("grad-cam", model, layer, images, targets)
