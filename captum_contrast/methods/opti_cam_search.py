"""OptiCAM's search: the objective, the masked-input loss, Adam on ``u`` and the presets.

The class :class:`captum_contrast.OptiCAM` (``opti_cam.py``) runs one forward and hands
these the activations; everything here is a plain function of tensors.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from captum._utils.common import _expand_additional_forward_args
from torch import Tensor
from tqdm.auto import tqdm

from captum_contrast._engine import (
    weighted_activations,
)
from captum_contrast.normalization import NORMALIZATIONS, Normalization, normalize
from captum_contrast.scores import ScoresLike, read_scores

Objective = Literal["mask", "diff", "iomask", "iodiff"]
EarlyStop = Literal["paper", "official"] | None
Init = Literal["constant", "grad-cam"]
Schedule = Literal["constant", "cosine"]
Preset = Literal["paper", "fast"]

OBJECTIVES: tuple[str, ...] = ("mask", "diff", "iomask", "iodiff")
EARLY_STOPS: tuple[str | None, ...] = ("paper", "official", None)
INITS: tuple[str, ...] = ("constant", "grad-cam")
PAPER_TOLERANCE = 1e-10
INITIAL_U = 0.5
GRAD_CAM_SCALE = 1.0


@dataclass(frozen=True)
class Recipe:
    """How OptiCAM searches for ``u``: the settings a preset fixes.

    ``schedule`` and ``keep_best`` belong to the preset; the others can be overridden by
    :meth:`OptiCAM.attribute`'s keywords.
    """

    n_iter: int
    lr: float
    early_stop: EarlyStop
    init: Init
    schedule: Schedule
    keep_best: bool


PRESETS: dict[str, Recipe] = {
    # The paper (Zhang et al., sec. 4.1) and its reference code: u = 0.5, Adam, lr 0.1.
    "paper": Recipe(100, 0.1, "paper", "constant", "constant", keep_best=False),
    # Chosen in benchmarks/opticam_convergence.py among constant / Grad-CAM starts, lr 0.3
    # to 4, constant / cosine: 18 steps (about a fifth of the paper's forwards and
    # backwards, with the Grad-CAM backward), lr 1 decayed by a cosine, since larger steps
    # overshoot on the binary ONet; the Grad-CAM start gained 2-9 AG points over u = 0.5 at
    # the same budget; keeping each example's best iterate makes the noisy large steps safe.
    "fast": Recipe(18, 1.0, None, "grad-cam", "cosine", keep_best=True),
}
"""The named recipes of :meth:`OptiCAM.attribute`'s ``preset``."""

INTERPOLATION_MODES = {1: "linear", 2: "bilinear", 3: "trilinear"}
"""The mask's upsampling per number of grid axes (signals, images, volumes)."""


def objective_loss(
    objective: Objective, original: Tensor, masked: Tensor, complement: Tensor | None = None
) -> Tensor:
    """Per-example loss to *minimise*, from target logits ``(B,)``.

    ``original`` is ``y_c(x)``, ``masked`` is ``y_c(x * s)`` and ``complement`` is
    ``y_c(x * (1 - s))`` (needed by the io-objectives only). "mask" keeps the reference
    code's constant offset ``y_c(x)``, which changes no gradient and no early-stop decision.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import objective_loss
        >>> original, masked = torch.tensor([5.0, 5.0]), torch.tensor([4.0, 6.0])
        >>> objective_loss("mask", original, masked)  # minimising it raises y_c(x * s)
        tensor([ 1., -1.])
        >>> objective_loss("diff", original, masked)  # |y_c(x) - y_c(x * s)|
        tensor([1., 1.])
    """
    if objective == "mask":  # eq. 10: maximise y_c(x * s)
        return original - masked
    if objective == "diff":  # eq. 19
        return (original - masked).abs()
    if complement is None:
        raise ValueError(f"objective {objective!r} needs the complement's scores")
    if objective == "iomask":  # eq. A1, negated
        return complement - masked
    if objective == "iodiff":  # eq. A2, negated
        return (original - masked).abs() - (original - complement).abs()
    raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}")


def saliency(u: Tensor, activations: Tensor) -> Tensor:
    """``S(u) = sum_k softmax(u)_k A^k`` as ``(B, 1, h, w)``, in the activations' dtype."""
    return weighted_activations(torch.softmax(u, dim=1).to(activations.dtype), activations)


@dataclass(frozen=True)
class OptiCAMLoss:
    """The function of ``u (B, K)`` that OptiCAM minimises: one model forward per call."""

    forward_func: Callable[..., Any]
    images: Tensor
    activations: Tensor
    targets: Tensor
    original_scores: Tensor
    objective: Objective = "mask"
    normalization: Normalization = "range"
    preprocess: Callable[[Tensor], Tensor] | None = None
    additional_forward_args: tuple[Any, ...] | None = None
    scores: ScoresLike = None
    """Reads the model's output as class scores; a per-example one covers every copy."""

    def mask(self, u: Tensor) -> Tensor:
        """``s = n(up(S(u)))`` at input resolution, ``(B, 1, *grid)``."""
        grid = self.images.shape[2:]
        upsampled = F.interpolate(
            saliency(u, self.activations),
            size=grid,
            mode=INTERPOLATION_MODES[len(grid)],
            align_corners=False,
        )
        return normalize(upsampled, self.normalization)

    def __call__(self, u: Tensor) -> Tensor:
        """Per-example losses ``(B,)``; their sum is what Adam minimises."""
        mask = self.mask(u)
        copies = _copies(self.objective)
        batch = self.images * mask
        extra_args = self.additional_forward_args
        if copies == 2:
            # Masked and complement in one forward; batch-first extra tensors are repeated.
            batch = torch.cat([batch, self.images * (1 - mask)])
            extra_args = _expand_additional_forward_args(extra_args, 2)
        if self.preprocess is not None:
            batch = self.preprocess(batch)
        outputs = read_scores(
            self.scores, self.forward_func(batch, *(extra_args or ())), batch.shape[0]
        )
        scores = outputs.gather(1, self.targets.repeat(copies).unsqueeze(1)).squeeze(1)
        return objective_loss(self.objective, self.original_scores, *scores.chunk(copies))


def _copies(objective: str) -> int:
    """Copies of the batch per loop forward: masked only, or masked and complement."""
    return 1 if objective in ("mask", "diff") else 2


def grad_cam_start(channel_weights: Tensor, scale: float = GRAD_CAM_SCALE) -> Tensor:
    """A starting ``u (B, K)`` from Grad-CAM's channel weights ``alpha (B, K)``.

    ``softmax(u)`` is positive and sums to one, so ``alpha`` itself cannot be a start; its
    z-score per example keeps the channels' order and relative spacing, and ``scale`` sets
    how peaked ``softmax(u)`` starts. A constant ``alpha`` gives the paper's flat start.
    """
    centred = channel_weights - channel_weights.mean(dim=1, keepdim=True)
    spread = centred.pow(2).mean(dim=1, keepdim=True).sqrt()
    return scale * centred / torch.where(spread > 0, spread, torch.ones_like(spread))


def optimise_u(
    loss_fn: Callable[[Tensor], Tensor],
    u: Tensor,
    n_iter: int,
    lr: float,
    early_stop: EarlyStop = "paper",
    show_progress: bool = False,
    schedule: Schedule = "constant",
    keep_best: bool = False,
) -> Tensor:
    """Adam on ``u (B, K)``; returns the ``u`` whose map OptiCAM reports.

    "paper" freezes each example's ``u`` once its own loss changes by less than 1e-10, so
    examples stay independent of their batch; the loop ends when all are frozen. "official"
    is the reference code's batch-level test: every ``max(n_iter // 10, 1)`` steps from step
    0, stop if the batch-summed loss rose since the last check, keeping the current ``u``.
    ``schedule="cosine"`` decays the learning rate from ``lr`` towards 0 over ``n_iter``
    steps; ``keep_best`` returns each example's lowest-loss iterate among those evaluated
    (the last one, after the final step, is never evaluated), not the last.
    """
    u = u.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([u], lr=lr)
    active = torch.ones(u.shape[0], dtype=torch.bool, device=u.device)
    best_u, best_loss = u.detach().clone(), torch.full_like(u[:, 0], math.inf)
    previous: Tensor | None = None
    last_checked, interval = 1e10, max(n_iter // 10, 1)  # the reference's starting value
    progress = tqdm(total=n_iter, desc="OptiCAM", disable=not show_progress)
    try:
        for step in range(n_iter):
            losses = loss_fn(u)
            if not losses.requires_grad:
                raise RuntimeError(
                    "gradients are disabled in the model's forward (torch.no_grad() or "
                    "torch.inference_mode() inside it): OptiCAM needs the gradient of the "
                    "masked image's score with respect to the channel weights"
                )
            # In u's dtype (float32 for a float16/bfloat16 model): best_loss is kept in it.
            current = losses.detach().to(u.dtype)
            if keep_best:
                improved = current < best_loss
                best_u[improved], best_loss[improved] = u.detach()[improved], current[improved]
            if early_stop == "official" and step % interval == 0:
                if float(current.sum()) > last_checked:
                    break
                last_checked = float(current.sum())
            if early_stop == "paper" and previous is not None:
                active &= (current - previous).abs() >= PAPER_TOLERANCE
                if not bool(active.any()):
                    break
            previous = current
            # autograd.grad, not backward(): nothing but u can receive a gradient.
            (u.grad,) = torch.autograd.grad(losses.sum(), u)
            frozen_values = u.detach()[~active]
            if schedule == "cosine":
                optimizer.param_groups[0]["lr"] = cosine_lr(lr, step, n_iter)
            optimizer.step()
            with torch.no_grad():
                u[~active] = frozen_values
            progress.update(1)
    finally:
        progress.close()
    return best_u if keep_best and n_iter > 0 else u.detach()


def cosine_lr(lr: float, step: int, n_iter: int) -> float:
    """The learning rate of step ``step`` (0-based) of ``n_iter``: ``lr`` decayed by a half
    cosine, so the first step is a full ``lr`` and the last a small fraction of it."""
    return lr * 0.5 * (1 + math.cos(math.pi * step / n_iter))


def resolve_recipe(
    preset: Any, n_iter: Any = None, lr: Any = None, early_stop: Any = "preset", init: Any = None
) -> Recipe:
    """The preset's :class:`Recipe` with the explicitly given values in place of its own.

    Example:
        >>> from captum_contrast.methods.opti_cam import resolve_recipe
        >>> resolve_recipe("fast", n_iter=30).n_iter, resolve_recipe("fast").lr
        (30, 1.0)
    """
    if not isinstance(preset, str) or preset not in PRESETS:
        raise ValueError(f"`preset` must be one of {tuple(PRESETS)}, got {preset!r}")
    if early_stop != "preset" and early_stop not in EARLY_STOPS:
        raise ValueError(
            f"`early_stop` must be one of {EARLY_STOPS} or 'preset', got {early_stop!r}"
        )
    if init is not None and init not in INITS:
        raise ValueError(f"`init` must be one of {INITS} or None, got {init!r}")
    given = {"n_iter": n_iter, "lr": lr, "init": init}
    changes = {name: value for name, value in given.items() if value is not None}
    if early_stop != "preset":
        changes["early_stop"] = early_stop
    return dataclasses.replace(PRESETS[preset], **changes)


def _check_arguments(
    objective: Any, normalization: Any, n_iter: Any, lr: Any, preprocess: Any
) -> None:
    if objective not in OBJECTIVES:
        raise ValueError(f"`objective` must be one of {OBJECTIVES}, got {objective!r}")
    if normalization not in NORMALIZATIONS:
        raise ValueError(f"`normalization` must be one of {NORMALIZATIONS}, got {normalization!r}")
    if isinstance(n_iter, bool) or not isinstance(n_iter, int) or n_iter < 0:
        raise ValueError(f"`n_iter` must be a non-negative int, got {n_iter!r}")
    if isinstance(lr, bool) or not isinstance(lr, (int, float)) or not math.isfinite(lr) or lr <= 0:
        raise ValueError(f"`lr` must be a positive finite number, got {lr!r}")
    if preprocess is not None and not callable(preprocess):
        raise TypeError(f"`preprocess` must be callable or None, got {type(preprocess).__name__}")
