"""Multi-label masking metrics of MinMax-CAM (eqs. 10-14): IC, AD, ADO, AR, ARO.

For the label ``c`` a map explains (``y_batch``), with sigmoid probabilities
``Y = sigma(f(x))``, ``O = sigma(f(M * x))`` and ``Obar = sigma(f((1 - M) * x))``, ``M`` the
range-normalised map at input resolution, and ``N = C \\ {c}`` the *other detections*,
``C = {l : Y_l > threshold}`` (the model's detections, as the reference code does, not the
ground truth):

* IC  = ``1[Y_c < O_c]``
* AD  = ``[Y_c - O_c]_+ / Y_c``
* AR  = ``[Y_c - Obar_c]_+ / Y_c``
* ADO = ``1/max(1, |N|) * sum_{n in N} [Y_n - O_n]_+ / Y_n`` (0 for a single detection)
* ARO = the same as ADO with ``Obar``

Each metric returns these per example in percent. The reference protocol evaluates every
detection ``(image, c)`` with ``c`` in ``C``: build that batch with :func:`detections`,
then aggregate per class with :func:`captum_contrast.metrics.multilabel_macro_scores`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast._layer import model_device
from captum_contrast.metrics._base import CAMMetric, check_normalization, masked_probabilities
from captum_contrast.metrics.masking import _relative
from captum_contrast.normalize import Normalization


def detections(
    model: torch.nn.Module, x_batch: np.ndarray, threshold: float = 0.5, device: str | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Every detection ``(example, label)`` with ``sigmoid(f(x))_label > threshold``.

    Returns:
        ``(example_index, label)``, two aligned integer arrays, so that
        ``x_batch[example_index], label`` is the batch the reference protocol evaluates.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import detections
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
        >>> with torch.no_grad():
        ...     _ = model[1].weight.zero_(); _ = model[1].bias.copy_(torch.tensor([2.0, -2.0, 1.0]))
        >>> detections(model, np.zeros((2, 1, 2, 2), dtype=np.float32))
        (array([0, 0, 1, 1]), array([0, 2, 0, 2]))
    """
    target = torch.device(device) if device is not None else model_device(model)
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(x_batch), dtype=torch.float32, device=target))
    detected = (torch.sigmoid(logits) > threshold).cpu().numpy()
    examples, labels = np.nonzero(detected)
    return examples, labels


class _MultiLabelMasking(CAMMetric):
    evaluation_category = EvaluationCategory.FAITHFULNESS
    # Which masked input the score reads: M * x, or (1 - M) * x for the retention metrics.
    _complement: ClassVar[bool] = False

    def __init__(
        self,
        threshold: float = 0.5,
        mask_normalization: Normalization = "range",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if not 0 <= threshold < 1:
            raise ValueError(f"`threshold` must be a probability in [0, 1), got {threshold!r}")
        self.threshold = float(threshold)
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
            model, x_batch, y_batch, a_batch, self.mask_normalization, "sigmoid", self._complement
        )
        scores = 100 * self._score(original, masked, y_batch)
        return np.where(valid, scores, np.nan).tolist()

    def _score(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _own_drop(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        rows = np.arange(len(labels))
        own, after = original[rows, labels], masked[rows, labels]
        return _relative(np.maximum(own - after, 0.0), own)

    def _others_drop(
        self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        others = original > self.threshold
        others[np.arange(len(labels)), labels] = False
        drops = _relative(np.maximum(original - masked, 0.0), original)
        return (drops * others).sum(axis=1) / np.maximum(others.sum(axis=1), 1)


_ARGS_DOC = """
    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))``, ``Obar = sigmoid(f((1 - M) * x))``, with
    ``M`` the map range-normalised at input resolution (upsampled bilinearly when smaller)
    and broadcast over channels; ``c`` is ``y_batch``; the other detections are
    ``{l != c : Y_l > threshold}``. Scores are per example in percent; aggregate per class
    with :func:`multilabel_macro_scores`, and build the reference protocol's batch (every
    detected label of every image) with :func:`detections`.

    Args:
        threshold: Probability above which a label counts as detected (default 0.5).
        mask_normalization: How a map becomes a mask, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options.

    A constant map becomes an all-zero mask (``M * x`` hides everything, ``(1 - M) * x``
    hides nothing); a non-finite map scores NaN.
"""


class MultiLabelIncreaseInConfidence(_MultiLabelMasking):
    __doc__ = "Increase in Confidence (IC, higher is better): ``100 * 1[Y_c < O_c]``.\n" + _ARGS_DOC
    name = "Increase in Confidence (multi-label)"
    score_direction = ScoreDirection.HIGHER

    def _score(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        rows = np.arange(len(labels))
        return (original[rows, labels] < masked[rows, labels]).astype(np.float64)


class MultiLabelAverageDrop(_MultiLabelMasking):
    __doc__ = "Average Drop (AD, lower is better): ``100 * [Y_c - O_c]_+ / Y_c``.\n" + _ARGS_DOC
    name = "Average Drop (multi-label)"
    score_direction = ScoreDirection.LOWER
    _score = _MultiLabelMasking._own_drop


class AverageDropOfOthers(_MultiLabelMasking):
    __doc__ = (
        "Average Drop of Others (ADO, higher is better): the mean relative drop of the other\n"
        "    detections when only the map's region is kept.\n" + _ARGS_DOC
    )
    name = "Average Drop of Others"
    score_direction = ScoreDirection.HIGHER
    _score = _MultiLabelMasking._others_drop


class AverageRetention(_MultiLabelMasking):
    __doc__ = (
        "Average Retention (AR, higher is better): ``100 * [Y_c - Obar_c]_+ / Y_c``, the\n"
        "    relative drop of the class when the map's region is removed.\n" + _ARGS_DOC
    )
    name = "Average Retention"
    score_direction = ScoreDirection.HIGHER
    _complement = True
    _score = _MultiLabelMasking._own_drop


class AverageRetentionOfOthers(_MultiLabelMasking):
    __doc__ = (
        "Average Retention of Others (ARO, lower is better): the mean relative drop of the\n"
        "    other detections when the map's region is removed.\n" + _ARGS_DOC
    )
    name = "Average Retention of Others"
    score_direction = ScoreDirection.LOWER
    _complement = True
    _score = _MultiLabelMasking._others_drop
