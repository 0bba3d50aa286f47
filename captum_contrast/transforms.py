"""Layer transforms: lay a layer's tensor out as ``(B, K, h, w)`` channel maps.

A transform passed as ``reshape_transform`` is applied to the activations and to their
gradients alike, so it must only select and rearrange elements (slicing, reshape, permute).
"""

from __future__ import annotations

from torch import Tensor


def vit_reshape_transform(
    tokens: Tensor, height: int | None = None, width: int | None = None
) -> Tensor:
    """Vision-transformer tokens ``(B, 1 + h*w, D)`` to a ``(B, D, h, w)`` grid.

    The class token is dropped. Without ``height``/``width`` the grid is taken as square.

    Example:
        >>> import torch
        >>> from captum_contrast import vit_reshape_transform
        >>> vit_reshape_transform(torch.rand(2, 1 + 14 * 14, 768)).shape  # ViT-B/16 at 224 px
        torch.Size([2, 768, 14, 14])
        >>> vit_reshape_transform(torch.rand(2, 1 + 2 * 8, 4), height=2, width=8).shape
        torch.Size([2, 4, 2, 8])
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
