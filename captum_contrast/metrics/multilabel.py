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

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection

from captum_contrast._model import model_device
from captum_contrast.metrics._helpers import safe_ratio
from captum_contrast.metrics._masking import MaskingMetric
from captum_contrast.normalization import Normalization


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
    threshold = _check_threshold(threshold)
    target = torch.device(device) if device is not None else model_device(model)
    with torch.no_grad():
        logits = model(torch.as_tensor(np.asarray(x_batch), dtype=torch.float32, device=target))
    detected = (torch.sigmoid(logits) > threshold).cpu().numpy()
    examples, labels = np.nonzero(detected)
    return examples, labels


def _check_threshold(threshold: Any) -> float:
    """A detection threshold: a probability in [0, 1) (1 would detect nothing)."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.number)):
        raise TypeError(f"`threshold` must be a number, got {type(threshold).__name__}")
    if not 0 <= threshold < 1:  # NaN fails too
        raise ValueError(f"`threshold` must be a probability in [0, 1), got {threshold!r}")
    return float(threshold)


class MultiLabelMasking(MaskingMetric):
    """Y = sigmoid(f(x)) and O = sigmoid(f(M * x)) (or of (1 - M) * x): two forwards."""

    variants = ("kept",)  # ("removed",) for the retention metrics: (1 - M) * x
    probability = "sigmoid"

    def __init__(
        self,
        threshold: float = 0.5,
        mask_normalization: Normalization = "range",
        **kwargs: Any,
    ) -> None:
        super().__init__(mask_normalization=mask_normalization, **kwargs)
        self.threshold = _check_threshold(threshold)

    def score(self, probabilities: Mapping[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
        masked = probabilities[self.variants[0]]
        return 100 * self._score(probabilities["original"], masked, labels)

    def _score(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def _own_drop(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return own_drops(original, masked, labels)

    def _others_drop(
        self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray
    ) -> np.ndarray:
        return others_drops(original, masked, labels, self.threshold)


def increases(original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per example, 1 where label ``c``'s probability rose strictly after masking (IC)."""
    rows = np.arange(len(labels))
    return (original[rows, labels] < masked[rows, labels]).astype(np.float64)


def own_drops(original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Per example, label ``c``'s relative drop ``[Y_c - O_c]_+ / Y_c`` (AD, AR)."""
    rows = np.arange(len(labels))
    own, after = original[rows, labels], masked[rows, labels]
    return safe_ratio(np.maximum(own - after, 0.0), own)


def others_drops(
    original: np.ndarray, masked: np.ndarray, labels: np.ndarray, threshold: float
) -> np.ndarray:
    """Per example, the other detections' mean relative drop, 0 without any (ADO, ARO)."""
    others = original > threshold
    others[np.arange(len(labels)), labels] = False
    drops = safe_ratio(np.maximum(original - masked, 0.0), original)
    return (drops * others).sum(axis=1) / np.maximum(others.sum(axis=1), 1)


class MultiLabelIncreaseInConfidence(MultiLabelMasking):
    r"""Increase in Confidence (IC, multi-label): how often keeping only the map raises the label.

    MinMax-CAM's multi-label form (David, Pedrini and Dias, eq. 10) of Chattopadhay et
    al.'s increase in confidence (Grad-CAM++, WACV 2018): a map that covers the evidence
    for label ``c`` should, when it alone is kept, leave the model at least as confident
    in ``c``.

    .. math::

        \mathrm{IC}(\%) = \frac{100}{\sum_i |C_i|} \sum_i \sum_{c \in C_i}
            \mathbb{1}_{Y_i^c < O_{ic}^c}

    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))`` and ``Obar = sigmoid(f((1 - M) * x))``
    (two batched forwards per batch, ``x`` and the one masked input the metric reads):
    ``M`` is the map upsampled bilinearly to the input when it is smaller, normalised per
    example by ``mask_normalization`` and broadcast over channels; ``x_batch`` is in the
    space where 0 means "removed"; ``c`` is ``y_batch``; the other detections are
    ``N = {l != c : Y_l > threshold}`` (the model's detections, as MinMax-CAM's code
    does, not the ground truth). MinMax-CAM's benchmark scores every detection
    ``(image, c)``: build that batch with :func:`detections`, then average per class and
    over classes, as its code does, with :func:`multilabel_macro_scores` (key
    ``"IC"``, the class's ``short_name``); IC takes part in no F1 score.

    Scores: one per example, 0 or 100 (percent); higher is better
    (``ScoreDirection.HIGHER``). Equal probabilities count as no increase.

    Degenerate maps: a constant map (all zero included) becomes an all-zero mask, so
    ``M * x`` hides the whole image and ``(1 - M) * x`` hides nothing, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        David, Pedrini and Dias, "MinMax-CAM: Improving Focus of CAM-based Visualization
        Techniques in Multi-label Problems", eq. 10; official code
        ``lucasdavid/minmax-cam``.

    Args:
        threshold: Probability above which a label counts as detected, in [0, 1)
            (default 0.5). Unused by IC, which reads label ``c`` only.
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            MinMax-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import MultiLabelIncreaseInConfidence, detections
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> examples, labels = detections(model, x, threshold=0.48)  # every (image, label)
        >>> examples.tolist(), labels.tolist()
        ([0, 0, 0, 1, 1], [0, 1, 2, 0, 2])
        >>> maps = np.random.default_rng(2).random((len(labels), 1, 4, 4))  # one per detection
        >>> metric = MultiLabelIncreaseInConfidence(threshold=0.48)
        >>> scores = metric(model, x[examples], labels, a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [100.0, 0.0, 0.0, 100.0, 100.0]
    """

    name = "Increase in Confidence (multi-label)"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "ml-increase"
    short_name = "IC"
    multilabel = True

    def _score(self, original: np.ndarray, masked: np.ndarray, labels: np.ndarray) -> np.ndarray:
        return increases(original, masked, labels)


class MultiLabelAverageDrop(MultiLabelMasking):
    r"""Average Drop (AD, multi-label): the share of a label's probability lost by keeping the map.

    MinMax-CAM's multi-label form (David, Pedrini and Dias, eq. 11) of Chattopadhay et
    al.'s average drop (Grad-CAM++, WACV 2018): masking the image with an accurate map for
    label ``c`` should not lower the model's confidence in ``c``.

    .. math::

        \mathrm{AD}(\%) = \frac{100}{\sum_i |C_i|} \sum_i \sum_{c \in C_i}
            \frac{[Y_i^c - O_{ic}^c]_+}{Y_i^c}

    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))`` and ``Obar = sigmoid(f((1 - M) * x))``
    (two batched forwards per batch, ``x`` and the one masked input the metric reads):
    ``M`` is the map upsampled bilinearly to the input when it is smaller, normalised per
    example by ``mask_normalization`` and broadcast over channels; ``x_batch`` is in the
    space where 0 means "removed"; ``c`` is ``y_batch``; the other detections are
    ``N = {l != c : Y_l > threshold}`` (the model's detections, as MinMax-CAM's code
    does, not the ground truth). MinMax-CAM's benchmark scores every detection
    ``(image, c)``: build that batch with :func:`detections`, then average per class and
    over classes, as its code does, with :func:`multilabel_macro_scores` (key
    ``"AD"``, the class's ``short_name``), which also gives ``F1-`` = HM(AD, ARO)
    with :class:`AverageRetentionOfOthers`.

    Scores: one per example, in percent, in [0, 100]; lower is better
    (``ScoreDirection.LOWER``). A probability ``Y_c`` that underflows to 0 gives 0.

    Degenerate maps: a constant map (all zero included) becomes an all-zero mask, so
    ``M * x`` hides the whole image and ``(1 - M) * x`` hides nothing, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        David, Pedrini and Dias, "MinMax-CAM: Improving Focus of CAM-based Visualization
        Techniques in Multi-label Problems", eq. 11; official code
        ``lucasdavid/minmax-cam``.

    Args:
        threshold: Probability above which a label counts as detected, in [0, 1)
            (default 0.5). Unused by AD, which reads label ``c`` only.
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            MinMax-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import MultiLabelAverageDrop, detections
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> examples, labels = detections(model, x, threshold=0.48)  # every (image, label)
        >>> examples.tolist(), labels.tolist()
        ([0, 0, 0, 1, 1], [0, 1, 2, 0, 2])
        >>> maps = np.random.default_rng(2).random((len(labels), 1, 4, 4))  # one per detection
        >>> metric = MultiLabelAverageDrop(threshold=0.48)
        >>> scores = metric(model, x[examples], labels, a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [0.0, 2.39, 0.41, 0.0, 0.0]
        >>> from captum_contrast.metrics import multilabel_macro_scores
        >>> round(multilabel_macro_scores({"AD": scores}, labels)["AD"], 2)  # per class, then mean
        0.86
    """

    name = "Average Drop (multi-label)"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "ml-drop"
    short_name = "AD"
    multilabel = True
    _score = MultiLabelMasking._own_drop


class AverageDropOfOthers(MultiLabelMasking):
    r"""Average Drop of Others (ADO): how much keeping only the map lowers the other detections.

    One of MinMax-CAM's multi-label metrics (David, Pedrini and Dias, eq. 12): a map
    focused on label ``c`` alone should, when only it is kept, remove the evidence for the
    image's other detected labels, so their probabilities should drop. It is the mean of
    the other detections' relative drops, 0 when ``c`` is the only detection.

    .. math::

        \mathrm{ADO}(\%) = \frac{100}{\sum_i |C_i|} \sum_i \sum_{c \in C_i}
            \frac{1}{\max(1, |N_i|)} \sum_{n \in N_i} \frac{[Y_i^n - O_{ic}^n]_+}{Y_i^n}

    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))`` and ``Obar = sigmoid(f((1 - M) * x))``
    (two batched forwards per batch, ``x`` and the one masked input the metric reads):
    ``M`` is the map upsampled bilinearly to the input when it is smaller, normalised per
    example by ``mask_normalization`` and broadcast over channels; ``x_batch`` is in the
    space where 0 means "removed"; ``c`` is ``y_batch``; the other detections are
    ``N = {l != c : Y_l > threshold}`` (the model's detections, as MinMax-CAM's code
    does, not the ground truth). MinMax-CAM's benchmark scores every detection
    ``(image, c)``: build that batch with :func:`detections`, then average per class and
    over classes, as its code does, with :func:`multilabel_macro_scores` (key
    ``"ADO"``, the class's ``short_name``), which also gives ``F1+`` = HM(AR, ADO)
    with :class:`AverageRetention`.

    Scores: one per example, in percent, in [0, 100]; higher is better
    (``ScoreDirection.HIGHER``). An example with no other detection scores 0 and still
    counts. A probability ``Y_n`` that underflows to 0 contributes 0.

    Degenerate maps: a constant map (all zero included) becomes an all-zero mask, so
    ``M * x`` hides the whole image and ``(1 - M) * x`` hides nothing, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        David, Pedrini and Dias, "MinMax-CAM: Improving Focus of CAM-based Visualization
        Techniques in Multi-label Problems", eq. 12; official code
        ``lucasdavid/minmax-cam``.

    Args:
        threshold: Probability above which a label counts as detected, in [0, 1)
            (default 0.5).
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            MinMax-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageDropOfOthers, detections
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> examples, labels = detections(model, x, threshold=0.48)  # every (image, label)
        >>> examples.tolist(), labels.tolist()
        ([0, 0, 0, 1, 1], [0, 1, 2, 0, 2])
        >>> maps = np.random.default_rng(2).random((len(labels), 1, 4, 4))  # one per detection
        >>> metric = AverageDropOfOthers(threshold=0.48)
        >>> scores = metric(model, x[examples], labels, a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [0.54, 1.75, 0.0, 0.0, 0.0]
    """

    name = "Average Drop of Others"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "ml-drop-others"
    short_name = "ADO"
    multilabel = True
    _score = MultiLabelMasking._others_drop
