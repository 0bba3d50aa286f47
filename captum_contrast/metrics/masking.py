"""Average Drop, Average Increase and Average Gain (Opti-CAM eqs. 13-15), as Quantus metrics.

All three mask the image with the saliency map, ``s * x``, and compare the class
probability of the masked image, ``o``, with that of the image, ``p``. The per-example
score functions :func:`drop_scores`, :func:`increase_scores` and :func:`gain_scores` are
public so that tests and tables can apply them to probabilities computed elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from quantus.helpers.enums import EvaluationCategory, ScoreDirection

from captum_contrast.metrics._helpers import safe_ratio
from captum_contrast.metrics._masking import MaskingMetric
from captum_contrast.normalization import Normalization

GAIN_EPS = 1e-8


def drop_scores(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Per-example Average Drop in percent: ``100 * [p - o]_+ / p``.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import drop_scores
        >>> drop_scores(np.array([0.5, 0.8]), np.array([0.25, 0.9])).tolist()
        [50.0, 0.0]
    """
    p, o = _probabilities(p, o)
    return 100 * safe_ratio(np.maximum(p - o, 0.0), p)


def increase_scores(p: np.ndarray, o: np.ndarray) -> np.ndarray:
    """Per-example Average Increase in percent: ``100 * 1[p < o]`` (strict).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import increase_scores
        >>> increase_scores(np.array([0.5, 0.8, 0.8]), np.array([0.25, 0.9, 0.8])).tolist()
        [0.0, 100.0, 0.0]
    """
    p, o = _probabilities(p, o)
    return 100 * (p < o).astype(np.float64)


def gain_scores(p: np.ndarray, o: np.ndarray, eps: float = GAIN_EPS) -> np.ndarray:
    """Per-example Average Gain in percent: ``100 * [o - p]_+ / (1 - p + eps)``.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import gain_scores
        >>> gain_scores(np.array([0.5, 0.8]), np.array([0.25, 0.9])).round(3).tolist()  # 0.1 / 0.2
        [0.0, 50.0]
    """
    p, o = _probabilities(p, o)
    return 100 * np.maximum(o - p, 0.0) / (1 - p + eps)


def _probabilities(p: Any, o: Any) -> tuple[np.ndarray, np.ndarray]:
    """``p`` and ``o`` as float arrays of one shape holding probabilities (NaN passes).

    No broadcasting: a score per example needs both probabilities of that example.
    """
    p, o = np.asarray(p, dtype=np.float64), np.asarray(o, dtype=np.float64)
    if p.shape != o.shape:
        raise ValueError(
            f"`p` and `o` must hold one probability per example each, got shapes {p.shape} "
            f"and {o.shape}"
        )
    for name, values in (("p", p), ("o", o)):
        if ((values < 0) | (values > 1)).any():
            raise ValueError(f"`{name}` must hold probabilities in [0, 1], got {values.tolist()}")
    return p, o


class _SaliencyMasking(MaskingMetric):
    """p = softmax(f(x))_y and o = softmax(f(s * x))_y: the unmasked and the "kept" forward."""

    variants = ("kept",)
    probability = "softmax"

    def score(self, probabilities: Mapping[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
        rows = np.arange(len(labels))
        return self._score(
            probabilities["original"][rows, labels], probabilities["kept"][rows, labels]
        )

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class AverageDrop(_SaliencyMasking):
    r"""Average Drop (AD): how much of the class probability is lost by masking with the map.

    A faithful map covers the evidence the model uses, so the image masked by the map,
    ``s * x``, should keep the probability of the explained class; AD measures the
    relative loss. It was introduced with Grad-CAM++ (Chattopadhay et al., 2018) and is
    eq. 13 of Opti-CAM (Zhang et al., 2024):

    .. math::

        \mathrm{AD}(\%) = \frac{1}{N} \sum_{i=1}^{N}
            \frac{[p_i^c - o_i^c]_+}{p_i^c} \cdot 100,
        \qquad p_i^c = \mathrm{softmax}(f(x_i))_c,
        \quad o_i^c = \mathrm{softmax}(f(s_i \odot x_i))_c

    with ``c`` = ``y_batch``. The mask ``s = n(up(S))`` is the map upsampled bilinearly to
    the input (``align_corners=False``) when it is smaller, normalised per example by
    ``mask_normalization`` and broadcast over channels. ``x_batch`` must be in the space
    where 0 means "removed": Opti-CAM masks [0, 1] pixels and puts the mean/std
    normalisation inside the model. Each batch costs two batched forwards (``x`` and
    ``s * x``). Paired with :class:`AverageGain`, since a map that keeps the whole image
    (:func:`fake_cam`) has a near-zero AD.

    Scores: one per example, in percent, in [0, 100]; lower is better
    (``ScoreDirection.LOWER``). Their mean is the paper's figure. A probability ``p`` that
    underflows to 0 gives 0.

    Degenerate maps: a constant map (all zero included) range-normalises to an all-zero
    mask, a legitimate and poor explanation that hides the whole image, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        Chattopadhay et al., "Grad-CAM++: Generalized gradient-based visual explanations
        for deep convolutional networks", WACV 2018. Zhang et al., "Opti-CAM: Optimizing
        saliency maps for interpretability", CVIU 2024, eq. 13.

    Args:
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            Opti-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageDrop
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> scores = AverageDrop()(model, x, np.array([2, 2]), a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [0.0, 1.52]
    """

    name = "Average Drop"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "average-drop"
    short_name = "AD"

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return drop_scores(p, o)


class AverageIncrease(_SaliencyMasking):
    r"""Average Increase (AI): how often masking with the map raises the class probability.

    Also called *increase in confidence* (Chattopadhay et al., 2018): the share of images
    whose masked version ``s * x`` is classified with a strictly higher probability than
    the image itself, eq. 14 of Opti-CAM (Zhang et al., 2024):

    .. math::

        \mathrm{AI}(\%) = \frac{1}{N} \sum_{i=1}^{N} \mathbb{1}_{p_i^c < o_i^c} \cdot 100,
        \qquad p_i^c = \mathrm{softmax}(f(x_i))_c,
        \quad o_i^c = \mathrm{softmax}(f(s_i \odot x_i))_c

    with ``c`` = ``y_batch`` and the mask ``s = n(up(S))`` built as for
    :class:`AverageDrop` (upsampled bilinearly, normalised per example, broadcast over
    channels; ``x_batch`` in the space where 0 means "removed"). Opti-CAM shows that AI
    paired with AD is gamed by :func:`fake_cam` and replaces it by :class:`AverageGain`;
    it is kept for comparison with earlier work. Two batched forwards per batch.

    Scores: one per example, 0 or 100 (percent), so their mean is the paper's
    percentage; higher is better (``ScoreDirection.HIGHER``). Equal probabilities count
    as no increase.

    Degenerate maps: a constant map (all zero included) range-normalises to an all-zero
    mask that hides the whole image, and is scored as such; a map holding NaN or infinity
    scores NaN without affecting the rest of the batch.

    References:
        Chattopadhay et al., "Grad-CAM++", WACV 2018. Zhang et al., "Opti-CAM: Optimizing
        saliency maps for interpretability", CVIU 2024, eq. 14.

    Args:
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            Opti-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageIncrease
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> AverageIncrease()(model, x, np.array([0, 1]), a_batch=maps)
        [100.0, 100.0]
    """

    name = "Average Increase"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "average-increase"
    short_name = "AI"

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return increase_scores(p, o)


class AverageGain(_SaliencyMasking):
    r"""Average Gain (AG): how much class probability masking with the map gains, relatively.

    Opti-CAM's symmetric counterpart of :class:`AverageDrop` (Zhang et al., 2024,
    eq. 15): the gain of the masked image ``s * x`` relative to the most it could gain.
    A map that keeps the whole image, such as :func:`fake_cam`, scores near-zero AD but
    also near-zero AG, which is why AD is paired with AG rather than with AI:

    .. math::

        \mathrm{AG}(\%) = \frac{1}{N} \sum_{i=1}^{N}
            \frac{[o_i^c - p_i^c]_+}{1 - p_i^c + \varepsilon} \cdot 100,
        \qquad p_i^c = \mathrm{softmax}(f(x_i))_c,
        \quad o_i^c = \mathrm{softmax}(f(s_i \odot x_i))_c

    with ``c`` = ``y_batch``; the paper has no ``epsilon``, which keeps the ratio finite
    when ``p = 1`` (as in xplique). The mask ``s = n(up(S))`` is built as for
    :class:`AverageDrop` (upsampled bilinearly, normalised per example, broadcast over
    channels; ``x_batch`` in the space where 0 means "removed"). Two batched forwards per
    batch.

    Scores: one per example, in percent, in [0, 100] (up to ``eps``); higher is better
    (``ScoreDirection.HIGHER``). Their mean is the paper's figure.

    Degenerate maps: a constant map (all zero included) range-normalises to an all-zero
    mask that hides the whole image, and is scored as such; a map holding NaN or infinity
    scores NaN without affecting the rest of the batch.

    References:
        Zhang et al., "Opti-CAM: Optimizing saliency maps for interpretability", CVIU 2024,
        eq. 15.

    Args:
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            Opti-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        eps: Added to the denominator ``1 - p``, >= 0 (default ``1e-8``).
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageGain
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> scores = AverageGain()(model, x, np.array([0, 1]), a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [1.97, 0.49]
    """

    name = "Average Gain"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "average-gain"
    short_name = "AG"

    def __init__(
        self, mask_normalization: Normalization = "range", eps: float = GAIN_EPS, **kwargs: Any
    ) -> None:
        super().__init__(mask_normalization=mask_normalization, **kwargs)
        if not eps >= 0:
            raise ValueError(f"`eps` must be >= 0, got {eps!r}")
        self.eps = float(eps)

    def _score(self, p: np.ndarray, o: np.ndarray) -> np.ndarray:
        return gain_scores(p, o, self.eps)
