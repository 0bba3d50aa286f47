"""Every method and every metric on float16, bfloat16 and float64 models (CPU), against the
float32 result (issue 22: OptiCAM's "fast" preset failed inside torch on float16/bfloat16,
and the metrics inside Quantus's float32 cast on any model that is not float32)."""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor

from captum_contrast import ContrastGradCAM, DifferenceSalience, FinerCAM, MinMaxCAM, OptiCAM
from captum_contrast.metrics import (
    METRICS,
    AverageIncrease,
    ClassSensitivity,
    MassOnObject,
    MultiLabelIncreaseInConfidence,
    explainer,
    masking_scores,
)
from tests.helpers import TwoConvNet

DTYPES = [torch.float16, torch.bfloat16, torch.float64]
LABELS = torch.tensor([[0, 1, 1, 0, 0], [1, 1, 0, 0, 1], [0, 1, 0, 1, 1]], dtype=torch.bool)
METHODS: dict[str, Callable[[TwoConvNet, Tensor], Tensor]] = {
    "contrast-grad-cam": lambda m, x: ContrastGradCAM(m, m.conv2).attribute(x, 1, k=2),
    "cosine": lambda m, x: ContrastGradCAM(m, m.conv2).cosine(x, 1, k=2),
    "minmax-cam": lambda m, x: MinMaxCAM(m, m.conv2).attribute(x, 1, labels=LABELS),
    "difference-salience": lambda m, x: DifferenceSalience(m, m.conv2).attribute(x, 1, contrast=2),
    "finer-cam": lambda m, x: FinerCAM(m, m.conv2).attribute(x, 1, k=2),
    "opti-cam-fast": lambda m, x: OptiCAM(m, m.conv2).attribute(x, 1, preset="fast", n_iter=4),
    "opti-cam-paper": lambda m, x: OptiCAM(m, m.conv2).attribute(x, 1, n_iter=4),
}
# Maps of an optimisation depend on its path, which depends on the precision: OptiCAM is
# checked for a finite map of the right dtype whose weights are a convex combination.
OPTIMISED = ("opti-cam-fast", "opti-cam-paper")
TOLERANCE = {torch.float16: 0.03, torch.bfloat16: 0.06, torch.float64: 1e-5}


def _model(dtype: torch.dtype = torch.float32) -> TwoConvNet:
    torch.manual_seed(0)
    return TwoConvNet(inplace=False).eval().to(dtype)


IMAGES = torch.rand(3, 3, 8, 8, generator=torch.Generator().manual_seed(1))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("name", sorted(METHODS))
def test_every_method_in_every_precision(name: str, dtype: torch.dtype) -> None:
    reference = METHODS[name](_model(), IMAGES)
    result = METHODS[name](_model(dtype), IMAGES.to(dtype))
    values = result[0] if isinstance(result, tuple) else result
    reference = reference[0] if isinstance(reference, tuple) else reference
    assert values.dtype == dtype and bool(torch.isfinite(values).all())
    assert values.shape == reference.shape
    if name not in OPTIMISED:
        scale = float(reference.abs().max())
        assert scale > 0
        error = float((values.double() - reference.double()).abs().max())
        assert error <= TOLERANCE[dtype] * scale, error


X_BATCH = IMAGES.numpy()
Y_BATCH = np.array([0, 1, 2])
A_BATCH = np.random.default_rng(0).random((3, 1, 4, 4))
S_BATCH = (np.random.default_rng(1).random((3, 1, 8, 8)) > 0.5).astype(np.float32)


def _scores(metric: type, model: TwoConvNet) -> np.ndarray:
    kwargs = {"s_batch": S_BATCH} if metric is MassOnObject else {}
    if metric is ClassSensitivity:
        # Grad-CAM at the first block: maps that are not empty after the clip at 0.
        kwargs["explain_func"] = explainer(LayerGradCam, "relu1")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        instance = metric(top_k=25) if metric is ClassSensitivity else metric()
        scores = instance(model, X_BATCH, Y_BATCH, a_batch=A_BATCH, **kwargs)
    return np.asarray(scores, dtype=np.float64)


INDICATORS = (AverageIncrease, MultiLabelIncreaseInConfidence)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
def test_every_metric_in_every_precision(metric: type, dtype: torch.dtype) -> None:
    reference = _scores(metric, _model())
    scores = _scores(metric, _model(dtype))
    assert np.isfinite(scores).all() and scores.shape == reference.shape
    if metric in INDICATORS:  # 0 or 100 per example: a rounding may flip a near tie
        assert set(np.unique(scores)) <= {0.0, 100.0}
        return
    if metric is ClassSensitivity:  # a rank-based share of 16 pixels: one may swap places
        np.testing.assert_allclose(scores, reference, atol=100 / 16 + 1e-9, rtol=0)
        return
    # Scores are percentages (or fractions): the dtype's precision on the logits, scaled.
    np.testing.assert_allclose(scores, reference, atol=100 * TOLERANCE[dtype], rtol=0)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_masking_scores_in_every_precision(dtype: torch.dtype) -> None:
    reference = masking_scores(_model(), X_BATCH, Y_BATCH, A_BATCH)
    scores = masking_scores(_model(dtype), X_BATCH, Y_BATCH, A_BATCH)
    for key, values in reference.items():
        if key in ("AI", "IC"):  # indicators, as above
            assert set(np.unique(scores[key])) <= {0.0, 100.0}
            continue
        np.testing.assert_allclose(scores[key], values, atol=100 * TOLERANCE[dtype], rtol=0)
