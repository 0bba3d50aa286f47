"""Kernel usage regularisation (MinMax-CAM): a linear head whose weights compete across labels."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class KernelUsageRegularizedLinear(nn.Linear):
    r"""Drop-in ``nn.Linear`` whose effective weight is :math:`W \circ \mathrm{softmax}(W)`.

    MinMax-CAM's kernel usage regularisation (David et al., ``kur.py``): for each feature
    kernel ``k``, the softmax runs across the labels, so a kernel that is strongly positive
    for one label is damped for the others and labels come to use distinct kernels. The
    Keras kernel is ``(K, L)`` with the softmax over its last axis; PyTorch stores
    ``weight`` as ``(L, K)``, so here the softmax runs over dim 0. As in the reference code it
    is computed as ``softmax(W - max)`` with no stop-gradient, so gradients flow through both
    factors.

    ``forward`` is ``F.linear(x, effective_weight, bias)``. For CAMs of a model with this head
    (MinMax-CAM, :func:`class_activation_maps`, the salience losses) the class weights are
    :attr:`effective_weight`, not ``weight``.

    Args:
        in_features, out_features, bias, device, dtype: As ``nn.Linear``.

    Example:
        >>> import torch
        >>> from captum_contrast.training import KernelUsageRegularizedLinear
        >>> head = KernelUsageRegularizedLinear(4, 3)
        >>> head(torch.rand(2, 4)).shape
        torch.Size([2, 3])
        >>> head.effective_weight.shape
        torch.Size([3, 4])
    """

    @property
    def effective_weight(self) -> Tensor:
        """``(L, K)`` weights actually applied: ``W * softmax(W - max, dim=0)``."""
        shifted = self.weight - self.weight.max(dim=0, keepdim=True).values
        return self.weight * torch.softmax(shifted, dim=0)

    def forward(self, inputs: Tensor) -> Tensor:
        return F.linear(inputs, self.effective_weight, self.bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear) -> KernelUsageRegularizedLinear:
        """A regularised head starting from ``linear``'s weight and bias (copied)."""
        if not isinstance(linear, nn.Linear):
            raise TypeError(f"`linear` must be an nn.Linear, got {type(linear).__name__}")
        head = cls(
            linear.in_features,
            linear.out_features,
            bias=linear.bias is not None,
            device=linear.weight.device,
            dtype=linear.weight.dtype,
        )
        with torch.no_grad():
            head.weight.copy_(linear.weight)
            if linear.bias is not None:
                head.bias.copy_(linear.bias)
        return head
