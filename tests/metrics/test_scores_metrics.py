"""The metrics score what ``scores`` selects, per example where the selection is per example."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.special import softmax

from captum_contrast import ContrastGradCAM
from captum_contrast.metrics import (
    AverageDrop,
    ClassSensitivity,
    Deletion,
    explainer,
    masking_scores,
)
from captum_contrast.normalization import normalize
from captum_contrast.scores import RegionScores, StepScores
from tests.test_scores import DenseNet, SequenceNet, _model, _per_example_mask


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((3, 3, 8, 8), dtype=np.float32)
    maps = rng.random((3, 1, 4, 4))
    return x, np.array([1, 0, 2]), maps


def test_average_drop_of_a_region_by_hand() -> None:
    model = _model(DenseNet)
    x, y, maps = _data()
    mask = _per_example_mask()
    got = AverageDrop()(model, x, y, a_batch=maps, scores=RegionScores(mask), batch_size=2)
    s = normalize(
        torch.nn.functional.interpolate(
            torch.as_tensor(maps).float(), size=(8, 8), mode="bilinear"
        ),
        "range",
    ).numpy()
    with torch.no_grad():
        before = model(torch.as_tensor(x)).double()
        after = model(torch.as_tensor(x * s)).double()
    expected = []
    for b in range(3):
        p = softmax(before[b][:, mask[b]].mean(dim=1).numpy())[y[b]]
        o = softmax(after[b][:, mask[b]].mean(dim=1).numpy())[y[b]]
        expected.append(100 * max(p - o, 0) / p)
    np.testing.assert_allclose(got, expected, rtol=1e-5)


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_per_example_selection_does_not_depend_on_the_batching(batch_size: int) -> None:
    model = _model(SequenceNet)
    x, y, maps = _data()
    scores = StepScores([0, 4, 7])
    got = masking_scores(model, x, y, maps, scores=scores, batch_size=batch_size)
    for b, step in enumerate([0, 4, 7]):
        alone = masking_scores(
            model, x[b : b + 1], y[b : b + 1], maps[b : b + 1], scores=StepScores(step)
        )
        for key in got:
            np.testing.assert_allclose(got[key][b], alone[key][0], rtol=1e-6)


def test_given_unmasked_scores_skip_the_unmasked_forward() -> None:
    model = _model(DenseNet)
    x, y, maps = _data()
    scores = RegionScores(_per_example_mask())
    calls = []
    model.register_forward_pre_hook(lambda module, args: calls.append(len(args[0])))
    plain = masking_scores(model, x, y, maps, scores=scores)
    assert sum(calls) == 6  # x and s * x
    with torch.no_grad():
        original = scores(model(torch.as_tensor(x))).double().numpy()
    calls.clear()
    shared = masking_scores(model, x, y, maps, scores=scores, original_scores=original)
    assert sum(calls) == 3  # s * x only
    for key in plain:
        np.testing.assert_allclose(shared[key], plain[key], rtol=1e-6)


def test_class_sensitivity_and_curves_read_the_selection() -> None:
    model = _model(DenseNet)
    x, y, _ = _data()
    scores = RegionScores(_per_example_mask())
    explain = explainer(ContrastGradCAM, layer="conv1")
    sensitivity = ClassSensitivity(top_k=25)(
        model, x, y, explain_func=explain, scores=scores, batch_size=2
    )
    assert np.all((np.asarray(sensitivity) >= 0) & (np.asarray(sensitivity) <= 100))
    maps = explain(model, x, y, scores=scores)
    curve = Deletion(step=16)(model, x, y, a_batch=maps, scores=scores)
    assert len(curve) == 3 and np.all(np.isfinite(curve))
    # The same numbers one example at a time: the selection followed the batches.
    for b in range(3):
        alone = ClassSensitivity(top_k=25)(
            model,
            x[b : b + 1],
            y[b : b + 1],
            explain_func=explain,
            scores=RegionScores(_per_example_mask()[b]),
        )
        assert alone[0] == pytest.approx(sensitivity[b])


def test_grad_cam_explainer_reads_scores_through_a_wrapped_forward() -> None:
    from captum.attr import LayerGradCam

    model = _model(DenseNet)
    x, y, _ = _data()
    scores = RegionScores(_per_example_mask())
    got = explainer(LayerGradCam, layer="conv1")(model, x, y, scores=scores)
    wrapped = LayerGradCam(lambda t: scores(model(t)), model.conv1)
    expected = wrapped.attribute(torch.as_tensor(x), target=torch.as_tensor(y)).detach().numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-7)
