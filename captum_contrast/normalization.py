"""Per-example normalisation of attribution maps, shared by every method and metric."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

Normalization = Literal["range", "max", "sigmoid"]
NORMALIZATIONS: tuple[str, ...] = ("range", "max", "sigmoid")


def _safe_divide(numerator: Tensor, denominator: Tensor) -> Tensor:
    # Division that gives 0 (and a finite gradient) where the denominator is 0, like
    # TensorFlow's divide_no_nan in the MinMax-CAM reference code.
    nonzero = denominator != 0
    return torch.where(nonzero, numerator / torch.where(nonzero, denominator, 1), 0)


def normalize(attributions: Tensor, method: Normalization = "range") -> Tensor:
    """Normalise each example's map over all its non-batch dimensions (Opti-CAM's ``n``).

    Args:
        attributions: ``(B, ...)`` maps, e.g. ``(B, 1, h, w)``.
        method: ``"range"``: ``(S - min) / (max - min)``; ``"max"``: ``S / max``;
            ``"sigmoid"``: ``sigmoid(S)``. A constant map under ``"range"`` (or a map whose
            maximum is 0 under ``"max"``) becomes all zeros rather than NaN.

    Returns:
        A tensor of the same shape; differentiable, so Opti-CAM can optimise through it.

    Example:
        >>> import torch
        >>> from captum_contrast import normalize
        >>> normalize(torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]]]), "range").flatten().tolist()
        [0.0, 0.5, 0.25, 1.0]
    """
    if method not in NORMALIZATIONS:
        raise ValueError(f"`method` must be one of {NORMALIZATIONS}, got {method!r}")
    if attributions.dim() < 2:
        raise ValueError(
            f"`attributions` must be batched (B, ...), got shape {tuple(attributions.shape)}"
        )
    if method == "sigmoid":
        return torch.sigmoid(attributions)
    flat = attributions.flatten(1)
    view = (-1,) + (1,) * (attributions.dim() - 1)
    maximum = flat.max(dim=1).values.reshape(view)
    if method == "max":
        return _safe_divide(attributions, maximum)
    minimum = flat.min(dim=1).values.reshape(view)
    return _safe_divide(attributions - minimum, maximum - minimum)
