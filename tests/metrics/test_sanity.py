"""Sanity checks on every registered method: the random map, and the parameter randomisation
tests (Quantus MPRT and eMPRT) through ``metrics.explainer``."""

from __future__ import annotations

import numpy as np
import pytest

from captum_contrast.app.registry import METHODS, explain_func
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.trained import QUICK_CONFIG, single_thread, trained_model
from captum_contrast.metrics import random_cam, randomisation_scores

BASELINES = ("fake-cam", "random-cam")


@pytest.fixture(scope="module")
def scores(tmp_path_factory) -> dict[str, dict[str, np.ndarray]]:
    """MPRT and eMPRT of every registered method on the quick digit-canvas CNN, 8 canvases."""
    with single_thread():  # seconds: the tiny QUICK_CONFIG model
        model, _, _ = trained_model(QUICK_CONFIG, tmp_path_factory.mktemp("quick"), progress=False)
    canvases = MultiDigitCanvases(n=8, split="test", size=32, seed=1)
    x = canvases.images.numpy()
    y = canvases.labels.float().argmax(dim=1).numpy()  # one digit each canvas holds
    results = {}
    for name in METHODS:
        overrides = {"n_iter": 3} if METHODS[name].iterative else {}
        # A dotted layer name: Quantus explains a randomised deep copy of the model.
        explain = explain_func(name, model, "features", **overrides)
        results[name] = randomisation_scores(model, x, y, explain)
    return results


def test_the_model_free_baselines_fail_by_construction(scores) -> None:
    for name in BASELINES:
        np.testing.assert_allclose(scores[name]["mprt"], 1.0, atol=1e-9, err_msg=name)
        np.testing.assert_allclose(scores[name]["emprt"], 0.0, atol=1e-9, err_msg=name)


@pytest.mark.parametrize("name", [n for n in METHODS if n not in BASELINES])
def test_every_method_depends_on_the_weights(scores, name: str) -> None:
    mprt = scores[name]["mprt"]
    # NaN where the ReLU zeroes a map (of the randomised model, mostly): nothing to rank.
    finite = mprt[np.isfinite(mprt)]
    assert len(finite) >= len(mprt) // 2, (name, mprt)
    # A random re-draw of every layer: the map's rank correlation with the original collapses
    # (the baselines stay at exactly 1).
    assert float(finite.mean()) < 0.4, (name, mprt)
    assert not np.allclose(scores[name]["emprt"], 0.0), (name, scores[name]["emprt"])


def test_random_cam_is_seeded_coarse_noise() -> None:
    x = np.zeros((3, 2, 20, 28), dtype=np.float32)
    first, again, other = random_cam(None, x), random_cam(None, x), random_cam(None, x, seed=1)
    assert first.shape == (3, 1, 20, 28) and first.dtype == np.float32
    np.testing.assert_array_equal(first, again)
    assert not np.allclose(first, other)
    # Upsampled from 7x7 cells: neighbouring pixels are close, far ones independent.
    assert np.abs(np.diff(first, axis=-1)).max() < 0.35
    # 1-D and 3-D grids, and a grid smaller than the cells.
    assert random_cam(None, np.zeros((2, 1, 50))).shape == (2, 1, 50)
    assert random_cam(None, np.zeros((1, 1, 4, 5, 6))).shape == (1, 1, 4, 5, 6)
    assert random_cam(None, np.zeros((1, 1, 3, 3))).shape == (1, 1, 3, 3)


@pytest.mark.parametrize(
    ("inputs", "kwargs", "message"),
    [
        (np.zeros((2, 8)), {}, "channel-first"),
        (np.zeros((1, 1, 2, 2, 2, 2)), {}, "1-3 grid axes"),
        (np.zeros((1, 1, 8, 8)), {"cells": 0}, "`cells` must be a positive int"),
    ],
)
def test_random_cam_bad_inputs(inputs, kwargs, message) -> None:
    with pytest.raises(ValueError, match=message):
        random_cam(None, inputs, **kwargs)
