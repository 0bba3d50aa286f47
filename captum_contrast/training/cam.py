"""Differentiable class activation maps of a GAP + linear head, for training losses."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor, nn

from captum_contrast._targets import as_class_indices, check_class_range
from captum_contrast._validation import describe_shape

ClassesType: TypeAlias = int | Sequence[int] | Tensor | None


def head_weight(classifier: nn.Module) -> Tensor:
    """The ``(C, K)`` class weights of a linear head: ``effective_weight`` if it has one
    (:class:`KernelUsageRegularizedLinear`), else ``weight``.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from captum_contrast.training import KernelUsageRegularizedLinear, head_weight
        >>> linear = nn.Linear(4, 2)
        >>> head_weight(linear) is linear.weight
        True
        >>> kur = KernelUsageRegularizedLinear(4, 2)
        >>> torch.equal(head_weight(kur), kur.effective_weight)
        True
    """
    if not isinstance(classifier, nn.Linear):
        raise TypeError(
            f"`classifier` must be an nn.Linear (the head after global average pooling), "
            f"got {type(classifier).__name__}"
        )
    return getattr(classifier, "effective_weight", classifier.weight)


def class_activation_maps(features: Tensor, weight: Tensor, classes: ClassesType = None) -> Tensor:
    r"""Class activation maps :math:`\mathrm{CAM}_c = \sum_k W_{c,k} F_k` (no bias, no ReLU).

    For a head ``logits = W @ GAP(F) + b``, the spatial mean of ``CAM_c`` plus ``b_c`` is the
    logit of class ``c``. The maps are differentiable in ``features`` and ``weight``, so
    losses on them train both the trunk and the head.

    Args:
        features: ``(B, K, h, w)`` maps fed to global average pooling.
        weight: ``(C, K)`` head weights (``classifier.weight``, or
            :func:`head_weight` for a kernel-usage-regularised head).
        classes: Which maps to compute.
            ``None``: every class, ``(B, C, h, w)``.
            An int: that class for every example, ``(B, 1, h, w)``.
            A list of ints or a ``(B,)`` LongTensor: one class per example (Captum's target
            convention), ``(B, 1, h, w)``.
            A ``(B, n)`` LongTensor: ``n`` classes per example, ``(B, n, h, w)``.

    Returns:
        ``(B, n, h, w)`` maps at feature resolution, in the order of ``classes``.

    Example:
        >>> import torch
        >>> from captum_contrast.training import class_activation_maps
        >>> features = torch.rand(4, 8, 7, 7)
        >>> weight = torch.randn(2, 8)
        >>> labels = torch.tensor([0, 1, 1, 0])
        >>> true_and_false = torch.stack([labels, 1 - labels], dim=1)
        >>> class_activation_maps(features, weight, true_and_false).shape
        torch.Size([4, 2, 7, 7])
    """
    if not isinstance(features, Tensor) or features.dim() != 4:
        raise ValueError(
            f"`features` must be a (B, K, h, w) tensor, got {describe_shape(features)}"
        )
    if not isinstance(weight, Tensor) or weight.dim() != 2 or weight.shape[1] != features.shape[1]:
        raise ValueError(
            f"`weight` must be a (C, K) tensor with K = {features.shape[1]} (the channels of "
            f"`features`), got {describe_shape(weight)}"
        )
    if classes is None:
        return torch.einsum("ck,bkhw->bchw", weight, features)
    batch_size, num_classes = features.shape[0], weight.shape[0]
    indices = as_class_indices(classes, "classes", features.device)
    if indices.dim() == 0:
        indices = indices.reshape(1, 1).expand(batch_size, 1)
    elif indices.dim() == 1:
        indices = indices.unsqueeze(1)
    if indices.dim() != 2 or indices.shape[0] != batch_size or indices.shape[1] == 0:
        raise ValueError(
            f"`classes` must be an int, {batch_size} class indices, or a ({batch_size}, n) "
            f"tensor for a batch of {batch_size}; got shape {tuple(indices.shape)}"
        )
    check_class_range(indices, num_classes, "classes")
    return torch.einsum("bnk,bkhw->bnhw", weight[indices], features)
