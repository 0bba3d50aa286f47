"""The one masking computation: each masking metric names its input variants, one runner forwards each once.

A masking metric reads class probabilities of the unmasked input and of a few *variants* of
it: ``"kept"`` (``s * x``, the map's evidence alone) or ``"removed"`` (``(1 - s) * x``),
``s`` the map normalised to ``[0, 1]`` at input resolution. A :class:`MaskingMetric` declares
``variants`` and scores the probabilities it is handed; :func:`run_masking` computes every
variant any of several metrics needs once per batch (and the unmasked forward once, or not
at all when the caller already has its scores), so AD, AG and AI together cost two forwards
per batch, and MinMax-CAM's five multi-label metrics three.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import (
    as_probabilities,
    check_classes,
    check_normalization,
    class_scores,
    finite_rows,
    saliency_masks,
)
from captum_contrast.normalization import Normalization
from captum_contrast.scores import Probability, ScoresLike, probability_of

VARIANTS: tuple[str, ...] = ("kept", "removed")
"""``"kept"``: ``s * x``; ``"removed"``: ``(1 - s) * x``."""


def variant_input(x_batch: np.ndarray, masks: np.ndarray, variant: str) -> np.ndarray:
    """The input of one variant: ``s * x`` (``"kept"``) or ``(1 - s) * x`` (``"removed"``).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics._masking import variant_input
        >>> x, s = np.full((1, 1, 1, 2), 4.0), np.array([[[[0.25, 1.0]]]])
        >>> variant_input(x, s, "kept").ravel().tolist(), variant_input(x, s, "removed").ravel().tolist()
        ([1.0, 4.0], [3.0, 0.0])
    """
    if variant == "kept":
        return (x_batch * masks).astype(x_batch.dtype, copy=False)
    if variant == "removed":
        return (x_batch * (1 - masks)).astype(x_batch.dtype, copy=False)
    raise ValueError(f"unknown masking variant {variant!r}; expected one of {VARIANTS}")


class MaskingMetric(CAMMetric):
    """A metric of the class probabilities of ``x`` and of masked variants of ``x``.

    A subclass sets ``variants`` (which masked inputs it reads), ``probability`` (how the
    model's class scores become probabilities: ``"softmax"``, or ``"sigmoid"`` for the
    multi-label family; a ``scores`` that declares its own overrides it) and implements
    :meth:`score`. The forwards are :func:`run_masking`'s, shared with every other masking
    metric evaluated on the same batch (:func:`captum_contrast.metrics.score_masking`).
    """

    variants: ClassVar[tuple[str, ...]] = ("kept",)
    probability: ClassVar[Probability] = "softmax"

    def __init__(self, mask_normalization: Normalization = "range", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mask_normalization = check_normalization(mask_normalization)

    def score(self, probabilities: Mapping[str, np.ndarray], labels: np.ndarray) -> np.ndarray:
        """Per-example scores from ``{"original": (B, C), <variant>: (B, C), ...}``."""
        raise NotImplementedError

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        (scores,) = run_masking([self], model, x_batch, y_batch, a_batch, self.batch_scores)
        return scores.tolist()


def run_masking(
    metrics: Sequence[MaskingMetric],
    model: ModelInterface,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    a_batch: np.ndarray,
    scores: ScoresLike = None,
    original_scores: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Every metric's per-example scores, each input variant forwarded once.

    Args:
        metrics: Masking metrics sharing one ``mask_normalization``.
        model, x_batch, y_batch, a_batch: One batch, as the metrics receive it.
        scores: How the model's output is read (:mod:`captum_contrast.scores`).
        original_scores: The unmasked input's ``(B, C)`` class scores when the caller
            already has them (the forward that computed the maps); else one forward.

    Returns:
        One ``(B,)`` array per metric; NaN where the map or a forward is not finite.
    """
    normalizations = {metric.mask_normalization for metric in metrics}
    if len(normalizations) != 1:
        raise ValueError(
            f"metrics evaluated together must share one `mask_normalization`, got {sorted(normalizations)}"
        )
    masks, valid = saliency_masks(a_batch, x_batch.shape[-2:], normalizations.pop())
    if original_scores is None:
        original_scores = class_scores(model, x_batch, scores)
    raw = {"original": np.asarray(original_scores, dtype=np.float64)}
    check_classes(y_batch, raw["original"].shape[1])
    for variant in dict.fromkeys(v for metric in metrics for v in metric.variants):
        raw[variant] = class_scores(model, variant_input(x_batch, masks, variant), scores)
    for values in raw.values():
        valid = valid & finite_rows(values)
    results, cache = [], {}
    for metric in metrics:
        probability = probability_of(scores, metric.probability)
        if probability not in cache:
            cache[probability] = {
                key: as_probabilities(values, probability) for key, values in raw.items()
            }
        results.append(np.where(valid, metric.score(cache[probability], y_batch), np.nan))
    return results
