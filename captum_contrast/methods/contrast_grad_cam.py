"""ContrastGradCAM: Grad-CAM with the contrast classes' shared gradient projected out (CASE)."""

from __future__ import annotations

import warnings
from typing import Any

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import LayerForward, spatial_mean
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import GradientPlan, LayerContrastAttribution
from captum_contrast.methods.contrast_sets import ContrastType, resolve_contrast
from captum_contrast.scores import ScoresLike

PROJECTION_EPS = 1e-8
PROJECTIONS = ("full", "shared")


def projection_coefficient(target_weights: Tensor, contrast_weights: Tensor) -> Tensor:
    """``c = <gamma_u, gamma_bar> / (||gamma_bar||^2 + 1e-8)`` per row, shape ``(B, 1)``.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import projection_coefficient
        >>> projection_coefficient(torch.tensor([[3.0, 1.0]]), torch.tensor([[2.0, 0.0]]))
        tensor([[1.5000]])
    """
    return (target_weights * contrast_weights).sum(dim=-1, keepdim=True) / (
        contrast_weights.pow(2).sum(dim=-1, keepdim=True) + PROJECTION_EPS
    )


def project_out(
    target_weights: Tensor, contrast_weights: Tensor, projection: str = "full"
) -> Tensor:
    """``gamma_u - c * gamma_bar`` row-wise; ``projection="shared"`` uses ``max(c, 0)``.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import project_out
        >>> gamma_bar = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
        >>> gamma_u = torch.tensor([[3.0, 1.0], [-1.0, 1.0]])
        >>> # shared evidence (c = 3) is removed; opposed evidence (c = -1) is added back
        >>> project_out(gamma_u, gamma_bar)
        tensor([[0., 1.],
                [0., 1.]])
        >>> project_out(gamma_u, gamma_bar, projection="shared")  # c = -1 clamped to 0
        tensor([[ 0.,  1.],
                [-1.,  1.]])
    """
    coefficient = projection_coefficient(target_weights, contrast_weights)
    if projection == "shared":
        # c < 0 means the classes share no evidence along gamma_bar: subtracting c * gamma_bar
        # would add the contrast class's evidence, so nothing is removed.
        coefficient = coefficient.clamp(min=0)
    return target_weights - coefficient * contrast_weights


def gradient_cosine(target_weights: Tensor, contrast_weights: Tensor) -> Tensor:
    """``cos(gamma_u, gamma_bar)`` per row, ``(B,)``; NaN with a warning where one is zero.

    Example:
        >>> import torch
        >>> from captum_contrast.methods import gradient_cosine
        >>> gradient_cosine(torch.tensor([[1.0, 1.0], [-1.0, 0.0]]), torch.tensor([[1.0, 0.0]] * 2))
        tensor([ 0.7071, -1.0000])
    """
    norms = target_weights.norm(dim=-1) * contrast_weights.norm(dim=-1)
    undefined = norms == 0
    if bool(undefined.any()):
        warnings.warn(
            f"cos(gamma_u, gamma_bar) is undefined for examples "
            f"{torch.nonzero(undefined).flatten().tolist()}: a channel gradient is zero "
            "(both projections then give the same map); returning NaN there",
            RuntimeWarning,
            stacklevel=3,
        )
    dot = (target_weights * contrast_weights).sum(dim=-1)
    return torch.where(undefined, torch.full_like(dot, float("nan")), dot / norms)


class ContrastGradCAM(LayerContrastAttribution):
    r"""Contrastive Grad-CAM (CASE, Williamson et al.).

    Grad-CAM's channel weights are the spatial mean of the target score's gradient,
    :math:`\gamma_u`. CASE removes from them their projection onto the mean gradient of a
    contrast set :math:`V` of confusable classes, :math:`\bar\gamma`, so the map keeps only
    evidence that separates the target from those classes:

    .. math::
        c = \frac{\langle\gamma_u, \bar\gamma\rangle}{\lVert\bar\gamma\rVert^2 + 10^{-8}},
        \qquad \gamma_\perp = \gamma_u - c\,\bar\gamma, \qquad
        L = \mathrm{ReLU}\Big(\sum_k \gamma_{\perp,k} A^k\Big).

    When :math:`c < 0` the paper's projection (``projection="full"``) *adds* the contrast
    class's evidence, :math:`\gamma_\perp = \gamma_u + |c|\,\bar\gamma`, and makes the two
    classes' maps more alike; ``projection="shared"`` uses :math:`\max(c, 0)`, so it removes
    only evidence the classes share and equals Grad-CAM when they share none. Call
    :meth:`cosine` on your data first: if :math:`\cos(\gamma_u, \bar\gamma)` is mostly
    positive (near-synonym classes, as on ImageNet) both agree; if it is often negative
    (well-separated classes), pick ``"shared"``; keep ``"full"`` to reproduce the paper.

    Because gradients are linear in the score, :math:`\bar\gamma` is the gradient of the
    mean contrast score, so any ``k`` costs one forward pass and one backward pass of two
    scores per example.

    Args:
        forward_func: The model, or any function returning ``(batch, classes)`` logits.
        layer: The module whose output is explained (e.g. ``model.layer4``).
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; ``None`` lays the layer's tensor out automatically
            (channels-first, channels-last or tokens); pass a transform only when that
            is ambiguous (see :class:`captum_contrast.LayerContrastAttribution`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum.attr import LayerAttribution
        >>> from captum_contrast import ContrastGradCAM
        >>> model = resnet18(weights=None).eval()
        >>> cam = ContrastGradCAM(model, model.layer4)
        >>> images = torch.rand(2, 3, 64, 64)
        >>> attr = cam.attribute(images, target=[3, 7], k=2)   # contrast: next 2 logits
        >>> attr.shape
        torch.Size([2, 1, 2, 2])
        >>> LayerAttribution.interpolate(attr, (64, 64), "bilinear").shape
        torch.Size([2, 1, 64, 64])
        >>> cam.attribute(images, target=[3, 7], k=2, projection="shared").shape
        torch.Size([2, 1, 2, 2])
    """

    model_calling_methods = ("attribute", "cosine")

    @log_usage()
    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        contrast: ContrastType = None,
        k: int = 1,
        relu_attributions: bool = True,
        return_weights: bool = False,
        projection: str = "full",
        scores: ScoresLike = None,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Compute the CASE map of ``target`` against its contrast classes.

        Args:
            inputs: Input tensor or tuple of tensors, batch first, as in Captum.
            target: One class per example: an int, a list of ints, or a ``(B,)`` tensor.
                ``None`` explains each example's highest-scoring class.
            additional_forward_args: Extra arguments for ``forward_func``, after ``inputs``.
            attribute_to_layer_input: Explain the layer's input rather than its output.
            contrast: The contrast set V. ``None``: the ``k`` highest-scoring classes other
                than the target, per example (the reference code without a confusion
                matrix). An int or list of ints: the same classes for every example. A
                ``(B, k)`` LongTensor: per example. A :class:`ContrastSet`: each target's
                ``k`` most confused classes (the set's own ``k`` applies).
            k: Size of the contrast set when ``contrast`` is ``None``. The reference
                evaluation uses 1.
            relu_attributions: Apply ReLU to the map (CASE does; the weights stay signed).
            return_weights: Also return the projected channel weights ``(B, K)``.
            projection: ``"full"``, the paper: subtract ``c * gamma_bar`` whatever the sign
                of ``c``. ``"shared"``: subtract ``max(c, 0) * gamma_bar`` per example, so
                an example whose gradients point apart keeps its Grad-CAM weights.
            scores: How the model's output is read as ``(B, C)`` class scores
                (:mod:`captum_contrast.scores`); ``None``: ``(B, C)`` logits. The target
                and contrast are classes of what it selects (a region, a step, a box).

        Returns:
            The map ``(B, 1, h, w)`` at layer resolution and raw scale, like
            ``LayerGradCam``; use ``LayerAttribution.interpolate`` to bring it to the input.
            With ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        _check_k(k)
        if projection not in PROJECTIONS:
            raise ValueError(f"`projection` must be one of {PROJECTIONS}, got {projection!r}")
        return self._attribute_by_plan(
            inputs,
            additional_forward_args,
            attribute_to_layer_input,
            scores,
            lambda forward: self.plan(
                forward,
                target,
                contrast=contrast,
                k=k,
                relu_attributions=relu_attributions,
                return_weights=return_weights,
                projection=projection,
            ),
        )

    def plan(
        self,
        forward: LayerForward,
        target: TargetType = None,
        *,
        contrast: ContrastType = None,
        k: int = 1,
        relu_attributions: bool = True,
        return_weights: bool = False,
        projection: str = "full",
    ) -> GradientPlan:
        """The two scores per example CASE needs from ``forward``, and how to finish its map.

        The keywords mean what they mean in :meth:`attribute`; see
        :func:`captum_contrast.methods.run_plans` to share one backward between methods.
        """
        _check_k(k)
        if projection not in PROJECTIONS:
            raise ValueError(f"`projection` must be one of {PROJECTIONS}, got {projection!r}")

        def finish(gradients: Tensor | None) -> Tensor | tuple[Tensor, Tensor]:
            assert gradients is not None
            target_gamma, contrast_gamma = spatial_mean(gradients, forward.spatial_rank)
            channel_weights = project_out(target_gamma, contrast_gamma, projection)
            return self._weighted_map(
                channel_weights, forward.activations, relu_attributions, return_weights
            )

        return GradientPlan(_case_score_weights(forward.outputs, target, contrast, k), finish)

    def cosine(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        *,
        contrast: ContrastType = None,
        k: int = 1,
        scores: ScoresLike = None,
    ) -> Tensor:
        r"""Per-example :math:`\cos(\gamma_u, \bar\gamma)`: which projection to pick.

        The arguments mean what they mean in :meth:`attribute`, and it costs the same: one
        forward, one backward of two scores. The sign of the cosine is the sign of ``c``.
        When ``c < 0`` the paper's projection adds the contrast class's evidence,
        :math:`\gamma_\perp = \gamma_u + |c|\,\bar\gamma`, and makes the two maps more
        alike; ``projection="shared"`` removes only evidence the classes share and equals
        Grad-CAM when they share none. So ``(cos < 0).float().mean()`` is the share of
        examples where the two projections differ: near 0, both are the paper; large, pick
        ``"shared"`` for class-sensitive maps (``"full"`` only to reproduce the paper).
        Where a channel gradient is exactly zero the angle is undefined: NaN, with a
        ``RuntimeWarning`` (both projections give Grad-CAM's map there).

        Returns:
            A ``(B,)`` tensor in ``[-1, 1]``.

        Example:
            >>> import torch
            >>> from torchvision.models import resnet18
            >>> from captum_contrast import ContrastGradCAM
            >>> model = resnet18(weights=None, num_classes=10).eval()
            >>> cos = ContrastGradCAM(model, model.layer4).cosine(torch.rand(4, 3, 64, 64))
            >>> cos.shape, bool(((cos >= -1) & (cos <= 1)).all())
            (torch.Size([4]), True)
        """
        _check_k(k)
        forward = self._forward(
            inputs, additional_forward_args, attribute_to_layer_input, scores=scores
        )
        weights = _case_score_weights(forward.outputs, target, contrast, k)
        target_gamma, contrast_gamma = spatial_mean(
            forward.gradients(weights), forward.spatial_rank
        )
        return gradient_cosine(target_gamma, contrast_gamma)


def _check_k(k: Any) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"`k` must be a positive int, got {k!r}")


def _case_score_weights(
    outputs: Tensor, target: TargetType, contrast: ContrastType, k: int
) -> Tensor:
    """``(2, B, C)``: the target's one-hot and the contrast set's mean one-hot."""
    targets = resolve_target(target, outputs)
    contrasts = resolve_contrast(contrast, k, targets, outputs)
    num_classes, dtype = outputs.shape[1], outputs.dtype
    # Gradients are linear in the score, so the mean contrast gradient is the gradient
    # of the mean contrast score: two scores per example, whatever k.
    return torch.stack(
        [
            F.one_hot(targets, num_classes).to(dtype),
            F.one_hot(contrasts, num_classes).to(dtype).mean(dim=1),
        ]
    )
