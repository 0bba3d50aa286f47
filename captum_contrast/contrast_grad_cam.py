"""ContrastGradCAM: Grad-CAM with the contrast classes' shared gradient projected out (CASE)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from captum_contrast._base import LayerContrastAttribution
from captum_contrast._layer import spatial_mean
from captum_contrast._targets import TargetType, _as_long_tensor, check_class_range, resolve_target
from captum_contrast.contrast_sets import ContrastSet

ContrastType = int | Sequence[int] | Tensor | ContrastSet | None

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

    def attribute(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        target: TargetType = None,
        contrast: ContrastType = None,
        k: int = 1,
        additional_forward_args: Any = None,
        attribute_to_layer_input: bool = False,
        relu_attributions: bool = True,
        return_weights: bool = False,
    ) -> Tensor | tuple[Tensor, Tensor]:
        r"""Compute the CASE map of ``target`` against its contrast classes.

        Args:
            inputs: Input tensor or tuple of tensors, batch first, as in Captum.
            target: One class per example: an int, a list of ints, or a ``(B,)`` tensor.
                ``None`` explains each example's highest-scoring class.
            contrast: The contrast set V. ``None``: the ``k`` highest-scoring classes other
                than the target, per example (the reference code without a confusion
                matrix). An int or list of ints: the same classes for every example. A
                ``(B, k)`` LongTensor: per example. A :class:`ContrastSet`: each target's
                ``k`` most confused classes (the set's own ``k`` applies).
            k: Size of the contrast set when ``contrast`` is ``None``. The reference
                evaluation uses 1.
            additional_forward_args: Extra arguments for ``forward_func``, after ``inputs``.
            attribute_to_layer_input: Explain the layer's input rather than its output.
            relu_attributions: Apply ReLU to the map (CASE does; the weights stay signed).
            return_weights: Also return the projected channel weights ``(B, K)``.

        Returns:
            The map ``(B, 1, h, w)`` at layer resolution and raw scale, like
            ``LayerGradCam``; use ``LayerAttribution.interpolate`` to bring it to the input.
            With ``return_weights``, a tuple ``(map, channel_weights)``.
        """
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"`k` must be a positive int, got {k!r}")
        resolved: dict[str, Tensor] = {}

        def score_weights(outputs: Tensor) -> Tensor:
            targets = resolve_target(target, outputs)
            contrasts = _resolve_contrast(contrast, k, targets, outputs)
            resolved["targets"] = targets
            num_classes = outputs.shape[1]
            target_weights = F.one_hot(targets, num_classes)
            contrast_weights = F.one_hot(contrasts, num_classes).to(outputs.dtype).mean(dim=1)
            return torch.stack([target_weights.to(outputs.dtype), contrast_weights])

        result = self._layer_gradients(
            inputs, score_weights, additional_forward_args, attribute_to_layer_input
        )
        target_gamma, contrast_gamma = spatial_mean(result.gradients)
        channel_weights = project_out(target_gamma, contrast_gamma)
        return self._weighted_map(
            channel_weights, result.activations, relu_attributions, return_weights
        )


def _resolve_contrast(contrast: ContrastType, k: int, targets: Tensor, outputs: Tensor) -> Tensor:
    """The ``(B, k)`` contrast classes, checked against the targets and the output size."""
    batch_size, num_classes = outputs.shape
    if contrast is None:
        if k >= num_classes:
            raise ValueError(
                f"`k` must be smaller than the number of classes ({num_classes}), got {k}"
            )
        # Rank by logit with the target pushed to the bottom, so it is never its own contrast.
        ranking = outputs.scatter(1, targets.unsqueeze(1), float("-inf"))
        return ranking.topk(k, dim=1).indices
    if isinstance(contrast, ContrastSet):
        if k != 1 and k != contrast.k:
            raise ValueError(f"`k`={k} disagrees with the ContrastSet's k={contrast.k}; omit `k`")
        if contrast.contrast_classes.shape[0] != num_classes:
            raise ValueError(
                f"`contrast` is a ContrastSet over {contrast.contrast_classes.shape[0]} classes "
                f"but the model has {num_classes} outputs"
            )
        return contrast(targets)
    contrasts = _as_long_tensor(contrast, "contrast", outputs.device)
    if contrasts.dim() <= 1:
        contrasts = contrasts.reshape(1, -1).expand(batch_size, -1)
    if contrasts.dim() != 2 or contrasts.shape[0] != batch_size or contrasts.shape[1] == 0:
        raise ValueError(
            f"`contrast` must be an int, a list of ints, or a (batch, k) tensor with batch = "
            f"{batch_size}; got shape {tuple(contrasts.shape)}"
        )
    check_class_range(contrasts, num_classes, "contrast")
    if contrasts.shape[1] >= num_classes:
        raise ValueError(
            f"`contrast` names {contrasts.shape[1]} classes per example; at most "
            f"{num_classes - 1} are possible with {num_classes} classes"
        )
    clashes = (contrasts == targets.unsqueeze(1)).any(dim=1)
    if bool(clashes.any()):
        example = int(clashes.nonzero()[0])
        raise ValueError(
            f"`contrast` contains the target class {int(targets[example])} for example {example}; "
            "a class cannot be its own contrast"
        )
    ordered = contrasts.sort(dim=1).values
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        raise ValueError("`contrast` repeats a class within an example's contrast set")
    return contrasts
