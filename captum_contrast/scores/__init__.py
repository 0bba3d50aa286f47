"""The one place a model's output is read: whatever it returns becomes ``(B, C)`` scores.

Every method asks for the gradients of a few class scores per example, and every metric
reads the probability of a class. A **scores** object is the function between the two: it
turns what the model returned (logits, a segmentation map, detections, a sequence, an
embedding) into ``(B, C)`` scores of *the thing being explained*, so that every method and
metric works unchanged on top of it:

- :class:`ClassScores` (the default): ``(B, C)`` logits, or an object with ``.logits``.
- :class:`RegionScores`: dense outputs ``(B, C, *grid)`` (segmentation, a text or face
  probability map, torchvision's ``{"out": ...}``) -> the per-class mean (or sum) over a
  region.
- :class:`StepScores`: sequences ``(B, T, V)`` (CTC recognisers, token classifiers) -> the
  scores at one time step.
- :class:`PresenceScores`: sequences ``(B, T, V)`` -> each symbol's best score over the
  steps: a text line read as a multi-label input (the characters it contains).
- :class:`BoxScores`: dense detections ``(B, N, 4 + C)`` -> the class scores of the
  prediction that overlaps a given box most.
- :class:`SimilarityScores`: embeddings ``(B, D)`` -> cosine similarity to ``C`` reference
  embeddings ("class" ``c`` is "matches reference ``c``").
- any callable ``outputs -> (B, C)`` tensor; it must be batch-agnostic (it sees whatever
  batch the method or metric runs), since only the built-ins know how to follow a subset
  of the examples (``Scores.subset``).

A method given ``scores`` computes exactly the map it computes for the wrapped model
``lambda *x: scores(model(*x))``, with no extra forward or backward. The built-ins also say
how their scores become probabilities for the metrics (``Scores.probability``).

Example:
    >>> import torch
    >>> from torchvision.models.segmentation import fcn_resnet50
    >>> from captum_contrast import ContrastGradCAM
    >>> from captum_contrast.scores import RegionScores
    >>> model = fcn_resnet50(weights=None, weights_backbone=None, num_classes=4).eval()
    >>> region = torch.zeros(64, 64, dtype=torch.bool)
    >>> region[16:48, 16:48] = True                      # at the output's resolution
    >>> cam = ContrastGradCAM(model, model.backbone.layer4)
    >>> cam.attribute(torch.rand(2, 3, 64, 64), target=1, scores=RegionScores(region)).shape
    torch.Size([2, 1, 8, 8])
"""

from captum_contrast.scores._detections import BoxScores, SimilarityScores, box_iou
from captum_contrast.scores._reading import (
    PROBABILITIES,
    ClassScores,
    Probability,
    Scores,
    ScoresLike,
    probability_of,
    read_scores,
    resolve_scores,
    scored_forward,
    subset_scores,
    to_probabilities,
)
from captum_contrast.scores._selections import PresenceScores, RegionScores, StepScores

__all__ = [
    "BoxScores",
    "ClassScores",
    "PROBABILITIES",
    "PresenceScores",
    "Probability",
    "RegionScores",
    "Scores",
    "ScoresLike",
    "SimilarityScores",
    "StepScores",
    "box_iou",
    "probability_of",
    "read_scores",
    "resolve_scores",
    "scored_forward",
    "subset_scores",
    "to_probabilities",
]
