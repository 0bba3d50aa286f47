"""OptiCAM: channel weights found by optimising the masked input's logit (Zhang et al.)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch
import torch.nn.functional as F
from captum._utils.common import _expand_additional_forward_args, _format_additional_forward_args
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import (
    check_gradients_enabled,
    format_inputs,
    spatial_mean,
    weighted_activations,
)
from captum_contrast._model import model_device, model_logits
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import LayerContrastAttribution
from captum_contrast.methods._opti_cam_loop import (  # the loop's names, re-exported here
    GRAD_CAM_SCALE,
    PAPER_TOLERANCE,
    EarlyStop,
    Schedule,
    cosine_lr,
    grad_cam_start,
    optimise_u,
)
from captum_contrast.normalization import NORMALIZATIONS, Normalization, normalize

__all__ = [
    "GRAD_CAM_SCALE",
    "PAPER_TOLERANCE",
    "PRESETS",
    "OptiCAM",
    "OptiCAMLoss",
    "Recipe",
    "cosine_lr",
    "grad_cam_start",
    "objective_loss",
    "optimise_u",
    "resolve_recipe",
    "saliency",
]

Objective = Literal["mask", "diff", "iomask", "iodiff"]
Init = Literal["constant", "grad-cam"]
Preset = Literal["paper", "fast"]
OBJECTIVES: tuple[str, ...] = ("mask", "diff", "iomask", "iodiff")
EARLY_STOPS: tuple[str | None, ...] = ("paper", "official", None)
INITS: tuple[str, ...] = ("constant", "grad-cam")
INITIAL_U = 0.5


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
        copies = 1 if self.objective in ("mask", "diff") else 2
        batch = self.images * mask
        extra_args = self.additional_forward_args
        if copies == 2:
            # Masked and complement in one forward; batch-first extra tensors are repeated.
            batch = torch.cat([batch, self.images * (1 - mask)])
            extra_args = _expand_additional_forward_args(extra_args, 2)
        if self.preprocess is not None:
            batch = self.preprocess(batch)
        outputs = model_logits(self.forward_func(batch, *(extra_args or ())))
        scores = outputs.gather(1, self.targets.repeat(copies).unsqueeze(1)).squeeze(1)
        return objective_loss(self.objective, self.original_scores, *scores.chunk(copies))


class OptiCAM(LayerContrastAttribution):
    r"""Opti-CAM (Zhang et al.): the convex combination of feature maps whose mask best
    preserves the target logit.

    With :math:`S(u) = \sum_k \mathrm{softmax}(u)_k A^k` and the mask
    :math:`s = n(\mathrm{up}(S(u)))`, Adam searches per example for :math:`u^*` maximising
    :math:`y_c(x \odot s)` (objective "mask", eq. 10) or a variant ("diff" eq. 19, "iomask"
    A1, "iodiff" A2). ``A`` and the original logits come from one forward; each iteration is
    one forward of the masked batch and one backward to ``u`` alone (autograd skips every
    parameter gradient, and the model's ``requires_grad`` flags are never touched). ``A`` is the layer's output as is (no extra ReLU): ResNet's
    ``layer4`` is already post-ReLU, and on ViT LayerNorm outputs negative values are fine.

    Args:
        forward_func: The model (in eval mode), returning ``(batch, classes)`` logits.
        layer: The module whose feature maps are combined, e.g. ``model.layer4``.
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; ``None`` lays the layer's tensor out automatically
            (channels-first, channels-last or tokens); pass a transform only when that
            is ambiguous (see :class:`captum_contrast.LayerContrastAttribution`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum.attr import LayerAttribution
        >>> from captum_contrast import OptiCAM, normalize
        >>> model = resnet18(weights=None).eval()
        >>> cam = OptiCAM(model, model.layer4)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> attr, weights = cam.attribute(images, target=[3, 7], n_iter=5, return_weights=True)
        >>> attr.shape, weights.shape
        (torch.Size([2, 1, 2, 2]), torch.Size([2, 512]))
        >>> mask = normalize(LayerAttribution.interpolate(attr, (64, 64), "bilinear"), "range")
        >>> mask.shape
        torch.Size([2, 1, 64, 64])
    """

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        objective: Objective = "mask",
        normalization: Normalization = "range",
        preset: Preset = "paper",
        n_iter: int | None = None,
        lr: float | None = None,
        early_stop: EarlyStop | Literal["preset"] = "preset",
        init: Init | None = None,
        preprocess: Callable[[Tensor], Tensor] | None = None,
        show_progress: bool = False,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Optimise the channel weights and return the saliency map.

        Args:
            inputs: One batch ``(B, C, *grid)``: signals, images ``(B, C, H, W)`` or volumes
                (or a 1-tuple holding it); the mask
                multiplies it as given, so pass images in the space where 0 means "removed".
            target: One class per example (int, list or ``(B,)`` tensor); ``None`` explains
                the predicted class. The paper explains the ground-truth class.
            additional_forward_args: Extra arguments for ``forward_func``, after ``inputs``;
                for "iomask"/"iodiff" batch-first tensors are repeated like the inputs.
            attribute_to_layer_input: Combine the layer's input rather than its output.
            objective: "mask" (eq. 10, default), "diff" (eq. 19), "iomask" (A1), "iodiff" (A2).
            normalization: ``n`` applied per example after upsampling: "range", "max",
                "sigmoid".
            preset: The recipe (a key of ``PRESETS`` in this module). "paper" (default): the paper's search,
                ``u = 0.5``, Adam at lr 0.1, 100 steps, its early stop, the last iterate.
                "fast": the package's recipe at about a fifth of the paper's cost: ``u``
                starts from Grad-CAM's channel weights (one backward of the first
                forward), Adam at lr 1 with cosine decay, 18 steps, no early stop, each
                example's best iterate. It does not reach the paper's fidelity: see
                ``benchmarks/results/opticam_convergence.md`` for its AD/AG/AI per network.
                An explicit ``n_iter``, ``lr``, ``early_stop`` or ``init`` overrides the
                preset's value and keeps the rest; so ``preset="paper", init="grad-cam"``
                is no longer the paper's search, by request.
            n_iter: Maximum number of Adam steps (paper: 100; reference script: 50);
                ``None``: the preset's.
            lr: Adam's (initial) learning rate; ``None``: the preset's.
            early_stop: "paper": an example stops once its loss changes by less than 1e-10;
                "official": the reference code's batch-level check (see ``optimise_u``),
                which makes results depend on the batch; ``None``: all ``n_iter`` steps;
                "preset" (default): the preset's ("paper" for "paper", ``None`` for "fast").
            init: The start of ``u``: "constant" (0.5, the paper) or "grad-cam"
                (``grad_cam_start``); ``None``: the preset's.
            preprocess: Applied to every masked batch before the model (and to ``inputs``
                for ``A``), e.g. mean/std normalisation when ``inputs`` are [0, 1] images.
            show_progress: Show a tqdm bar over the iterations.
            return_weights: Also return ``softmax(u*)`` ``(B, K)``.

        Returns:
            ``S(u*)`` ``(B, 1, h, w)`` at layer resolution, unnormalised; the optimised mask
            is ``normalize(LayerAttribution.interpolate(attr, (H, W), "bilinear"), n)``.
            With ``return_weights``, a tuple ``(map, weights)``.
        """
        recipe = resolve_recipe(preset, n_iter, lr, early_stop, init)
        _check_arguments(objective, normalization, recipe.n_iter, recipe.lr, preprocess)
        check_gradients_enabled()
        formatted = format_inputs(inputs, model_device(self.forward_func))
        if len(formatted) != 1 or formatted[0].dim() - 2 not in INTERPOLATION_MODES:
            shapes = [tuple(t.shape) for t in formatted]
            raise ValueError(
                "`inputs` must be one batch (B, C, *grid) with 1 to 3 grid axes, e.g. images "
                f"(B, C, H, W), got shapes {shapes}"
            )
        images = formatted[0].detach()
        extra_args = _format_additional_forward_args(additional_forward_args)
        first = images if preprocess is None else preprocess(images)
        # A and y_c(x) need no gradient; the loop's gradients are taken w.r.t. u alone, so
        # autograd never computes a parameter gradient and the model's flags stay as they are.
        from_grad_cam = recipe.init == "grad-cam"
        forward = self._forward(first, extra_args, attribute_to_layer_input, from_grad_cam)
        targets = resolve_target(target, forward.outputs)
        original_scores = forward.outputs.gather(1, targets.unsqueeze(1)).squeeze(1)
        activations = forward.activations.to(original_scores.device)
        if activations.dim() != images.dim():
            raise ValueError(
                f"OptiCAM masks the input with the layer's maps: maps {tuple(activations.shape)} "
                f"and inputs {tuple(images.shape)} must have the same number of grid axes"
            )
        # u and Adam run in at least float32 whatever the model's dtype: Adam's eps (1e-8) is
        # 0 in float16, which turns the first step into 0/0; the map is cast back at the end.
        u_dtype = torch.promote_types(activations.dtype, torch.float32)
        if from_grad_cam:  # one backward of the same forward: the target logit's gradient
            one_hot = F.one_hot(targets, forward.outputs.shape[1]).unsqueeze(0)
            alpha = spatial_mean(forward.gradients(one_hot), forward.spatial_rank)[0].to(
                activations.device
            )
            u_start = grad_cam_start(alpha.to(u_dtype))
        else:
            u_start = torch.full(
                activations.shape[:2], INITIAL_U, dtype=u_dtype, device=activations.device
            )
        loss_fn = OptiCAMLoss(
            self.forward_func,
            images,
            activations,
            targets,
            original_scores,
            objective,
            normalization,
            preprocess,
            extra_args,
        )
        with torch.enable_grad():
            u_star = optimise_u(
                loss_fn,
                u_start,
                recipe.n_iter,
                recipe.lr,
                recipe.early_stop,
                show_progress,
                recipe.schedule,
                recipe.keep_best,
            )
        attributions = saliency(u_star, activations)
        weights = torch.softmax(u_star, dim=1).to(activations.dtype)
        return (attributions, weights) if return_weights else attributions


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
