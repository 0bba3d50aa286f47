"""OptiCAM: channel weights found by optimising the masked input's logit (Zhang et al.)."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
import torch.nn.functional as F
from captum._utils.common import _format_additional_forward_args
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import (
    check_gradients_enabled,
    format_inputs,
    spatial_mean,
)
from captum_contrast._model import model_device
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import LayerContrastAttribution
from captum_contrast.methods.opti_cam_search import (  # noqa: F401 - re-exported
    EARLY_STOPS,
    GRAD_CAM_SCALE,
    INITIAL_U,
    INITS,
    INTERPOLATION_MODES,
    OBJECTIVES,
    PAPER_TOLERANCE,
    PRESETS,
    EarlyStop,
    Init,
    Objective,
    OptiCAMLoss,
    Preset,
    Recipe,
    Schedule,
    _check_arguments,
    _copies,
    cosine_lr,
    grad_cam_start,
    objective_loss,
    optimise_u,
    resolve_recipe,
    saliency,
)
from captum_contrast.normalization import Normalization
from captum_contrast.scores import ScoresLike, subset_scores


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
        scores: ScoresLike = None,
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
                ``None``: the preset's. ``0`` runs no search and returns the starting
                point (the channel mean for "constant", Grad-CAM's start for "grad-cam"),
                with a ``UserWarning`` saying so.
            lr: Adam's (initial) learning rate; ``None``: the preset's.
            early_stop: "paper": an example stops once its loss changes by less than 1e-10;
                "official": the reference code's batch-level check (see ``optimise_u``),
                which makes results depend on the batch; ``None``: all ``n_iter`` steps;
                "preset" (default): the preset's ("paper" for "paper", ``None`` for "fast").
            init: The start of ``u``: "constant" (0.5, the paper) or "grad-cam"
                (``grad_cam_start``); ``None``: the preset's.
            preprocess: Applied to every masked batch before the model (and to ``inputs``
                for ``A``), e.g. mean/std normalisation when ``inputs`` are [0, 1] images;
                it must keep the shape.
            show_progress: Show a tqdm bar over the iterations.
            return_weights: Also return ``softmax(u*)`` ``(B, K)``.
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`), at the first forward and at every masked
                one; ``None``: ``(B, C)`` logits.

        Returns:
            ``S(u*)`` ``(B, 1, h, w)`` at layer resolution, unnormalised; the optimised mask
            is ``normalize(LayerAttribution.interpolate(attr, (H, W), "bilinear"), n)``.
            With ``return_weights``, a tuple ``(map, weights)``.
        """
        recipe = resolve_recipe(preset, n_iter, lr, early_stop, init)
        _check_arguments(objective, normalization, recipe.n_iter, recipe.lr, preprocess)
        if recipe.n_iter == 0:
            warnings.warn(
                f"OptiCAM ran no search (n_iter=0): the map is the {recipe.init!r} starting "
                "point, not an optimised one",
                UserWarning,
                stacklevel=3,
            )
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
        if not isinstance(first, Tensor) or first.shape != images.shape:
            got = tuple(first.shape) if isinstance(first, Tensor) else type(first).__name__
            raise ValueError(
                f"`preprocess` must return a tensor of the inputs' shape {tuple(images.shape)} "
                f"(it is applied to every masked batch), got {got}"
            )
        # A and y_c(x) need no gradient; the loop's gradients are taken w.r.t. u alone, so
        # autograd never computes a parameter gradient and the model's flags stay as they are.
        from_grad_cam = recipe.init == "grad-cam"
        forward = self._forward(
            first, extra_args, attribute_to_layer_input, from_grad_cam, scores=scores
        )
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
            # The loop's batch holds the masked copies of every example (and their
            # complements for io-objectives): a per-example selection follows them.
            subset_scores(scores, torch.arange(len(images)).repeat(_copies(objective))),
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
