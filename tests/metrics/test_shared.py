"""masking_scores: the metric classes' numbers from shared forwards."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from captum_contrast.metrics import masking_scores
from captum_contrast.metrics.shared import MULTI_LABEL, SINGLE_LABEL


@pytest.fixture
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1),
        torch.nn.ReLU(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * 8 * 8, 5),
    ).eval()


def _data(count: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.random((count, 3, 8, 8), dtype=np.float32)
    maps = rng.random((count, 1, 4, 4))
    if count > 4:
        maps[2] = 0.3  # constant: an all-zero mask, scored as such
        maps[4, 0, 1, 1] = np.nan  # NaN for this example only
    return x, rng.integers(0, 5, count), maps


def _forwards(model: torch.nn.Module, run) -> int:
    calls = []
    handle = model.register_forward_hook(lambda *args: calls.append(1))
    try:
        run()
    finally:
        handle.remove()
    return len(calls)


@pytest.mark.parametrize("batch_size", [3, 64])
@pytest.mark.parametrize("normalization", ["range", "max"])
def test_single_label_scores_are_the_classes_scores(model, batch_size, normalization) -> None:
    x, y, maps = _data()
    shared = masking_scores(
        model, x, y, maps, mask_normalization=normalization, eps=1e-3, batch_size=batch_size
    )
    assert sorted(shared) == ["AD", "AG", "AI"]
    for cls in SINGLE_LABEL:
        extra = {"eps": 1e-3} if cls.short_name == "AG" else {}
        expected = cls(mask_normalization=normalization, **extra)(
            model, x, y, a_batch=maps, batch_size=batch_size
        )
        np.testing.assert_array_equal(shared[cls.short_name], np.array(expected))
    assert np.isnan(shared["AD"][4]) and not np.isnan(np.delete(shared["AD"], 4)).any()
    assert shared["AI"][2] in (0.0, 100.0)  # the constant map is scored, not NaN


def test_single_label_scores_by_hand(model) -> None:
    x, y, maps = _data(3)
    shared = masking_scores(model, x, y, maps)
    up = torch.nn.functional.interpolate(torch.as_tensor(maps), (8, 8), mode="bilinear")
    low = up.flatten(1).min(1).values.view(-1, 1, 1, 1)
    high = up.flatten(1).max(1).values.view(-1, 1, 1, 1)
    mask = ((up - low) / (high - low)).float()
    with torch.no_grad():
        p = model(torch.from_numpy(x)).double().softmax(1)[np.arange(3), y].numpy()
        o = model(torch.from_numpy(x) * mask).double().softmax(1)[np.arange(3), y].numpy()
    np.testing.assert_allclose(shared["AD"], 100 * np.maximum(p - o, 0) / p, rtol=1e-5)
    np.testing.assert_allclose(shared["AG"], 100 * np.maximum(o - p, 0) / (1 - p + 1e-8), rtol=1e-5)
    np.testing.assert_array_equal(shared["AI"], 100.0 * (p < o))


@pytest.mark.parametrize("threshold", [0.5, 0.3])
def test_multilabel_scores_are_the_classes_scores(model, threshold) -> None:
    x, y, maps = _data()
    shared = masking_scores(model, x, y, maps, multilabel=True, threshold=threshold, batch_size=4)
    assert sorted(shared) == ["AD", "ADO", "AR", "ARO", "IC"]
    for cls in MULTI_LABEL:
        expected = cls(threshold=threshold)(model, x, y, a_batch=maps, batch_size=4)
        np.testing.assert_array_equal(shared[cls.short_name], np.array(expected))
    assert any(shared["ADO"][np.arange(7) != 4] > 0)  # other detections are really read


def test_one_forward_per_input_variant_per_batch(model) -> None:
    x, y, maps = _data(8)
    assert _forwards(model, lambda: masking_scores(model, x, y, maps, batch_size=4)) == 4
    classes = sum(
        _forwards(model, lambda c=c: c()(model, x, y, a_batch=maps, batch_size=4))
        for c in SINGLE_LABEL
    )
    assert classes == 12
    multi = lambda: masking_scores(model, x, y, maps, multilabel=True, batch_size=4)  # noqa: E731
    assert _forwards(model, multi) == 6


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"threshold": 1.0}, "threshold"),
        ({"eps": -1.0}, "eps"),
        ({"mask_normalization": "minmax"}, "mask_normalization"),
    ],
)
def test_bad_arguments(model, kwargs, message) -> None:
    x, y, maps = _data()
    with pytest.raises(ValueError, match=message):
        masking_scores(model, x, y, maps, **kwargs)


def test_bad_inputs(model) -> None:
    x, y, maps = _data()
    with pytest.raises(ValueError, match="a_batch"):
        masking_scores(model, x, y, None)
    with pytest.raises(ValueError, match="y_batch"):
        masking_scores(model, x, y + 5, maps)
    with pytest.raises(ValueError, match="maps"):
        masking_scores(model, x, y, maps[:3])
