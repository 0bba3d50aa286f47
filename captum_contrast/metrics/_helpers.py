"""What the metrics compute alike: maps at input resolution, masks, probabilities, ranks, checks.

Every function works on a whole batch at once (one batched forward per input variant, no
loop over examples). The metric classes in the sibling modules import them from here;
:class:`captum_contrast.metrics._base.CAMMetric` holds only the Quantus side.
"""

from __future__ import annotations

import warnings
from typing import Any, Literal, cast

import numpy as np
import torch
import torch.nn.functional as F
from quantus.helpers.model.model_interface import ModelInterface
from torch import Tensor

from captum_contrast._validation import class_indices
from captum_contrast.normalization import NORMALIZATIONS, Normalization, normalize
from captum_contrast.scores import (
    Probability,
    ScoresLike,
    probability_of,
    read_scores,
    to_probabilities,
)

Activation = Literal["softmax", "sigmoid"]
"""How logits become probabilities: ``"softmax"`` (single-label) or ``"sigmoid"`` (multi-label)."""


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` elementwise, 0 where the denominator is <= 0, NaN for NaN.

    The relative drops of the metrics (``[p - o]_+ / p``) divide by a probability, which
    can underflow to 0; the ratio is then 0 rather than NaN or infinity, and no
    division warning is raised. A NaN probability stays NaN: it is no evidence of a
    perfect score.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics._helpers import safe_ratio
        >>> safe_ratio(np.array([1.0, 2.0, 3.0, 1.0]), np.array([4.0, 0.0, -1.0, np.nan])).tolist()
        [0.25, 0.0, 0.0, nan]
    """
    positive = denominator > 0
    ratio = np.where(positive, numerator / np.where(positive, denominator, 1.0), 0.0)
    return np.where(np.isnan(numerator) | np.isnan(denominator), np.nan, ratio)


def check_labels(y_batch: Any, batch_size: int) -> np.ndarray:
    """``y_batch`` as a ``(B,)`` int64 array, or a ValueError naming it.

    The indices are checked by :func:`captum_contrast._validation.class_indices`: floats
    (even whole ones), booleans and NaN are refused.
    """
    labels = class_indices(y_batch, "y_batch").numpy()
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1 or len(labels) != batch_size:
        raise ValueError(
            f"`y_batch` must hold one class index per example, shape ({batch_size},); "
            f"got shape {labels.shape}"
        )
    return labels


def check_classes(labels: np.ndarray, num_classes: int) -> None:
    """Raise a ValueError naming ``y_batch`` if a label is not an output of the model."""
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"`y_batch` holds class indices outside [0, {num_classes - 1}] "
            f"(the model has {num_classes} outputs)"
        )


def check_normalization(method: str) -> Normalization:
    """``method`` if it is one of :data:`captum_contrast.normalization.NORMALIZATIONS`."""
    if method not in NORMALIZATIONS:
        raise ValueError(f"`mask_normalization` must be one of {NORMALIZATIONS}, got {method!r}")
    return cast(Normalization, method)


def check_percent(value: float, name: str) -> float:
    """``value`` as a float if it is a percentage in (0, 100], else a ValueError naming it."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 100:
        raise ValueError(f"`{name}` must be a percentage in (0, 100], got {value!r}")
    return float(value)


def maps_at_input(maps: np.ndarray, size: tuple[int, int]) -> Tensor:
    """``(B, 1, h, w)`` maps as a float tensor at ``size``, upsampled bilinearly if needed."""
    tensor = torch.as_tensor(maps, dtype=torch.float32)
    if tuple(tensor.shape[-2:]) != tuple(size):
        tensor = F.interpolate(tensor, size=tuple(size), mode="bilinear", align_corners=False)
    return tensor


def finite_maps(maps: np.ndarray) -> np.ndarray:
    """``(B,)`` True where an example's map holds only finite values."""
    return np.isfinite(maps).reshape(len(maps), -1).all(axis=1)


def saliency_masks(
    maps: np.ndarray, size: tuple[int, int], method: Normalization = "range"
) -> tuple[np.ndarray, np.ndarray]:
    """Masks ``s = n(up(S))`` in [0, 1] at ``size`` (Opti-CAM), and which maps were finite.

    A non-finite map is replaced by zeros so its neighbours in the batch are unaffected;
    the caller gives that example ``NaN``.
    """
    valid = finite_maps(maps)
    upsampled = maps_at_input(np.where(valid[:, None, None, None], maps, 0.0), size)
    return normalize(upsampled, method).numpy(), valid


def class_scores(
    model: ModelInterface, x_batch: np.ndarray, scores: ScoresLike = None
) -> np.ndarray:
    """The ``(B, C)`` class scores ``scores`` reads from one batched forward, as float64.

    The model runs in its own dtype and on its device (Quantus's ``predict`` would cast the
    input to float32 and could not read a dict, a sequence or a detection output); the
    output is read by ``scores`` (:mod:`captum_contrast.scores`, ``None``: logits).
    """
    x_input = model.shape_input(x_batch, x_batch.shape, channel_first=True, batched=True)
    network = model.get_model()
    tensors = [*network.parameters(), *network.buffers()]
    parameter = next((t for t in tensors if t.is_floating_point()), None)
    device = getattr(model, "device", None) or (parameter.device if parameter is not None else None)
    dtype = (
        parameter.dtype
        if parameter is not None and parameter.is_floating_point()
        else torch.float32
    )
    inputs = torch.as_tensor(np.asarray(x_input), device=device).to(dtype)
    with torch.no_grad():
        outputs = network(inputs, **getattr(model, "model_predict_kwargs", {}))
        values = read_scores(scores, outputs, batch_size=len(x_batch))
    return values.detach().to(torch.float64).cpu().numpy()


def as_probabilities(values: np.ndarray, probability: Probability) -> np.ndarray:
    """``(B, C)`` class scores as probabilities; a row with a non-finite score is NaN.

    An example whose scores are not all finite (a NaN or infinite pixel, a float16
    overflow) gets a row of NaN, with a warning, so every metric scores it NaN; softmax
    would otherwise turn a single infinite logit into a confident-looking distribution.
    """
    probs = np.array(to_probabilities(values, probability), dtype=np.float64)
    broken = ~finite_rows(values)
    if broken.any():
        warnings.warn(
            f"the model returned NaN or infinite logits for {int(broken.sum())} of {len(values)} "
            "examples (non-finite pixels in x_batch, or an overflow); they score NaN",
            RuntimeWarning,
            stacklevel=3,
        )
        probs[broken] = np.nan
    return probs


def probabilities(
    model: ModelInterface, x_batch: np.ndarray, activation: Activation, scores: ScoresLike = None
) -> np.ndarray:
    """Class probabilities ``(B, classes)`` from one batched forward.

    ``activation`` is the metric's own probability (softmax or sigmoid of logits); a
    ``scores`` that declares its own (:attr:`captum_contrast.scores.RegionScores.probability`)
    overrides it.
    """
    return as_probabilities(
        class_scores(model, x_batch, scores), probability_of(scores, activation)
    )


def finite_rows(values: np.ndarray) -> np.ndarray:
    """``(B,)`` True where row ``b`` of a ``(B, ...)`` array holds only finite values."""
    return np.isfinite(values).reshape(len(values), -1).all(axis=1)


def pixel_ranks(maps: Tensor) -> Tensor:
    """Each pixel's rank in its map, 0 = most salient, as ``(B, H*W)``; ties by pixel index.

    The top-``n`` pixels of an example are exactly those with rank below ``n``.
    """
    flat = maps.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    return torch.argsort(order, dim=1)


def constant_maps(maps: Tensor) -> np.ndarray:
    """``(B,)`` True where a map has a single value, so it ranks no pixel above another."""
    flat = maps.flatten(1)
    return (flat.max(dim=1).values == flat.min(dim=1).values).numpy()


def top_count(top_k: float, num_pixels: int) -> int:
    """``int(top_k / 100 * H*W)`` pixels, the CASE convention; at least one is required."""
    count = int(top_k / 100 * num_pixels)
    if count < 1:
        raise ValueError(f"`top_k`={top_k}% of {num_pixels} pixels selects no pixel; raise `top_k`")
    return count
