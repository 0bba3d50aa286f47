"""ContrastGradCAM: Grad-CAM with the contrast classes' shared gradient projected out (CASE)."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from captum.log import log_usage
from torch import Tensor

from captum_contrast._engine import spatial_mean
from captum_contrast._targets import TargetType, resolve_target
from captum_contrast.methods._base import LayerContrastAttribution
from captum_contrast.methods.contrast_sets import ContrastType, resolve_contrast

PROJECTION_EPS = 1e-8


def project_out(target_weights: Tensor, contrast_weights: Tensor) -> Tensor:
    """``gamma_u - <gamma_u, gamma_bar> / (||gamma_bar||^2 + 1e-8) * gamma_bar``, row-wise."""
    coefficient = (target_weights * contrast_weights).sum(dim=-1, keepdim=True) / (
        contrast_weights.pow(2).sum(dim=-1, keepdim=True) + PROJECTION_EPS
    )
    return target_weights - coefficient * contrast_weights


class ContrastGradCAM(LayerContrastAttribution):
    r"""Contrastive Grad-CAM (CASE, Williamson et al.).

    Grad-CAM's channel weights are the spatial mean of the target score's gradient,
    :math:`\gamma_u`. CASE removes from them their projection onto the mean gradient of a
    contrast set :math:`V` of confusable classes, :math:`\bar\gamma`, so the map keeps only
    evidence that separates the target from those classes:

    .. math::
        \gamma_\perp = \gamma_u - \frac{\langle\gamma_u, \bar\gamma\rangle}
        {\lVert\bar\gamma\rVert^2 + 10^{-8}}\,\bar\gamma, \qquad
        L = \mathrm{ReLU}\Big(\sum_k \gamma_{\perp,k} A^k\Big).

    Because gradients are linear in the score, :math:`\bar\gamma` is the gradient of the
    mean contrast score, so any ``k`` costs one forward pass and one backward pass of two
    scores per example.

    Args:
        forward_func: The model, or any function returning ``(batch, classes)`` logits.
        layer: The module whose output is explained (e.g. ``model.layer4``).
        device_ids: As in Captum, only for ``DataParallel`` forward functions.
        reshape_transform: Keyword-only; maps the layer tensor to ``(B, K, h, w)``.

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
    """

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

        Returns:
            The map ``(B, 1, h, w)`` at layer resolution and raw scale, like
            ``LayerGradCam``; use ``LayerAttribution.interpolate`` to bring it to the input.
            With ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int, got {k!r}")
        forward = self._forward(inputs, additional_forward_args, attribute_to_layer_input)
        targets = resolve_target(target, forward.outputs)
        contrasts = resolve_contrast(contrast, k, targets, forward.outputs)
        num_classes, dtype = forward.outputs.shape[1], forward.outputs.dtype
        # Gradients are linear in the score, so the mean contrast gradient is the gradient
        # of the mean contrast score: two scores per example, whatever k.
        score_weights = torch.stack(
            [
                F.one_hot(targets, num_classes).to(dtype),
                F.one_hot(contrasts, num_classes).to(dtype).mean(dim=1),
            ]
        )
        target_gamma, contrast_gamma = spatial_mean(
            forward.gradients(score_weights), forward.spatial_rank
        )
        channel_weights = project_out(target_gamma, contrast_gamma)
        return self._weighted_map(
            channel_weights, forward.activations, relu_attributions, return_weights
        )
