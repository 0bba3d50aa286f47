"""The share of a map's mass on the ground-truth object (relevance mass accuracy), for Quantus."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from torch import Tensor

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import saliency_masks


class MassOnObject(CAMMetric):
    r"""Mass on Object: the percentage of a map's mass that lies on the ground-truth object.

    A map that explains a class should put its mass on the object of that class. This is
    the relevance mass accuracy of Arras, Osman and Samek (CLEVR-XAI, 2022), computed on
    the map as the masking metrics see it: ``s = n(up(S))``, the map upsampled bilinearly
    (``align_corners=False``) to the input when it is smaller and range-normalised per
    example to [0, 1]. With ``G`` the binary object mask from ``s_batch``:

    .. math::

        \mathrm{MoO}_i = 100 \cdot \frac{\sum_p s_{i,p} \, G_{i,p}}{\sum_p s_{i,p}},
        \qquad s_i = \frac{\mathrm{up}(S_i) - \min \mathrm{up}(S_i)}
            {\max \mathrm{up}(S_i) - \min \mathrm{up}(S_i)}

    over the pixels ``p``. Range normalisation makes the score independent of the map's
    offset and scale, and its minimum pixel weighs nothing. No forward of the model is
    needed (the model is still checked and wrapped, as for every metric).

    Differences from ``quantus.RelevanceMassAccuracy``: that metric takes the map as it is
    (after Quantus's optional ``normalise``, by default division by the maximum absolute
    value), returns a fraction rather than a percentage, gives NaN (with a warning) for an
    empty mask where this metric gives 0, and requires maps at input resolution. On maps at
    input resolution with minimum 0 and maximum 1, the two agree up to the factor 100.

    Scores: one per example, in percent, in [0, 100]; higher is better
    (``ScoreDirection.HIGHER``). An empty object mask scores 0.

    Degenerate maps: a constant map (all zero included) range-normalises to zero and has no
    mass to place, so it scores NaN, as does a map holding NaN or infinity; the rest of the
    batch is unaffected.

    References:
        Arras, Osman and Samek, "CLEVR-XAI: A benchmark dataset for the ground truth
        evaluation of neural network explanations", Information Fusion 81 (2022): 14-40.

    Args:
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`. At call time the metric needs ``s_batch``: one binary
            (bool or 0/1) object mask per example, ``(B, 1, H, W)`` or ``(B, H, W)`` at
            the resolution of ``x_batch``.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import MassOnObject
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> objects = np.zeros((2, 1, 8, 8), dtype=bool)
        >>> objects[:, :, :4] = True  # the object fills the top half of each image
        >>> scores = MassOnObject()(model, x, np.array([0, 1]), a_batch=maps, s_batch=objects)
        >>> np.round(scores, 2).tolist()
        [57.91, 43.53]
    """

    name = "Mass on Object"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.LOCALISATION
    cli_name = "mass-on-object"
    short_name = "Mass on object %"
    needs_object_masks = True

    def custom_preprocess(  # type: ignore[override]
        self, x_batch: np.ndarray, s_batch: Any, **kwargs: Any
    ) -> dict[str, Any]:
        return {"s_batch": _object_masks(s_batch, x_batch)}

    def evaluate_batch(  # type: ignore[override]
        self, x_batch: np.ndarray, a_batch: np.ndarray, s_batch: np.ndarray, **kwargs: Any
    ) -> list[float]:
        masks, valid = saliency_masks(a_batch, x_batch.shape[-2:], "range")
        saliency = torch.from_numpy(masks).flatten(1).double()
        objects = torch.as_tensor(s_batch).reshape(len(saliency), -1).double()
        inside = (saliency * objects).sum(dim=1)
        total = saliency.sum(dim=1)
        scores = torch.where(total > 0, 100 * inside / total.clamp(min=1e-12), np.nan).numpy()
        return np.where(valid, scores, np.nan).tolist()


def _object_masks(s_batch: Any, x_batch: np.ndarray) -> np.ndarray:
    """``s_batch`` as ``(B, 1, H, W)`` float64 0/1 masks, or a ValueError naming it."""
    batch, (height, width) = len(x_batch), x_batch.shape[-2:]
    expected = f"(B, 1, H, W) or (B, H, W) with B = {batch}, H = {height}, W = {width}"
    if s_batch is None:
        raise ValueError(
            f"MassOnObject needs ground-truth object masks in `s_batch`, {expected}; got None"
        )
    if isinstance(s_batch, Tensor):
        s_batch = s_batch.detach().cpu().numpy()
    masks = np.asarray(s_batch)
    if masks.ndim == 3:
        masks = masks[:, None]
    if masks.ndim != 4 or masks.shape != (batch, 1, height, width):
        raise ValueError(
            f"`s_batch` must hold one object mask per example, {expected}; "
            f"got shape {np.shape(s_batch)}"
        )
    if masks.dtype != np.bool_ and not np.isin(masks, (0, 1)).all():
        raise ValueError("`s_batch` must hold binary object masks (bool or 0/1 values)")
    return masks.astype(np.float64)
