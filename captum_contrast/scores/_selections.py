"""Selections of dense and sequence outputs: a region of a map, a step of a sequence, and
what a whole sequence holds (its best score per class over the steps)."""

from __future__ import annotations

import operator
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from captum_contrast.scores._reading import (
    Probability,
    as_index_tensor,
    as_tensor_argument,
    check_examples,
    check_probability,
    copy_with,
    dense_output,
    describe,
)

REDUCTIONS: tuple[str, ...] = ("mean", "sum")
BEST_STEPS: tuple[str, ...] = ("probability", "score")


class RegionScores:
    """Per-class scores of a region of a dense output, ``(B, C, *grid) -> (B, C)``.

    The score of class ``c`` is the ``mask``-weighted mean (or ``"sum"``) of channel ``c``
    over the grid: ``sum_g m_g y_cg / sum_g m_g``. It reads tensors with 1 to 3 grid axes,
    torchvision's segmentation dict (``{"out": ...}``) and objects with ``.logits``.

    Args:
        mask: Boolean or float weights (>= 0, finite) at the output's resolution (not the
            input's): ``(*grid)`` for every example, or ``(B, *grid)`` per example.
        reduction: ``"mean"`` (default) or ``"sum"`` (pytorch-grad-cam's
            ``SemanticSegmentationTarget`` convention).
        per_example: Whether ``mask``'s first axis is the batch. ``None`` (default) reads
            it from the mask's rank as for images: a 2-D mask is one ``(H, W)`` region for
            every example, a 3-D or 4-D mask holds one region per example. Pass it for
            1-D grids (``(B, L)`` per example) and shared 3-D regions (``(D, H, W)``).
            A mask whose grid then differs from the output's raises, naming both shapes.
        probability: How the region's scores become probabilities for the metrics:
            ``"softmax"`` (default: per-class logits), ``"sigmoid"`` or ``"identity"``
            (a probability map, e.g. a text detector's).

    Example:
        >>> import torch
        >>> from captum_contrast.scores import RegionScores
        >>> outputs = torch.arange(16.0).reshape(1, 2, 2, 4)     # (B=1, C=2, 2, 4)
        >>> mask = torch.zeros(2, 4, dtype=torch.bool); mask[:, :2] = True
        >>> RegionScores(mask)(outputs)                           # mean of columns 0-1
        tensor([[ 2.5000, 10.5000]])
        >>> RegionScores(mask, reduction="sum")(outputs)
        tensor([[10., 42.]])
    """

    def __init__(
        self,
        mask: Any,
        reduction: str = "mean",
        *,
        per_example: bool | None = None,
        probability: Probability | None = "softmax",
    ) -> None:
        if reduction not in REDUCTIONS:
            raise ValueError(f"`reduction` must be one of {REDUCTIONS}, got {reduction!r}")
        weights = as_tensor_argument(mask, "mask")
        if weights.dtype == torch.bool:
            weights = weights.to(torch.float32)
        elif not weights.is_floating_point():
            raise TypeError(f"`mask` must be boolean or float, got dtype {weights.dtype}")
        if per_example is None:
            per_example = weights.dim() >= 3
        if not isinstance(per_example, bool):
            raise TypeError(f"`per_example` must be None or a bool, got {per_example!r}")
        grid_rank = weights.dim() - int(per_example)
        if not 1 <= grid_rank <= 3:
            raise ValueError(
                f"`mask` must be (*grid) or (B, *grid) with 1 to 3 grid axes, got shape "
                f"{tuple(weights.shape)} (per_example={per_example})"
            )
        if not bool(torch.isfinite(weights).all()) or bool((weights < 0).any()):
            raise ValueError("`mask` must hold finite weights >= 0 (or booleans)")
        self.mask = weights
        self.reduction = reduction
        self.per_example = per_example
        self.probability = check_probability(probability)

    def __call__(self, outputs: Any) -> Tensor:
        dense = dense_output(outputs, "RegionScores")
        grid = tuple(dense.shape[2:])
        if not 1 <= len(grid) <= 3:
            raise ValueError(
                "RegionScores reads dense outputs (B, C, *grid) with 1 to 3 grid axes, got "
                f"a tensor of shape {tuple(dense.shape)}"
            )
        mask_grid = tuple(self.mask.shape[int(self.per_example) :])
        if mask_grid != grid:
            raise ValueError(
                f"`mask` has grid {mask_grid} but the output's grid is {grid} (output shape "
                f"{tuple(dense.shape)}, mask shape {tuple(self.mask.shape)}, "
                f"per_example={self.per_example}); give the mask at the output's resolution"
            )
        weights = self.mask.to(device=dense.device, dtype=dense.dtype)
        if self.per_example:
            check_examples(weights.shape[0], dense.shape[0], "mask")
        else:
            weights = weights.expand(dense.shape[0], *grid)
        totals = weights.flatten(1).sum(dim=1)
        empty = (totals == 0).nonzero().flatten().tolist()
        if empty:
            raise ValueError(f"`mask` selects no position of the output for examples {empty[:5]}")
        summed = torch.einsum("bc...,b...->bc", dense, weights)
        if self.reduction == "sum":
            return summed
        return summed / totals.unsqueeze(1)

    def subset(self, index: Tensor) -> RegionScores:
        """The same selection for the examples ``index`` (a per-example mask follows them)."""
        if not self.per_example:
            return self
        return copy_with(self, mask=self.mask[index.to(self.mask.device)])

    def __repr__(self) -> str:
        return f"RegionScores(mask {tuple(self.mask.shape)}, reduction={self.reduction!r})"


class StepScores:
    """The scores of one time step of a sequence output, ``(B, T, V) -> (B, V)``.

    Args:
        step: The time step: an int for every example, or one int per example (a
            sequence or an integer tensor ``(B,)``); ``0 <= step < T``.
        time_axis: ``1`` for ``(B, T, V)`` (default), ``0`` for ``(T, B, V)``.
        probability: ``"softmax"`` (default: per-step logits), ``"sigmoid"`` or
            ``"identity"``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import StepScores
        >>> outputs = torch.arange(12.0).reshape(2, 3, 2)       # (B=2, T=3, V=2)
        >>> StepScores(1)(outputs)
        tensor([[2., 3.],
                [8., 9.]])
        >>> StepScores([0, 2])(outputs)
        tensor([[ 0.,  1.],
                [10., 11.]])
    """

    def __init__(
        self,
        step: int | Sequence[int] | Tensor,
        time_axis: int = 1,
        *,
        probability: Probability | None = "softmax",
    ) -> None:
        if time_axis not in (0, 1) or isinstance(time_axis, bool):
            raise ValueError(
                f"`time_axis` must be 1 for (B, T, V) or 0 for (T, B, V), got {time_axis!r}"
            )
        self.step = as_index_tensor(step, "step")
        if self.step.dim() > 1:
            raise ValueError(
                f"`step` must be an int or one int per example, got shape {tuple(self.step.shape)}"
            )
        if self.step.numel() and int(self.step.min()) < 0:
            raise ValueError(
                f"`step` must be >= 0 (a time step index), got {self.step.min().item()}"
            )
        self.time_axis = time_axis
        self.probability = check_probability(probability)
        self.per_example = self.step.dim() == 1

    def __call__(self, outputs: Any) -> Tensor:
        sequence = dense_output(outputs, "StepScores")
        if sequence.dim() != 3:
            raise ValueError(
                "StepScores reads sequence outputs (B, T, V) (or (T, B, V) with time_axis=0), "
                f"got a tensor of shape {tuple(sequence.shape)}"
            )
        if self.time_axis == 0:
            sequence = sequence.transpose(0, 1)
        batch, steps = sequence.shape[:2]
        step = self.step.to(sequence.device)
        if step.dim() == 1:
            check_examples(len(step), batch, "step")
        if step.numel() and int(step.max()) >= steps:
            raise ValueError(
                f"`step` {int(step.max())} is out of range: the output has {steps} time steps "
                f"(shape {tuple(sequence.shape)} as (B, T, V))"
            )
        rows = torch.arange(batch, device=sequence.device)
        return sequence[rows, step.expand(batch)]

    def subset(self, index: Tensor) -> StepScores:
        if not self.per_example:
            return self
        return copy_with(self, step=self.step[index.to(self.step.device)])

    def __repr__(self) -> str:
        return f"StepScores(step={self.step.tolist()}, time_axis={self.time_axis})"


class PresenceScores:
    """Each symbol's score at its best time step of a sequence, ``(B, T, V) -> (B, V)``.

    Reads a sequence model as a **multi-label** classifier: a symbol is present in the
    sequence as strongly as its best step says (multiple-instance learning's max pooling).
    A text line read by a CTC recogniser becomes an image whose labels are the characters
    it contains, which is what :class:`captum_contrast.MinMaxCAM` explains (pass the label
    set as ``labels``: a sigmoid threshold on these scores is not a detection).

    A symbol's best step is, by default, where its per-step **probability** (softmax over
    the ``V`` symbols) is highest, and its score is its logit there. The largest *logit*
    may lie elsewhere: raw logits are not comparable across steps, and on PP-OCRv4's
    recogniser, for 8 of the 94 characters that ``benchmarks/ocr_minmax.py`` explains, a
    character's largest logit lies outside the steps where it is read (the blank's logit
    is larger still there). Gradients reach each symbol through its best step only (with
    ``best_step="score"``, ``amax`` shares them between tied steps).

    A step that is ``-inf`` for every symbol (padding) is never the best step; NaN or
    ``+inf`` anywhere in an example's sequence makes that example's scores NaN, which the
    methods and metrics report with a warning, rather than a step chosen by the corruption.

    Args:
        time_axis: ``1`` for ``(B, T, V)`` (default), ``0`` for ``(T, B, V)``.
        best_step: ``"probability"`` (default: the step of the highest per-step softmax
            probability) or ``"score"`` (the step of the highest value: plain max pooling
            over time, for sequences of probabilities or scores that are comparable
            across steps).
        log_softmax: Score each symbol by its per-step log-probability instead of its
            logit (its best step is then the same for both choices of ``best_step``).
        probability: How presence scores become probabilities for the metrics. ``None``
            (default) follows ``log_softmax``: ``"exp"`` (the best step's probability) with
            it; without it a metric raises, since a raw logit's probability depends on the
            step's other logits (pass ``"sigmoid"`` if each logit is a label's own). Pass
            ``"identity"`` for a sequence of probabilities read with ``best_step="score"``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import PresenceScores
        >>> outputs = torch.tensor([[[0.0, 2.0], [5.0, 3.0]]])  # (B=1, T=2, V=2)
        >>> PresenceScores()(outputs)          # symbol 1 wins at step 0 (logit 2), not step 1
        tensor([[5., 2.]])
        >>> PresenceScores(best_step="score")(outputs)
        tensor([[5., 3.]])
        >>> PresenceScores(log_softmax=True)(outputs).exp()   # each one's best probability
        tensor([[0.8808, 0.8808]])
    """

    per_example = False

    def __init__(
        self,
        time_axis: int = 1,
        *,
        best_step: str = "probability",
        log_softmax: bool = False,
        probability: Probability | None = None,
    ) -> None:
        try:
            axis = None if isinstance(time_axis, bool) else operator.index(time_axis)
        except TypeError:
            axis = None
        if axis not in (0, 1):
            raise ValueError(
                f"`time_axis` must be 1 for (B, T, V) or 0 for (T, B, V), got {time_axis!r}"
            )
        if best_step not in BEST_STEPS:
            raise ValueError(f"`best_step` must be one of {BEST_STEPS}, got {best_step!r}")
        if not isinstance(log_softmax, bool):
            raise TypeError(f"`log_softmax` must be a bool, got {log_softmax!r}")
        self.time_axis = axis
        self.best_step = best_step
        self.log_softmax = log_softmax
        # A raw logit at its best step says nothing of the probability without the step's
        # other logits (a per-step softmax ignores any offset): no default for the metrics.
        self._probability = check_probability(probability) or ("exp" if log_softmax else None)

    def __call__(self, outputs: Any) -> Tensor:
        sequence = dense_output(outputs, "PresenceScores")
        if sequence.dim() != 3 or sequence.shape[self.time_axis] == 0:
            raise ValueError(
                "PresenceScores reads sequence outputs (B, T, V) (or (T, B, V) with "
                f"time_axis=0) with at least one step, got {describe(sequence)}"
            )
        if not sequence.is_floating_point():
            raise ValueError(f"PresenceScores reads floating scores, got dtype {sequence.dtype}")
        if sequence.shape[2] < 2 and (self.log_softmax or self.best_step == "probability"):
            raise ValueError(
                "PresenceScores: with one symbol (V = 1) a per-step softmax is 1 at every "
                "step; use best_step='score' and log_softmax=False"
            )
        if self.time_axis == 0:
            sequence = sequence.transpose(0, 1)
        values = sequence.log_softmax(dim=2) if self.log_softmax else sequence
        if self.best_step == "score":
            presence = values.amax(dim=1)
        else:
            # The step is chosen, not differentiated through (as a max picks its argument).
            # A step of -inf only (padding) has no probabilities: it is never chosen.
            chances = sequence.detach().softmax(dim=2).nan_to_num(nan=-1.0)
            steps = chances.argmax(dim=1, keepdim=True)  # (B, 1, V)
            presence = values.gather(1, steps).squeeze(1)
        # NaN or +inf anywhere in an example's sequence leaves no trustworthy best step:
        # its scores are NaN (the methods and metrics warn), never a plausible number.
        corrupt = (sequence.isnan() | (sequence == float("inf"))).flatten(1).any(dim=1)
        return torch.where(corrupt[:, None], torch.full_like(presence, float("nan")), presence)

    @property
    def probability(self) -> Probability:
        """How the metrics read these scores as probabilities; raw logits have none."""
        if self._probability is None:
            raise ValueError(
                "PresenceScores() reads raw logits, whose probabilities a metric cannot recover "
                "(a per-step softmax ignores any offset of the logits); for the metrics use "
                "PresenceScores(log_softmax=True) (probability exp(score), the best step's "
                "probability), or pass probability='sigmoid' if each logit is a label's own"
            )
        return self._probability

    def subset(self, index: Tensor) -> PresenceScores:
        return self

    def __repr__(self) -> str:
        return (
            f"PresenceScores(time_axis={self.time_axis}, best_step={self.best_step!r}, "
            f"log_softmax={self.log_softmax})"
        )
