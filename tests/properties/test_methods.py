"""Every method, on random models, layouts, dtypes, output structures and target forms.

Adding a method is one line in :data:`METHODS`. Each example checks the promise (see
:mod:`tests.properties.strategies`): the automatic layout gives the map the explicit
transform gives, Captum's ``LayerGradCam`` agrees where it applies, an invalid target is
an error naming it, and the model is bit-identical afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
import torch
from captum.attr import LayerGradCam
from hypothesis import given
from hypothesis import strategies as st
from torch import Tensor

from captum_contrast import ContrastGradCAM, DifferenceSalience, FinerCAM, MinMaxCAM, OptiCAM
from tests.helpers import assert_untouched, model_snapshot
from tests.properties.strategies import Case, assert_clear_error, cases, class_indices, run

Reference = Callable[[LayerGradCam, Tensor, list[int], int], Tensor]


@dataclass(frozen=True)
class Method:
    """``call(forward, layer, images, target, transform, classes, valid) -> maps`` (``valid``:
    the class per example when ``target`` is valid, for arguments derived from it); ``reference``
    gives the same map from Captum's LayerGradCam, when there is one."""

    name: str
    call: Callable[..., Tensor]
    reference: Reference | None = None


def _other(valid: list[int] | None, classes: int) -> Any:
    """A contrast class per example, different from a valid target (else any class)."""
    return [(t + 1) % classes for t in valid] if valid is not None else 1


def _labels(valid: list[int] | None, classes: int) -> Tensor | None:
    return torch.nn.functional.one_hot(torch.tensor(valid), classes).bool() if valid else None


METHODS = [
    Method(
        "ContrastGradCAM",
        lambda f, layer, x, t, tr, c, v: ContrastGradCAM(f, layer, reshape_transform=tr).attribute(
            x, t, k=1
        ),
    ),
    Method(
        "MinMaxCAM",  # one label per example: MinMax-CAM is Grad-CAM
        lambda f, layer, x, t, tr, c, v: MinMaxCAM(f, layer, reshape_transform=tr).attribute(
            x, t, labels=_labels(v, c)
        ),
        lambda gc, x, t, c: gc.attribute(x, t, relu_attributions=True),
    ),
    Method(
        "OptiCAM",
        lambda f, layer, x, t, tr, c, v: OptiCAM(f, layer, reshape_transform=tr).attribute(
            x, t, n_iter=2
        ),
    ),
    Method(
        "DifferenceSalience",  # Grad-CAM is linear in the score: GC(t) - GC(contrast)
        lambda f, layer, x, t, tr, c, v: DifferenceSalience(
            f, layer, reshape_transform=tr
        ).attribute(x, t, contrast=_other(v, c)),
        lambda gc, x, t, c: gc.attribute(x, t) - gc.attribute(x, [(v + 1) % c for v in t]),
    ),
    Method(
        "FinerCAM",  # one reference, gamma 1, no ReLU: GC(t) - GC(contrast), like Difference
        lambda f, layer, x, t, tr, c, v: FinerCAM(f, layer, reshape_transform=tr).attribute(
            x, t, contrast=_other(v, c), gamma=1.0, relu_attributions=False
        ),
        lambda gc, x, t, c: gc.attribute(x, t) - gc.attribute(x, [(v + 1) % c for v in t]),
    ),
]


@pytest.mark.parametrize("method", METHODS, ids=lambda m: m.name)
@given(data=st.data())
def test_the_promise_holds_for_every_method(method: Method, data: st.DataObject) -> None:
    case: Case = data.draw(cases())
    batch = len(case.images)
    target, valid = data.draw(class_indices(batch, case.classes))
    before = model_snapshot(case.model)
    outcome = run(
        lambda: method.call(
            case.model, case.model.layer, case.images, target, None, case.classes, valid
        )
    )
    assert_untouched(before, case.model)
    if outcome.error is not None:
        assert_clear_error(outcome.error)
        return
    assert valid is not None, f"target {target!r} was accepted"
    maps = outcome.value
    assert isinstance(maps, Tensor) and maps.shape == (batch, 1, *case.grid), maps.shape
    if not bool(torch.isfinite(maps).all()):
        assert outcome.warned, "NaN or infinite map without a warning"
    explicit = run(
        lambda: method.call(
            case.model, case.model.layer, case.images, target, case.transform, case.classes, valid
        )
    )
    assert explicit.error is None, explicit.error
    torch.testing.assert_close(maps, explicit.value, equal_nan=True)
    assert_untouched(before, case.model)
    reference = case.reference
    if method.reference is None or reference is None or case.images.dtype != torch.float64:
        return
    forward, layer = reference
    case.model.eval()  # Captum runs the model as it is: the package's eval-mode reading
    expected = method.reference(LayerGradCam(forward, layer), case.images, valid, case.classes)
    torch.testing.assert_close(maps, expected)
