"""Average Drop, Average Increase and Average Gain (Opti-CAM eqs. 13-15), as Quantus metrics."""

from __future__ import annotations

from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric, check_normalization, masked_probabilities
from captum_contrast.normalize import Normalization

GAIN_EPS = 1e-8


def _relative(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1.0)
    return np.where(denominator > 0, numerator / safe, 0.0)


def drop_scores(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Per-example Average Drop in percent: ``100 * [p - o]_+ / p``."""
    return 100 * _relative(np.maximum(p - o, 0.0), p)


def increase_scores(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Per-example Average Increase in percent: ``100 * 1[p < o]`` (strict)."""
    return 100 * (p < o).astype(np.float64)


def gain_scores(p: np.ndarray, o: np.ndarray, eps: float = GAIN_EPS) -> np.ndarray:
    """Per-example Average Gain in percent: ``100 * [o - p]_+ / (1 - p + eps)``."""
    return 100 * np.maximum(o - p, 0.0) / (1 - p + eps)


class _SaliencyMasking(CAMMetric):
    """p = softmax(f(x))_y and o = softmax(f(s * x))_y, two batched forwards per batch."""

    evaluation_category = EvaluationCategory.FAITHFULNESS

    def __init__(self, mask_normalization: Normalization = "range", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_normalization = check_normalization(mask_normalization)

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        original, masked, valid = masked_probabilities(
            model, x_batch, y_batch, a_batch, self.mask_normalization, "softmax"
        )
        rows = np.arange(len(x_batch))
        scores = self._score(original[rows, y_batch], masked[rows, y_batch])
        return np.where(valid, scores, np.nan).tolist()

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        raise NotImplementedError


_MASKING_DOC = """

    The image is multiplied by the map, range-normalised per example (``s = n(up(S))``, the
    map upsampled bilinearly to the input when it is smaller), and broadcast over channels:
    ``p = softmax(f(x))_y``, ``o = softmax(f(s * x))_y``. ``x_batch`` must be in the space
    where 0 means "removed": Opti-CAM masks [0, 1] pixels and puts the mean/std
    normalisation inside the model. Scores are per example in percent, so their mean is the
    paper's figure. A constant map (all zero included) becomes an all-zero mask, a
    legitimate and poor explanation that hides the whole image; a non-finite map scores NaN.

    Args:
        mask_normalization: ``"range"`` (default), ``"max"`` or ``"sigmoid"``, see
            :func:`captum_contrast.normalize`.{extra_args}
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...).
"""


class AverageDrop(_SaliencyMasking):
    __doc__ = (
        """Average Drop (AD, lower is better): ``100 * [p - o]_+ / p`` per example."""
        + _MASKING_DOC.format(extra_args="")
        + """
    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageDrop, fake_cam
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 8 * 8, 4)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> scores = AverageDrop()(model, x, np.array([0, 1]), a_batch=fake_cam(model, x, None))
        >>> len(scores)
        2
    """
    )

    name = "Average Drop"
    score_direction = ScoreDirection.LOWER

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return drop_scores(p, o)


class AverageIncrease(_SaliencyMasking):
    __doc__ = (
        """Average Increase (AI, higher is better): ``100 * 1[p < o]`` per example."""
        + _MASKING_DOC.format(extra_args="")
    )

    name = "Average Increase"
    score_direction = ScoreDirection.HIGHER

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return increase_scores(p, o)


class AverageGain(_SaliencyMasking):
    __doc__ = (
        """Average Gain (AG, higher is better): ``100 * [o - p]_+ / (1 - p + eps)`` per example."""
        + _MASKING_DOC.format(
            extra_args="\n        eps: Keeps the ratio finite when ``p = 1`` (default ``1e-8``)."
        )
    )

    name = "Average Gain"
    score_direction = ScoreDirection.HIGHER

    def __init__(
        self, mask_normalization: Normalization = "range", eps: float = GAIN_EPS, **kwargs: Any
    ) -> None:
        super().__init__(mask_normalization=mask_normalization, **kwargs)
        if not eps >= 0:
            raise ValueError(f"`eps` must be >= 0, got {eps!r}")
        self.eps = float(eps)

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return gain_scores(p, o, self.eps)
