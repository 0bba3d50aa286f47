"""Quantus integration: registration, quantus.evaluate, the explain_func adapter, Fake-CAM."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import pytest
import quantus
import torch
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import nn

from captum_contrast.methods.contrast_grad_cam import ContrastGradCAM
from captum_contrast.metrics import (
    METRICS,
    AverageDrop,
    AverageGain,
    ClassSensitivity,
    ConfidenceDrop,
    Insertion,
    MassOnObject,
    explainer,
    fake_cam,
    register_with_quantus,
)

EXPECTED_CATEGORIES = {
    "Average Drop": "Faithfulness",
    "Average Increase": "Faithfulness",
    "Average Gain": "Faithfulness",
    "Increase in Confidence (multi-label)": "Faithfulness",
    "Average Drop (multi-label)": "Faithfulness",
    "Average Drop of Others": "Faithfulness",
    "Average Retention": "Faithfulness",
    "Average Retention of Others": "Faithfulness",
    "Confidence Drop": "Faithfulness",
    "Insertion": "Faithfulness",
    "Deletion": "Faithfulness",
    "Class Sensitivity": "Randomisation",
    "Mass on Object": "Localisation",
}

# cli_name -> (short_name, multilabel, needs_explain_func, needs_object_masks)
EXPECTED_CLI = {
    "average-drop": ("AD", False, False, False),
    "average-gain": ("AG", False, False, False),
    "average-increase": ("AI", False, False, False),
    "deletion": ("Deletion", False, False, False),
    "insertion": ("Insertion", False, False, False),
    "confidence-drop": ("Conf. drop", False, False, False),
    "class-sensitivity": ("Agreement %", False, True, False),
    "ml-increase": ("IC", True, False, False),
    "ml-drop": ("AD", True, False, False),
    "ml-drop-others": ("ADO", True, False, False),
    "ml-retention": ("AR", True, False, False),
    "ml-retention-others": ("ARO", True, False, False),
    "mass-on-object": ("Mass on object %", False, False, True),
}


def small_cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, 5),
    ).eval()


def batch(n: int = 6, size: int = 16) -> tuple[np.ndarray, np.ndarray]:
    x = np.random.default_rng(0).random((n, 3, size, size), dtype=np.float32)
    return x, np.arange(n) % 5


def test_registration_lists_every_metric_under_its_category() -> None:
    register_with_quantus()
    register_with_quantus()  # idempotent
    listed = quantus.available_metrics()
    assert {m.name: m.evaluation_category.value for m in METRICS} == EXPECTED_CATEGORIES
    for name, category in EXPECTED_CATEGORIES.items():
        assert listed[category].count(name) == 1
    assert quantus.AVAILABLE_METRICS["Randomisation"]["Class Sensitivity"] is ClassSensitivity
    assert "Random Logit" in listed["Randomisation"]  # Quantus's own entries are untouched


class ForeignMetric(quantus.Metric):
    """Another project's metric that took one of our names first."""


def test_registration_warns_and_skips_a_name_held_by_another_class() -> None:
    faithfulness = quantus.AVAILABLE_METRICS["Faithfulness"]
    original = faithfulness.get("Average Drop")
    faithfulness["Average Drop"] = ForeignMetric
    try:
        with pytest.warns(UserWarning) as caught:
            register_with_quantus()
        messages = [str(w.message) for w in caught]
        assert len(messages) == 1
        assert "['Faithfulness']['Average Drop']" in messages[0]
        assert f"{__name__}.ForeignMetric" in messages[0]
        # The foreign class keeps its key; every other metric is still registered.
        assert faithfulness["Average Drop"] is ForeignMetric
        assert quantus.AVAILABLE_METRICS["Localisation"]["Mass on Object"] is MassOnObject
    finally:
        faithfulness["Average Drop"] = original if original is not None else AverageDrop
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # re-registering our own classes is silent
        register_with_quantus()
    assert faithfulness["Average Drop"] is AverageDrop


def test_a_taken_name_never_breaks_import_captum_contrast() -> None:
    code = (
        "import quantus, warnings\n"
        "class Foreign(quantus.Metric): pass\n"
        "quantus.AVAILABLE_METRICS['Randomisation']['Class Sensitivity'] = Foreign\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import captum_contrast.metrics\n"
        "assert quantus.AVAILABLE_METRICS['Randomisation']['Class Sensitivity'] is Foreign\n"
        "print(sum('Class Sensitivity' in str(w.message) for w in caught))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "1"


def test_every_metric_carries_the_attributes_the_cli_derives_its_tables_from() -> None:
    table = {
        m.cli_name: (m.short_name, m.multilabel, m.needs_explain_func, m.needs_object_masks)
        for m in METRICS
    }
    assert table == EXPECTED_CLI
    assert len(table) == len(METRICS)  # cli names are unique
    multilabel_keys = [m.short_name for m in METRICS if m.multilabel]
    assert len(set(multilabel_keys)) == len(multilabel_keys)  # macro-score keys are unique
    for metric in METRICS:
        for attribute in ("cli_name", "short_name"):
            assert attribute in vars(metric), (metric.__name__, attribute)
        assert "↑" not in metric.short_name and "↓" not in metric.short_name
    assert MassOnObject in METRICS


def test_quantus_evaluate_runs_these_metrics_beside_a_quantus_metric() -> None:
    model = small_cnn()
    x, y = batch()
    case = explainer(ContrastGradCAM, layer="2")
    metrics = {
        "AD": AverageDrop(),
        "AG": AverageGain(),
        "CS": ClassSensitivity(top_k=10),
        "CD": ConfidenceDrop(),
        "Insertion": Insertion(step=64),
        "Sparseness": quantus.Sparseness(disable_warnings=True),
    }
    results = quantus.evaluate(
        metrics=metrics,
        xai_methods={"Fake-CAM": fake_cam, "CASE": case},
        model=model,
        x_batch=x,
        y_batch=y,
        explain_func_kwargs={},
    )
    for method in ("Fake-CAM", "CASE"):
        assert set(results[method]) == set(metrics)
        for name, scores in results[method].items():
            assert len(scores) == len(x), (method, name)
    maps = fake_cam(model, x, y)
    np.testing.assert_allclose(results["Fake-CAM"]["AD"], AverageDrop()(model, x, y, a_batch=maps))
    # Fake-CAM explains every class with the same map: full agreement.
    assert results["Fake-CAM"]["CS"] == [100.0] * len(x)
    # CASE maps of a random network: ReLU zeroes some, whose agreement is NaN, not a crash.
    direct = ClassSensitivity(top_k=10)(model, x, y, a_batch=case(model, x, y), explain_func=case)
    np.testing.assert_array_equal(results["CASE"]["CS"], direct)
    assert np.isfinite(direct).any()
    assert np.isfinite(results["CASE"]["AG"]).all()


def test_explainer_matches_layer_grad_cam_upsampled() -> None:
    model = small_cnn()
    x, y = batch(3)
    explain = explainer(LayerGradCam, layer="2", relu_attributions=True)
    maps = explain(model=model, inputs=x, targets=y, device="cpu", method="GradCAM")
    expected = LayerGradCam(model, model[2]).attribute(
        torch.from_numpy(x), target=torch.from_numpy(y), relu_attributions=True
    )
    expected = F.interpolate(expected, size=(16, 16), mode="bilinear", align_corners=False)
    assert maps.shape == (3, 1, 16, 16) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, expected.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_explainer_forwards_attribute_kwargs_and_accepts_every_layer_form() -> None:
    model = small_cnn()
    x, y = batch(3)
    reference = ContrastGradCAM(model, model[2]).attribute(
        torch.from_numpy(x), target=torch.from_numpy(y), k=2
    )
    reference = F.interpolate(reference, size=(16, 16), mode="bilinear", align_corners=False)
    for layer in ("2", lambda m: m[2], model[2]):
        maps = explainer(ContrastGradCAM, layer=layer, k=2)(model, x, y)
        np.testing.assert_allclose(maps, reference.numpy(), rtol=1e-5, atol=1e-7)
    # Call-time keywords override the factory's.
    overridden = explainer(ContrastGradCAM, layer="2", k=1)(model, x, y, k=2)
    np.testing.assert_allclose(overridden, reference.numpy(), rtol=1e-5, atol=1e-7)


def test_explainer_rejects_what_it_cannot_use() -> None:
    model, other = small_cnn(), small_cnn()
    x, y = batch(2)
    with pytest.raises(ValueError, match="dotted name"):
        explainer(ContrastGradCAM, layer=other[2])(model, x, y)
    with pytest.raises(ValueError, match="names no submodule"):
        explainer(ContrastGradCAM, layer="layer4")(model, x, y)
    with pytest.raises(ValueError, match="return_weights"):
        explainer(ContrastGradCAM, layer="2", return_weights=True)(model, x, y)
    with pytest.raises(TypeError, match="method_class"):
        explainer(len, layer="2")


def test_metric_computes_maps_through_the_explainer_and_survives_all_zero_batches() -> None:
    model = small_cnn()
    x, y = batch(4)
    case = explainer(ContrastGradCAM, layer="2")
    direct = AverageDrop()(model, x, y, a_batch=case(model, x, y))
    lazy = AverageDrop()(model, x, y, explain_func=case, batch_size=2)
    np.testing.assert_allclose(direct, lazy, rtol=1e-6)

    def zeros(model, inputs, targets, **kwargs):
        return np.zeros((len(inputs), 1, 4, 4), dtype=np.float32)

    # Quantus asserts on an all-zero batch; here it is a mask that hides the whole image.
    black = AverageDrop()(model, x, y, explain_func=zeros)
    with torch.no_grad():
        p = torch.softmax(model(torch.from_numpy(x)), 1)[np.arange(4), y]
        o = torch.softmax(model(torch.zeros_like(torch.from_numpy(x))), 1)[np.arange(4), y]
    np.testing.assert_allclose(black, (100 * (p - o).clamp(min=0) / p).numpy(), atol=1e-4)


def test_fake_cam_is_ones_with_the_top_left_pixel_zero() -> None:
    maps = fake_cam(None, torch.zeros(2, 3, 4, 5))
    assert maps.shape == (2, 1, 4, 5)
    assert maps.sum() == 2 * (20 - 1) and (maps[:, :, 0, 0] == 0).all()
    with pytest.raises(ValueError, match="channel-first"):
        fake_cam(None, np.zeros((2, 4, 5)))


@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_every_metric_is_documented_in_one_style(metric) -> None:
    doc = metric.__doc__
    summary, blank = doc.splitlines()[:2]
    assert summary.strip() and not blank.strip()  # a one-line summary
    sections = [".. math::", "Scores:", "Degenerate maps:", "References:", "Args:", "Example:"]
    positions = [doc.find(section) for section in sections]
    assert -1 not in positions and positions == sorted(positions), metric.__name__
    assert f"from captum_contrast.metrics import {metric.__name__}" in doc
    assert "torch.manual_seed(0)" in doc
