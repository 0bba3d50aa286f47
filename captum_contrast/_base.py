"""Shared base class: a Captum layer attribution that computes through the engine."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch.nn.functional as F
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

from captum_contrast._layer import (
    LayerGradients,
    ReshapeTransform,
    ScoreWeights,
    check_layer,
    layer_gradients,
    weighted_activations,
)


class LayerContrastAttribution(LayerAttribution, GradientAttribution):
    """Base of the package's CAM methods; a sibling of Captum's ``LayerGradCam``.

    Args:
        forward_func: The model, or any function returning ``(batch, classes)`` outputs.
        layer: The module whose output (or input) is explained; its activations must be
            ``(B, K, h, w)``, or become so through ``reshape_transform``.
        device_ids: Device IDs, needed only if ``forward_func`` applies a ``DataParallel``
            model, as in Captum.
        reshape_transform: Turns the layer's tensor into ``(B, K, h, w)``, e.g. a vision
            transformer's tokens ``(B, 1 + h*w, D)`` into a grid (see
            :func:`captum_contrast.vit_reshape_transform`). It must only select and
            rearrange elements, because it is applied to the gradients as well.
    """

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        check_layer(forward_func, layer)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self.reshape_transform = reshape_transform

    def _layer_gradients(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        weights: ScoreWeights,
        additional_forward_args: Any,
        attribute_to_layer_input: bool,
    ) -> LayerGradients:
        return layer_gradients(
            self.forward_func,
            self.layer,
            inputs,
            weights,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=self.device_ids,
            reshape_transform=self.reshape_transform,
        )

    @staticmethod
    def _weighted_map(
        channel_weights: Tensor, activations: Tensor, relu_attributions: bool, return_weights: bool
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``sum_k w_k A_k`` (ReLU'd on request), with the weights when asked for."""
        attributions = weighted_activations(channel_weights, activations)
        if relu_attributions:
            attributions = F.relu(attributions)
        return (attributions, channel_weights) if return_weights else attributions


def vit_reshape_transform(
    tokens: Tensor, height: int | None = None, width: int | None = None
) -> Tensor:
    """Vision-transformer tokens ``(B, 1 + h*w, D)`` to a ``(B, D, h, w)`` grid.

    The class token is dropped. Without ``height``/``width`` the grid is taken as square.
    """
    if tokens.dim() != 3:
        raise ValueError(
            f"expected transformer tokens (B, 1 + h*w, D), got shape {tuple(tokens.shape)}"
        )
    patches = tokens[:, 1:, :]
    num_patches = patches.shape[1]
    if height is None or width is None:
        side = round(num_patches**0.5)
        if side * side != num_patches:
            raise ValueError(
                f"{num_patches} patch tokens do not form a square grid; pass height and width"
            )
        height = width = side
    if height * width != num_patches:
        raise ValueError(
            f"height*width = {height * width} but there are {num_patches} patch tokens"
        )
    return patches.reshape(patches.shape[0], height, width, patches.shape[2]).permute(0, 3, 1, 2)
