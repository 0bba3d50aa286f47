"""The ImageNet recipe (benchmarks/imagenet_tables.py) on a fake ImageFolder, 1 and 2 processes."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.models import resnet18

from tests.helpers import TORCHRUN, needs_torchrun

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "imagenet_tables.py"


def _recipe():
    spec = importlib.util.spec_from_file_location("imagenet_tables", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def fake_imagenet(tmp_path_factory) -> dict[str, Path]:
    """Three synset folders of one 40x40 image each, and a random resnet18 state dict."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for synset in ("n01440764", "n01443537", "n01484850"):
        (root / "val" / synset).mkdir(parents=True)
        for index in range(1):
            pixels = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / "val" / synset / f"{index}.JPEG", format="JPEG")
    torch.manual_seed(0)
    torch.save(resnet18(weights=None, num_classes=10).state_dict(), root / "r18.pth")
    return {"data": root / "val", "weights": root / "r18.pth", "root": root}


def test_the_recipe_names_both_papers_runs() -> None:
    runs = _recipe().evaluate_arguments("val", "vgg16", "w.pth", "out")
    assert set(runs) == {"case", "opti_cam"}
    case, opti = runs["case"], runs["opti_cam"]
    assert case[case.index("--layer") + 1] == "features.29"
    assert case[case.index("--targets") + 1] == "predicted"  # CASE: top-1 vs top-2
    assert opti[opti.index("--targets") + 1] == "label"  # Opti-CAM: the ground truth
    assert [case[i + 1] for i, a in enumerate(case) if a == "--metric"] == [
        "class-sensitivity",
        "confidence-drop",
    ]


@needs_torchrun
def test_one_and_two_gloo_processes_write_identical_tables(fake_imagenet, tmp_path) -> None:
    args = [
        "--data", str(fake_imagenet["data"]), "--arch", "resnet18",
        "--weights", str(fake_imagenet["weights"]),
        "--", "--resize", "32", "--crop", "32", "--batch-size", "2", "--opti-iters", "2",
        "--no-progress",
    ]  # fmt: skip
    # One process in this one (no second start-up of torch), two under torchrun.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as each torchrun worker runs (OMP_NUM_THREADS=1)
    try:
        assert _recipe().main(["--out", str(tmp_path / "one"), *args]) == 0
    finally:
        torch.set_num_threads(threads)
    env = {key: value for key, value in os.environ.items() if key != "WORLD_SIZE"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    for table in ("case", "opti_cam"):  # one torchrun launch per table
        double = subprocess.run(
            [*TORCHRUN, "--standalone", "--nproc_per_node", "2", str(SCRIPT),
             "--table", table, "--out", str(tmp_path / "two"), *args],
            capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
        assert double.returncode == 0, double.stderr
    for run in ("case", "opti_cam"):
        for name in ("metrics.md", "metrics.csv", "metrics_per_example.csv"):
            one = (tmp_path / "one" / run / name).read_bytes()
            assert one == (tmp_path / "two" / run / name).read_bytes(), (run, name)
    case = (tmp_path / "two" / "case" / "metrics.md").read_text().split("\n\n")[0].splitlines()
    assert case[0].startswith("| method | examples | Agreement % ↓")
    assert [row.split(" | ")[:2] for row in case[2:]] == [
        ["| Grad-CAM (Captum)", "3"],
        ["| ContrastGradCAM", "3"],
        ["| OptiCAM", "3"],
    ]
    opti = (tmp_path / "two" / "opti_cam" / "metrics.md").read_text().splitlines()
    assert opti[0] == "| method | examples | AD ↓ | AG ↑ | AI ↑ | Insertion ↑ | Deletion ↓ |"
    with (tmp_path / "two" / "opti_cam" / "metrics_per_example.csv").open() as handle:
        rows = list(csv.reader(handle))
    assert len(rows) == 1 + 4 * 3  # one row per example and method
