"""One torchvision model per family through benchmarks/model_zoo.py's own check: every
method returns a map at the default layer, and MinMax with one label equals Grad-CAM."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ZOO_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "model_zoo.py"
spec = importlib.util.spec_from_file_location("model_zoo", ZOO_PATH)
zoo = importlib.util.module_from_spec(spec)
sys.modules["model_zoo"] = zoo  # dataclasses look their module up
spec.loader.exec_module(zoo)
ENTRIES = {entry.name: entry for entry in zoo.torchvision_entries()}
LAYOUTS = {"ViT": "tokens, 1 prefix", "Swin": "channels-last"}


@pytest.mark.parametrize("family", sorted(zoo.FAMILIES))
def test_every_method_maps_one_model_per_family(family: str) -> None:
    entry = ENTRIES[zoo.FAMILIES[family]]
    row = zoo.check(entry, with_grad_cam_library=False, opti_iters=1, batch=1)
    assert row["layer"].endswith(f"({LAYOUTS.get(family, 'channels-first')})"), row["layer"]
    assert [row[method] for method in zoo.METHODS] == ["ok"] * len(zoo.METHODS), row
    assert "FinerCAM" in zoo.METHODS
    if family in LAYOUTS:  # Captum reads dim 1 as channels: tokens and Swin give non-maps
        assert row["Captum LayerGradCam"] == "not a map"
    else:
        assert row["Captum LayerGradCam"] == "ok"
        assert row["minmax_gap"] < 1e-4
