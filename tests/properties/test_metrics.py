"""Every metric of ``captum_contrast.metrics.METRICS`` and the confusion matrix, on random
models, dtypes, maps (random, constant, NaN, wrong shape) and label forms.

A score is finite, or NaN with a warning; an invalid label or map is an error naming it;
the model is bit-identical afterwards. The confusion matrix equals a count by hand.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from captum.attr import LayerGradCam
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import Tensor, nn

from captum_contrast import confusion_matrix
from captum_contrast.metrics import METRICS, ClassSensitivity, MassOnObject, explainer
from tests.helpers import assert_untouched, model_snapshot
from tests.properties.strategies import assert_clear_error, cases, class_indices, run


@st.composite
def maps(draw: st.DrawFn, batch: int, size: tuple[int, int]) -> tuple[np.ndarray, bool]:
    """Maps in some form, and whether they are well formed (``(B, 1, h, w)``, ``h, w`` at
    most the input's)."""
    form = draw(st.sampled_from(["random", "constant", "nan", "3-d", "wrong batch", "2 maps"]))
    height, width = draw(st.integers(1, size[0])), draw(st.integers(1, size[1]))
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    values = rng.random((batch, 1, height, width))
    if form == "constant":
        return np.full_like(values, draw(st.sampled_from([0.0, 1.0]))), True
    if form == "nan":
        values[0, 0, 0, 0] = np.nan
        return values, True
    if form == "3-d":
        return values[:, 0], True
    if form == "wrong batch":
        return rng.random((batch + 1, 1, height, width)), False
    if form == "2 maps":  # at least 2 wide: (B, 2, h, 1) reads as channel-last (B, h', w', 1)
        return rng.random((batch, 2, height, max(width, 2))), False
    return values, True


def _metric(metric: type) -> Any:
    return metric(top_k=50) if metric is ClassSensitivity else metric()


# 13 metrics: a third of the profile's examples each (CI: 3 per metric).
@pytest.mark.parametrize("metric", METRICS, ids=lambda m: m.__name__)
@settings(max_examples=max(3, settings.default.max_examples // 3))
@given(data=st.data())
def test_the_promise_holds_for_every_metric(metric: type, data: st.DataObject) -> None:
    case = data.draw(cases(output=False))
    model, batch = case.model, len(case.images)
    x_batch = case.images.float().numpy()
    labels, valid = data.draw(class_indices(batch, case.classes))
    a_batch, well_formed = data.draw(maps(batch, tuple(x_batch.shape[-2:])))
    kwargs: dict[str, Any] = {"a_batch": a_batch}
    if metric is MassOnObject:
        kwargs["s_batch"] = np.random.default_rng(0).random((batch, 1, *x_batch.shape[-2:])) > 0.5
    if metric is ClassSensitivity:
        kwargs["explain_func"] = explainer(LayerGradCam, "stem")
    before = model_snapshot(model)
    outcome = run(lambda: _metric(metric)(model, x_batch, labels, **kwargs))
    assert_untouched(before, model)
    if outcome.error is not None:
        assert_clear_error(outcome.error)
        return
    assert valid is not None or metric is MassOnObject, f"`y_batch`={labels!r} was accepted"
    assert well_formed, f"maps of shape {a_batch.shape} were accepted"
    scores = np.asarray(outcome.value, dtype=np.float64)
    assert scores.shape == (batch,)
    if not np.isfinite(scores).all():
        assert outcome.warned or not np.isfinite(a_batch).all(), "NaN score without a warning"


class Scores(nn.Module):
    """The model's outputs are its inputs: predictions are chosen by the test."""

    def forward(self, x: Tensor) -> Tensor:
        return x


@given(
    outputs=st.integers(2, 6),
    num_classes=st.one_of(st.integers(-1, 7), st.sampled_from([2.0, True, None])),
    batches=st.lists(st.integers(0, 4), min_size=0, max_size=3),
    data=st.data(),
)
def test_the_confusion_matrix_is_a_count_or_a_clear_error(
    outputs: int, num_classes: Any, batches: list[int], data: st.DataObject
) -> None:
    loader, truth = [], []
    rng = np.random.default_rng(data.draw(st.integers(0, 2**16)))
    for size in batches:
        logits = torch.from_numpy(rng.random((size, outputs)))
        labels, valid = data.draw(class_indices(max(size, 1), outputs)) if size else ([], [])
        loader.append((logits, labels))
        truth.append((logits.argmax(1).tolist(), valid))
    outcome = run(lambda: confusion_matrix(Scores().eval(), loader, num_classes))
    if outcome.error is not None:
        assert_clear_error(outcome.error)
        return
    assert isinstance(num_classes, int) and not isinstance(num_classes, bool)
    assert num_classes >= outputs, f"{outputs} outputs counted in {num_classes} columns"
    expected = np.zeros((num_classes, num_classes), dtype=np.int64)
    for predicted, valid in truth:
        assert valid is not None and len(valid) == len(predicted), "invalid labels counted"
        for label, guess in zip(valid, predicted, strict=True):
            expected[label, guess] += 1
    np.testing.assert_array_equal(outcome.value.numpy(), expected)
