"""MinMax-CAM's retention metrics (eqs. 12-13): what removing the map's evidence leaves, AR and ARO.

They read ``Obar = sigma(f((1 - M) * x))``, the input with the map's evidence removed; see
:mod:`captum_contrast.metrics.multilabel` for the family's definitions and protocol.
"""

from __future__ import annotations

from quantus.helpers.enums import EvaluationCategory, ScoreDirection

from captum_contrast.metrics.multilabel import MultiLabelMasking


class AverageRetention(MultiLabelMasking):
    r"""Average Retention (AR): the share of the label's probability lost by removing the map.

    One of MinMax-CAM's multi-label metrics (David, Pedrini and Dias, eq. 13): where AD
    asks whether the map sits on the evidence for label ``c``, AR asks whether it covers
    all of it, so occluding the map's region, ``(1 - M) * x``, should lower the model's
    confidence in ``c``.

    .. math::

        \mathrm{AR}(\%) = \frac{100}{\sum_i |C_i|} \sum_i \sum_{c \in C_i}
            \frac{[Y_i^c - \bar{O}_{ic}^c]_+}{Y_i^c}

    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))`` and ``Obar = sigmoid(f((1 - M) * x))``
    (two batched forwards per batch, ``x`` and the one masked input the metric reads):
    ``M`` is the map upsampled bilinearly to the input when it is smaller, normalised per
    example by ``mask_normalization`` and broadcast over channels; ``x_batch`` is in the
    space where 0 means "removed"; ``c`` is ``y_batch``; the other detections are
    ``N = {l != c : Y_l > threshold}`` (the model's detections, as MinMax-CAM's code
    does, not the ground truth). MinMax-CAM's benchmark scores every detection
    ``(image, c)``: build that batch with :func:`detections`, then average per class and
    over classes, as its code does, with :func:`multilabel_macro_scores` (key
    ``"AR"``, the class's ``short_name``), which also gives ``F1+`` = HM(AR, ADO)
    with :class:`AverageDropOfOthers`.

    Scores: one per example, in percent, in [0, 100]; higher is better
    (``ScoreDirection.HIGHER``). A probability ``Y_c`` that underflows to 0 gives 0.

    Degenerate maps: a constant map (all zero included) becomes an all-zero mask, so
    ``M * x`` hides the whole image and ``(1 - M) * x`` hides nothing, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        David, Pedrini and Dias, "MinMax-CAM: Improving Focus of CAM-based Visualization
        Techniques in Multi-label Problems", eq. 13; official code
        ``lucasdavid/minmax-cam``.

    Args:
        threshold: Probability above which a label counts as detected, in [0, 1)
            (default 0.5). Unused by AR, which reads label ``c`` only.
        mask_normalization: How a map becomes a mask in [0, 1]: ``"range"`` (default,
            MinMax-CAM), ``"max"`` or ``"sigmoid"``, see :func:`captum_contrast.normalize`.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import AverageRetention, detections
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> examples, labels = detections(model, x, threshold=0.48)  # every (image, label)
        >>> examples.tolist(), labels.tolist()
        ([0, 0, 0, 1, 1], [0, 1, 2, 0, 2])
        >>> maps = np.random.default_rng(2).random((len(labels), 1, 4, 4))  # one per detection
        >>> metric = AverageRetention(threshold=0.48)
        >>> scores = metric(model, x[examples], labels, a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [0.0, 0.0, 0.0, 0.0, 0.0]
    """

    name = "Average Retention"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "ml-retention"
    short_name = "AR"
    multilabel = True
    variants = ("removed",)
    _score = MultiLabelMasking._own_drop


class AverageRetentionOfOthers(MultiLabelMasking):
    r"""Average Retention of Others (ARO): how much removing the map lowers the other detections.

    One of MinMax-CAM's multi-label metrics (David, Pedrini and Dias, eq. 14): a map
    focused on label ``c`` alone should leave the evidence for the image's other detected
    labels untouched when its region is occluded, ``(1 - M) * x``, so their probabilities
    should not drop. It is the mean of the other detections' relative drops, 0 when ``c``
    is the only detection.

    .. math::

        \mathrm{ARO}(\%) = \frac{100}{\sum_i |C_i|} \sum_i \sum_{c \in C_i}
            \frac{1}{\max(1, |N_i|)} \sum_{n \in N_i} \frac{[Y_i^n - \bar{O}_{ic}^n]_+}{Y_i^n}

    ``Y = sigmoid(f(x))``, ``O = sigmoid(f(M * x))`` and ``Obar = sigmoid(f((1 - M) * x))``
    (two batched forwards per batch, ``x`` and the one masked input the metric reads):
    ``M`` is the map upsampled bilinearly to the input when it is smaller, normalised per
    example by ``mask_normalization`` and broadcast over channels; ``x_batch`` is in the
    space where 0 means "removed"; ``c`` is ``y_batch``; the other detections are
    ``N = {l != c : Y_l > threshold}`` (the model's detections, as MinMax-CAM's code
    does, not the ground truth). MinMax-CAM's benchmark scores every detection
    ``(image, c)``: build that batch with :func:`detections`, then average per class and
    over classes, as its code does, with :func:`multilabel_macro_scores` (key
    ``"ARO"``, the class's ``short_name``), which also gives ``F1-`` = HM(AD, ARO)
    with :class:`MultiLabelAverageDrop`.

    Scores: one per example, in percent, in [0, 100]; lower is better
    (``ScoreDirection.LOWER``). An example with no other detection scores 0 and still
    counts. A probability ``Y_n`` that underflows to 0 contributes 0.

    Degenerate maps: a constant map (all zero included) becomes an all-zero mask, so
    ``M * x`` hides the whole image and ``(1 - M) * x`` hides nothing, and is scored as
    such; a map holding NaN or infinity scores NaN without affecting the rest of the batch.

    References:
        David, Pedrini and Dias, "MinMax-CAM: Improving Focus of CAM-based Visualization
        Techniques in Multi-label Problems", eq. 14; official code
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
        >>> from captum_contrast.metrics import AverageRetentionOfOthers, detections
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> examples, labels = detections(model, x, threshold=0.48)  # every (image, label)
        >>> examples.tolist(), labels.tolist()
        ([0, 0, 0, 1, 1], [0, 1, 2, 0, 2])
        >>> maps = np.random.default_rng(2).random((len(labels), 1, 4, 4))  # one per detection
        >>> metric = AverageRetentionOfOthers(threshold=0.48)
        >>> scores = metric(model, x[examples], labels, a_batch=maps)
        >>> np.round(scores, 2).tolist()
        [0.69, 0.0, 0.78, 0.0, 0.0]
    """

    name = "Average Retention of Others"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "ml-retention-others"
    short_name = "ARO"
    multilabel = True
    variants = ("removed",)
    _score = MultiLabelMasking._others_drop
