"""Per-example normalisation of attribution maps, shared by every method and metric."""

from __future__ import annotations

import warnings
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
            ``"sigmoid"``: ``sigmoid(S)``. A constant map under ``"range"`` (or an all-zero
            map under ``"max"``) becomes all zeros rather than NaN. Under ``"max"``, a map
            with no positive value but some negative one (maximum <= 0) has no scale that
            brings its maximum to 1 (``S / max`` would invert it): it becomes NaN, with a
            ``RuntimeWarning`` naming the examples; use ``"range"`` for signed maps. Under
            ``"range"`` and ``"max"``, an example whose map holds inf or NaN becomes NaN,
            with a ``RuntimeWarning``; ``"sigmoid"`` is elementwise.

    Returns:
        A tensor of the same shape; differentiable, so Opti-CAM can optimise through it.

    Example:
        >>> import torch
        >>> from captum_contrast import normalize
        >>> normalize(torch.tensor([[[[1.0, 3.0], [2.0, 5.0]]]]), "range").flatten().tolist()
        [0.0, 0.5, 0.25, 1.0]
    """
    if not isinstance(attributions, Tensor) or attributions.is_complex():
        got = attributions.dtype if isinstance(attributions, Tensor) else type(attributions)
        raise TypeError(f"`attributions` must be a real torch.Tensor, got {got}")
    if method not in NORMALIZATIONS:
        raise ValueError(f"`method` must be one of {NORMALIZATIONS}, got {method!r}")
    if attributions.dim() < 2:
        raise ValueError(
            f"`attributions` must be batched (B, ...), got shape {tuple(attributions.shape)}"
        )
    if method == "sigmoid":
        return torch.sigmoid(attributions)
    view = (-1,) + (1,) * (attributions.dim() - 1)
    finite = torch.isfinite(attributions.detach()).flatten(1).all(dim=1)
    _warn_examples(~finite, "hold inf or NaN")
    # Computed on zeros where not finite, so the gradients of the other examples stay finite.
    clean = torch.where(finite.reshape(view), attributions, 0)
    flat = clean.flatten(1)
    maximum = flat.max(dim=1).values.reshape(view)
    if method == "max":
        inverted = (maximum.flatten() <= 0) & (flat != 0).any(dim=1)
        _warn_examples(inverted, "have no positive value (max <= 0), so S / max would invert them")
        result = _safe_divide(clean, maximum)
        return torch.where((~finite | inverted).reshape(view), torch.nan, result)
    minimum = flat.min(dim=1).values.reshape(view)
    result = _safe_divide(clean - minimum, maximum - minimum)
    return torch.where(finite.reshape(view), result, torch.nan)


def _warn_examples(bad: Tensor, why: str) -> None:
    if bool(bad.any()):
        examples = bad.nonzero().flatten().tolist()
        warnings.warn(
            f"normalize: the maps of examples {examples[:10]} {why}; they are NaN",
            RuntimeWarning,
            stacklevel=3,
        )
