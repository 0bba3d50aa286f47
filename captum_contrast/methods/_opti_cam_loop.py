"""OptiCAM's search for ``u``: the start, Adam's loop and its learning-rate schedule.

Kept apart from :mod:`captum_contrast.methods.opti_cam` (the method and its recipes) so
each file stays short; every name is re-exported there.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

EarlyStop = Literal["paper", "official"] | None
Schedule = Literal["constant", "cosine"]
PAPER_TOLERANCE = 1e-10
GRAD_CAM_SCALE = 1.0


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
