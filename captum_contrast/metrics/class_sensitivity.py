"""CASE's class-sensitivity diagnostic as a Quantus metric, and the top-k agreement it uses."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import (
    check_percent,
    finite_rows,
    maps_at_input,
    pixel_ranks,
    probabilities,
    top_count,
)
from captum_contrast.scores import subset_scores


def top_k_agreement(
    first_maps: np.ndarray | torch.Tensor,
    second_maps: np.ndarray | torch.Tensor,
    top_k: float = 5.0,
) -> np.ndarray:
    """``100 * |T(m1) & T(m2)| / |T(m1)|`` per example, ``T`` the top ``top_k`` % pixels.

    Maps ``(B, 1, H, W)`` or ``(B, H, W)`` of the same shape are clipped at 0 with NaN read as
    0 (CASE), and ``T(m)`` holds the ``int(top_k / 100 * H * W)`` largest values, ties broken
    by the lower flat pixel index. A map that is all zero after clipping ranks no pixel, so
    its example gives NaN rather than an agreement decided by the tie-break.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import top_k_agreement
        >>> a = np.arange(16.0).reshape(1, 4, 4)
        >>> top_k_agreement(a, a, top_k=25).tolist(), top_k_agreement(a, -a + 15, top_k=25).tolist()
        ([100.0], [0.0])
    """
    top_k = check_percent(top_k, "top_k")
    first = _clipped(first_maps)
    second = _clipped(second_maps)
    if first.shape != second.shape:
        raise ValueError(
            f"`first_maps` and `second_maps` must have the same shape, got "
            f"{tuple(first.shape)} and {tuple(second.shape)}"
        )
    count = top_count(top_k, first[0].numel())
    in_both = (pixel_ranks(first) < count) & (pixel_ranks(second) < count)
    agreement = 100 * in_both.sum(dim=1).double().numpy() / count
    empty = (first.flatten(1).amax(dim=1) == 0) | (second.flatten(1).amax(dim=1) == 0)
    return np.where(empty.numpy(), np.nan, agreement)


def _clipped(maps: np.ndarray | torch.Tensor) -> torch.Tensor:
    tensor = torch.as_tensor(maps, dtype=torch.float64)
    if tensor.dim() not in (3, 4):
        raise ValueError(f"maps must be (B, 1, H, W) or (B, H, W), got shape {tuple(tensor.shape)}")
    return torch.nan_to_num(tensor, nan=0.0).clamp(min=0)


def _at_input(maps: np.ndarray, size: tuple[int, int]) -> torch.Tensor:
    # NaN is read as 0 before upsampling, so it cannot spread to neighbouring pixels.
    return maps_at_input(np.nan_to_num(maps, nan=0.0), size)


class ClassSensitivity(CAMMetric):
    r"""Class Sensitivity (CASE): top-k pixel agreement of the maps of an image's top two classes.

    CASE's class-sensitivity diagnostic (Williamson, Dwyer and Ji, "CASE: Contrastive
    Activation for Saliency Estimation", Sec. V-A): an explainer that highlights
    the same pixels whatever class it is asked about cannot tell competing hypotheses
    apart. With ``c1, c2`` the two classes of highest softmax probability, ``m1, m2``
    their maps, and ``T(m)`` the ``int(top_k / 100 * H W)`` pixels of largest value:

    .. math::

        \mathrm{agreement}_i = 100 \cdot
            \frac{|T(m_i^{c_1}) \cap T(m_i^{c_2})|}{|T(m_i^{c_1})|}

    The map of ``c2`` always comes from ``explain_func`` (so a contrastive explainer uses
    ``c2``'s own contrast set); the map of ``c1`` is ``a_batch`` where ``y_batch`` is
    ``c1`` and is re-explained elsewhere, in one batched call each. Maps are compared at
    input resolution (upsampled bilinearly when smaller), clipped at 0 with NaN read as 0
    (CASE); ties in ``T`` go to the lower flat pixel index. See :func:`top_k_agreement`.
    Test the median against a threshold with :func:`wilcoxon_below` (CASE's paper: 50%).
    Quantus files it under Randomisation, beside Random Logit, which also compares the
    explanations of two classes.

    Scores: one per example, in percent, in [0, 100]; lower is better
    (``ScoreDirection.LOWER``): class-distinct maps agree little.

    Degenerate maps: NaN is read as 0 and negatives are clipped, so a map that is all zero
    after clipping (a constant non-positive map included) ranks no pixel, and its example
    scores NaN rather than an agreement decided by the tie-break. A constant positive map
    ranks pixels by the tie-break alone and agrees fully with another such map.

    References:
        Williamson, Dwyer and Ji, "CASE: Contrastive Activation for Saliency Estimation";
        official code ``dwil2444/case-saliency`` (``CAM_eval/class_sensitive.py``).

    Args:
        top_k: Percentage of pixels compared, in (0, 100] (CASE: 5).
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`. The metric needs ``explain_func`` at call time.

    Example:
        >>> import numpy as np, torch
        >>> from captum.attr import LayerGradCam
        >>> from captum_contrast.metrics import ClassSensitivity, explainer
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> grad_cam = explainer(LayerGradCam, layer="1", relu_attributions=True)
        >>> scores = ClassSensitivity(top_k=10)(model, x, np.array([0, 1]), explain_func=grad_cam)
        >>> np.round(scores, 2).tolist()
        [0.0, 83.33]
    """

    name = "Class Sensitivity"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.RANDOMISATION
    cli_name = "class-sensitivity"
    short_name = "Agreement %"
    needs_explain_func = True

    def __init__(self, top_k: float = 5.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.top_k = check_percent(top_k, "top_k")

    def custom_preprocess(self, **kwargs: Any) -> None:  # type: ignore[override]
        if self.explain_func is None:
            raise ValueError("ClassSensitivity re-explains the second class: pass `explain_func`")

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        size = x_batch.shape[-2:]
        probs = probabilities(model, x_batch, "softmax", self.batch_scores)
        if probs.shape[1] < 2:
            raise ValueError("ClassSensitivity needs a model with at least two classes")
        top_two = np.argsort(-probs, axis=1, kind="stable")[:, :2]
        first_maps = _at_input(a_batch, size)
        redo = y_batch != top_two[:, 0]
        if redo.any():
            first_maps[torch.as_tensor(redo)] = _at_input(
                self.explain_batch(
                    model,
                    x_batch[redo],
                    top_two[redo, 0],
                    subset_scores(self.batch_scores, np.nonzero(redo)[0]),
                ),
                size,
            )
        second_maps = _at_input(self.explain_batch(model, x_batch, top_two[:, 1]), size)
        scores = top_k_agreement(first_maps, second_maps, self.top_k)
        return np.where(finite_rows(probs), scores, np.nan).tolist()
