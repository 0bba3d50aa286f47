"""Quantus's own metrics by name (--metric quantus:<Class>), scored on the methods' maps."""

from __future__ import annotations

import numpy as np
import pytest
import quantus
import torch
import torch.nn.functional as F

from captum_contrast.app.cli import main
from captum_contrast.app.evaluation import evaluate
from captum_contrast.app.quantus_metrics import parse
from captum_contrast.app.registry import explain
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.models import small_cnn


@pytest.fixture(scope="module")
def setting():
    torch.manual_seed(0)
    model = small_cnn(num_classes=10, width=4).eval()
    data = MultiDigitCanvases(n=4, split="test", size=32, seed=1)
    images = torch.stack([data[i][0] for i in range(4)])
    targets = model(images).argmax(dim=1)
    maps = explain("grad-cam", model, model.features, images, targets)
    at_input = F.interpolate(maps, size=(32, 32), mode="bilinear", align_corners=False).numpy()
    return model, data, images.numpy(), targets.numpy(), at_input


def _ours(model, data, name):
    records = evaluate(
        model, model.features, data, ["grad-cam"], [name], targets="predicted", batch_size=4,
        progress=False,
    )  # fmt: skip
    return np.array([r.scores[name] for r in records])


def test_a_per_example_quantus_metric_gives_quantus_numbers(setting) -> None:
    model, data, x, y, maps = setting
    expected = quantus.Sparseness(disable_warnings=True)(model, x, y, a_batch=maps)
    np.testing.assert_allclose(_ours(model, data, "quantus:Sparseness"), expected, rtol=1e-6)


def test_pixel_flipping_curves_become_their_areas(setting) -> None:
    model, data, x, y, maps = setting
    curves = np.asarray(
        quantus.PixelFlipping(features_in_step=64, disable_warnings=True)(
            model, x, y, a_batch=maps, device="cpu"
        )
    )
    assert curves.shape == (4, 1024 // 64)
    by_hand = ((curves[:, 1:] + curves[:, :-1]) / 2).sum(axis=1)  # trapezoids, dx = 1
    ours = _ours(model, data, "quantus:PixelFlipping:features_in_step=64")
    np.testing.assert_allclose(ours, by_hand, rtol=1e-6)


def test_road_keeps_each_examples_mean_accuracy(setting) -> None:
    model, data, *_ = setting
    scores = _ours(model, data, "quantus:ROAD:percentages=[10, 50]")
    assert scores.shape == (4,) and set(scores.tolist()) <= {0.0, 0.5, 1.0}


def test_names_and_outputs_this_path_cannot_use_are_errors(setting, capsys) -> None:
    with pytest.raises(
        ValueError, match="has no metric class 'Sparsenes' \\(did you mean Sparseness"
    ):
        parse("quantus:Sparsenes")
    with pytest.raises(ValueError, match="options must be key=value pairs"):
        parse("quantus:ROAD:percentages")
    model, data, *_ = setting
    with pytest.raises(ValueError, match=r"returned \(1,\), not one score per example \(4\)"):
        _ours(model, data, "quantus:Sparseness:return_aggregate=True")
    with pytest.raises(SystemExit) as exit_code:  # argparse: a usage error before any work
        main(["evaluate", "--metric", "quantus:NoSuchMetric"])
    assert exit_code.value.code == 2
    assert "has no metric class 'NoSuchMetric'" in capsys.readouterr().err
