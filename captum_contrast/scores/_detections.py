"""Selections of detections and embeddings: a box's class scores, similarity to references."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from captum_contrast.scores._reading import (
    Probability,
    as_tensor_argument,
    check_examples,
    check_probability,
    copy_with,
    dense_output,
)


def box_iou(boxes: Tensor, box: Tensor) -> Tensor:
    """IoU of ``(B, N, 4)`` boxes with one ``(B, 4)`` box each, all ``xyxy``: ``(B, N)``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import box_iou
        >>> box_iou(torch.tensor([[[0.0, 0, 2, 2], [1, 1, 3, 3]]]), torch.tensor([[0.0, 0, 2, 2]]))
        tensor([[1.0000, 0.1429]])
    """
    box = box.unsqueeze(1)
    low = torch.maximum(boxes[..., :2], box[..., :2])
    high = torch.minimum(boxes[..., 2:], box[..., 2:])
    inter = (high - low).clamp(min=0).prod(dim=-1)
    area = (boxes[..., 2:] - boxes[..., :2]).clamp(min=0).prod(dim=-1)
    own = (box[..., 2:] - box[..., :2]).clamp(min=0).prod(dim=-1)
    union = area + own - inter
    return torch.where(union > 0, inter / union.clamp(min=torch.finfo(inter.dtype).tiny), 0.0)


class BoxScores:
    """The class scores of the detection that overlaps a given box most.

    Reads dense detector predictions ``(B, N, 4 + C)`` (YOLO-style: ``x1, y1, x2, y2``,
    then ``C`` class scores) and returns, per example, the ``C`` scores of the prediction
    whose box has the highest IoU with the given box. The choice of prediction is read
    from this forward pass; the gradient flows through its class scores.

    Args:
        boxes: ``(B, 4)`` ``xyxy`` boxes in the predictions' coordinates (or ``(4,)`` for
            every example).
        iou_threshold: The least IoU the chosen prediction must reach, in ``[0, 1]``; an
            example where none does raises, naming it.
        probability: ``"identity"`` (default: YOLO-style class scores are probabilities),
            ``"sigmoid"`` or ``"softmax"``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import BoxScores
        >>> predictions = torch.tensor([[[0.0, 0, 10, 10, 0.9, 0.1],
        ...                              [20, 20, 30, 30, 0.2, 0.7]]])   # (1, N=2, 4 + 2)
        >>> BoxScores(torch.tensor([[19.0, 21, 30, 30]]))(predictions)
        tensor([[0.2000, 0.7000]])
    """

    def __init__(
        self,
        boxes: Any,
        iou_threshold: float = 0.5,
        *,
        probability: Probability | None = "identity",
    ) -> None:
        tensor = as_tensor_argument(boxes, "boxes")
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        if tensor.shape[-1:] != (4,) or tensor.dim() not in (1, 2):
            raise ValueError(
                f"`boxes` must be (B, 4) or (4,) xyxy boxes, got shape {tuple(tensor.shape)}"
            )
        if not bool(torch.isfinite(tensor).all()):
            raise ValueError("`boxes` must hold finite coordinates")
        if bool((tensor[..., 2:] < tensor[..., :2]).any()):
            raise ValueError("`boxes` must be x1, y1, x2, y2 with x2 >= x1 and y2 >= y1")
        if (
            isinstance(iou_threshold, bool)
            or not isinstance(iou_threshold, (int, float))
            or not 0 <= iou_threshold <= 1
        ):
            raise ValueError(f"`iou_threshold` must be a number in [0, 1], got {iou_threshold!r}")
        self.boxes = tensor
        self.iou_threshold = float(iou_threshold)
        self.probability = check_probability(probability)
        self.per_example = tensor.dim() == 2

    def __call__(self, outputs: Any) -> Tensor:
        predictions = dense_output(outputs, "BoxScores")
        if predictions.dim() != 3 or predictions.shape[2] < 5:
            raise ValueError(
                "BoxScores reads detections (B, N, 4 + C): a box then C class scores per "
                f"prediction, got a tensor of shape {tuple(predictions.shape)}"
            )
        batch = predictions.shape[0]
        boxes = self.boxes.to(device=predictions.device, dtype=predictions.dtype)
        if boxes.dim() == 2:
            check_examples(len(boxes), batch, "boxes")
        boxes = boxes.expand(batch, 4)
        overlap = box_iou(predictions[..., :4].detach(), boxes)
        best, chosen = overlap.max(dim=1)
        missed = (best < self.iou_threshold).nonzero().flatten().tolist()
        if missed:
            raise ValueError(
                f"no prediction overlaps `boxes` with IoU >= {self.iou_threshold} for examples "
                f"{missed[:5]} (best IoU {[round(float(best[i]), 3) for i in missed[:5]]})"
            )
        return predictions[torch.arange(batch, device=predictions.device), chosen, 4:]

    def subset(self, index: Tensor) -> BoxScores:
        if not self.per_example:
            return self
        return copy_with(self, boxes=self.boxes[index.to(self.boxes.device)])

    def __repr__(self) -> str:
        return f"BoxScores(boxes {tuple(self.boxes.shape)}, iou_threshold={self.iou_threshold})"


class SimilarityScores:
    """Cosine similarity of embeddings ``(B, D)`` to ``C`` references ``(C, D)``: ``(B, C)``.

    "Class" ``c`` is "matches reference ``c``", so ``ContrastGradCAM(..., target=a,
    contrast=b, scores=SimilarityScores(refs))`` asks why the input matches person ``a``
    and not person ``b``.

    Args:
        references: ``(C, D)`` reference embeddings (or ``(D,)`` for one), none zero.
        probability: ``"identity"`` (default: similarities as they are), ``"softmax"`` or
            ``"sigmoid"``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import SimilarityScores
        >>> refs = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
        >>> SimilarityScores(refs)(torch.tensor([[3.0, 3.0]]))
        tensor([[0.7071, 0.7071]])
    """

    per_example = False

    def __init__(self, references: Any, *, probability: Probability | None = "identity") -> None:
        tensor = as_tensor_argument(references, "references")
        if not tensor.is_floating_point():
            tensor = tensor.to(torch.float32)
        if tensor.dim() == 1:
            tensor = tensor.unsqueeze(0)
        if tensor.dim() != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
            raise ValueError(
                f"`references` must be (C, D) embeddings, got shape {tuple(tensor.shape)}"
            )
        norms = tensor.norm(dim=1)
        if not bool(torch.isfinite(tensor).all()) or bool((norms == 0).any()):
            raise ValueError(
                "`references` must be finite and non-zero (a cosine needs a direction)"
            )
        self.references = tensor
        self.probability = check_probability(probability)

    def __call__(self, outputs: Any) -> Tensor:
        embeddings = dense_output(outputs, "SimilarityScores")
        if embeddings.dim() != 2:
            raise ValueError(
                f"SimilarityScores reads embeddings (B, D), got shape {tuple(embeddings.shape)}"
            )
        references = self.references.to(device=embeddings.device, dtype=embeddings.dtype)
        if embeddings.shape[1] != references.shape[1]:
            raise ValueError(
                f"`references` have dimension {references.shape[1]} but the model's embeddings "
                f"have {embeddings.shape[1]}"
            )
        unit = references / references.norm(dim=1, keepdim=True)
        # The norm is clamped away from 0 so a zero embedding scores 0, not NaN.
        return embeddings @ unit.T / embeddings.norm(dim=1, keepdim=True).clamp(min=1e-12)

    def subset(self, index: Tensor) -> SimilarityScores:
        return self

    def __repr__(self) -> str:
        return f"SimilarityScores(references {tuple(self.references.shape)})"
