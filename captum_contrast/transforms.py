"""Layer layouts: lay a layer's tensor out as channel-first maps ``(B, K, *grid)``.

A transform passed as ``reshape_transform`` is applied to the activations and to their
gradients alike, so it must only select and rearrange elements (slicing, reshape, permute).

With no ``reshape_transform``, :func:`infer_layout` recognises what the layer produced, by
one rule: the layer's type first, then the shape, else an error.

1. *The type.* A convolution (``Conv{1,2,3}d``, ``ConvTranspose``), BatchNorm, InstanceNorm,
   GroupNorm, pooling or upsampling layer reads and writes channels-first maps
   ``(B, K, *grid)``, whatever the shape. A ``Linear`` or a ``LayerNorm`` over the last axis
   puts the features last: channels-last maps ``(B, *grid, K)`` (Swin blocks, NHWC stages,
   :func:`channels_last_transform`), or transformer tokens ``(B, p + h*w, D)`` on an image
   (:func:`tokens_transform`). An ``nn.Sequential`` is read through its last child
   (activations, dropout and ``Identity`` keep their input's layout).
2. *The shape*, for any other layer (a residual block, a custom module): channels-first
   maps, channels-last maps or tokens with ``p`` in :data:`PREFIX_TOKENS` prefix tokens,
   whichever fits the input's spatial size.
3. *Else an error* naming ``reshape_transform`` and the transforms: when no layout fits,
   when channels-first and channels-last both fit (``(B, 8, 8, 8)`` on a 32x32 input), or
   when several token grids do (2x2 patches + 1 prefix token or 1x1 + 4). It never guesses.

A grid *fits* the input when one stride ``f`` maps every input axis to it
(``|grid_i - size_i / f| < 1``), a larger input side gets no fewer cells and equal sides
get equally many; between token grids that fit, the one alone in having one exact stride
(``H / h == W / w``, as patches give) is taken. A 1-D signal's maps from a layer of
unknown type are read channels-first, as Conv1d writes them and as Captum does: one axis
fits any stride, so channels-last 1-D maps of a custom module need
:func:`channels_last_transform` explicitly.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from torch import Tensor, nn

ReshapeTransform = Callable[[Tensor], Tensor]
PREFIX_TOKENS = (0, 1, 2, 4, 5)
"""Prefix-token counts :func:`infer_layout` tries: none (Hugging Face Swin), a class token,
class + distillation (DeiT), 4 registers, class + 4 registers (DINOv2, timm ``reg4``)."""


def channels_last_transform(maps: Tensor) -> Tensor:
    """Channels-last maps ``(B, *grid, K)`` to channels-first ``(B, K, *grid)``.

    Example:
        >>> import torch
        >>> from captum_contrast import channels_last_transform
        >>> channels_last_transform(torch.zeros(2, 7, 5, 768)).shape
        torch.Size([2, 768, 7, 5])
    """
    if maps.dim() < 3:
        raise ValueError(
            f"expected channels-last maps (B, *grid, K), got shape {tuple(maps.shape)}"
        )
    return maps.movedim(-1, 1)


def tokens_transform(
    tokens: Tensor, prefix_tokens: int = 1, height: int | None = None, width: int | None = None
) -> Tensor:
    """Transformer tokens ``(B, prefix_tokens + h*w, D)`` to a ``(B, D, h, w)`` grid.

    The first ``prefix_tokens`` tokens (class, distillation, register tokens) are dropped.
    Without ``height``/``width`` the grid is taken as square. Bind the arguments with
    ``functools.partial`` to pass it as a ``reshape_transform``.

    Example:
        >>> import torch
        >>> from functools import partial
        >>> from captum_contrast import tokens_transform
        >>> deit_distilled = partial(tokens_transform, prefix_tokens=2)
        >>> deit_distilled(torch.zeros(1, 2 + 14 * 14, 192)).shape
        torch.Size([1, 192, 14, 14])
        >>> tokens_transform(torch.zeros(1, 6 * 8, 96), prefix_tokens=0, height=6, width=8).shape
        torch.Size([1, 96, 6, 8])
    """
    if tokens.dim() != 3:
        raise ValueError(
            f"expected transformer tokens (B, prefix + h*w, D), got shape {tuple(tokens.shape)}"
        )
    if isinstance(prefix_tokens, bool) or not isinstance(prefix_tokens, int) or prefix_tokens < 0:
        raise ValueError(f"`prefix_tokens` must be a non-negative int, got {prefix_tokens!r}")
    patches = tokens[:, prefix_tokens:, :]
    num_patches = patches.shape[1]
    if height is None or width is None:
        side = math.isqrt(num_patches)
        if side * side != num_patches or num_patches == 0:
            raise ValueError(
                f"{num_patches} patch tokens (after {prefix_tokens} prefix tokens) do not form "
                "a square grid; pass height and width"
            )
        height = width = side
    if height * width != num_patches:
        raise ValueError(
            f"height*width = {height * width} but there are {num_patches} patch tokens "
            f"after {prefix_tokens} prefix tokens"
        )
    return patches.reshape(patches.shape[0], height, width, patches.shape[2]).permute(0, 3, 1, 2)


def vit_reshape_transform(
    tokens: Tensor, height: int | None = None, width: int | None = None
) -> Tensor:
    """Vision-transformer tokens ``(B, 1 + h*w, D)`` to a ``(B, D, h, w)`` grid.

    The class token is dropped: :func:`tokens_transform` with one prefix token.

    Example:
        >>> import torch
        >>> from captum_contrast import vit_reshape_transform
        >>> vit_reshape_transform(torch.zeros(2, 1 + 14 * 14, 768)).shape
        torch.Size([2, 768, 14, 14])
    """
    return tokens_transform(tokens, 1, height, width)


def grid_fits(grid: Sequence[int], spatial: Sequence[int]) -> bool:
    """Whether one stride maps the input's spatial size onto ``grid`` (see the module)."""
    if len(grid) != len(spatial) or min(grid, default=0) < 1:
        return False
    for i in range(len(grid)):
        for j in range(len(grid)):
            # A larger side never gets fewer cells, an equal side exactly as many.
            if spatial[i] <= spatial[j] and grid[i] > grid[j]:
                return False
    # |g - s/f| < 1  <=>  s/(g+1) < f < s/(g-1): the intervals of every axis must meet.
    low = max(s / (g + 1) for g, s in zip(grid, spatial, strict=True))
    high = min(s / (g - 1) if g > 1 else math.inf for g, s in zip(grid, spatial, strict=True))
    return low < high


def _one_stride(grid: Sequence[int], spatial: Sequence[int]) -> bool:
    """Whether every cell has the same exact size, ``size_i / grid_i`` (as patches do)."""
    return all(s * grid[0] == spatial[0] * g for g, s in zip(grid, spatial, strict=True))


def _grid_of(transform: Any) -> tuple[int, int]:
    return transform.keywords["height"], transform.keywords["width"]


def _token_grids(num_tokens: int, spatial: Sequence[int]) -> list[tuple[int, int, int]]:
    """Every ``(prefix, h, w)`` with ``prefix + h*w = num_tokens`` whose grid fits."""
    found = []
    for prefix in PREFIX_TOKENS:
        patches = num_tokens - prefix
        for height in range(1, patches + 1):
            if patches % height == 0 and grid_fits((height, patches // height), spatial):
                found.append((prefix, height, patches // height))
    return found


_CHANNELS_FIRST: tuple[type[nn.Module], ...] = (
    nn.modules.conv._ConvNd,  # Conv1d/2d/3d and ConvTranspose, lazy ones included
    nn.modules.batchnorm._NormBase,  # BatchNorm, SyncBatchNorm, InstanceNorm
    nn.GroupNorm,
    nn.LocalResponseNorm,
    nn.modules.pooling._MaxPoolNd,
    nn.modules.pooling._AvgPoolNd,
    nn.modules.pooling._AdaptiveAvgPoolNd,
    nn.modules.pooling._AdaptiveMaxPoolNd,
    nn.modules.pooling._LPPoolNd,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.Upsample,
    nn.PixelShuffle,
    nn.PixelUnshuffle,
)
"""Layer types whose input and output are channels-first ``(B, K, *grid)`` whatever the shape."""

_ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.Identity,
    nn.Dropout,
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.SELU,
    nn.CELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
    nn.Sigmoid,
    nn.Tanh,
    nn.Softplus,
)
"""Layer types that keep the layout of their input (so a ``Sequential`` is read through them)."""

Layout = str | None
"""``"first"`` (channels-first), ``"last"`` (features on the last axis) or ``None`` (unknown)."""


def layer_layout(layer: nn.Module | None, layer_input: bool = False) -> Layout:
    """What a layer's type says of the layout of its output (or input): see :func:`infer_layout`.

    Example:
        >>> from torch import nn
        >>> from captum_contrast.transforms import layer_layout
        >>> layer_layout(nn.Conv2d(3, 5, 3)), layer_layout(nn.LayerNorm(8)), layer_layout(nn.ReLU())
        ('first', 'last', None)
        >>> layer_layout(nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU()))
        'first'
    """
    if isinstance(layer, nn.Sequential):
        # A Sequential's output is its last child's (its input its first child's); children
        # that keep the layout of their input are read through.
        children = list(layer)
        for child in children if layer_input else reversed(children):
            found = layer_layout(child, layer_input)
            if found is not None or not isinstance(child, _ELEMENTWISE):
                return found
        return None
    if isinstance(layer, _CHANNELS_FIRST):
        return "first"
    # Only the plain classes: subclasses such as torchvision's and timm's LayerNorm2d
    # override forward to normalise channels-first maps.
    if getattr(type(layer), "forward", None) in (nn.Linear.forward, nn.LayerNorm.forward) and (
        not isinstance(layer, nn.LayerNorm) or len(layer.normalized_shape) == 1
    ):
        return "last"
    return None


def infer_layout(
    shape: Sequence[int],
    spatial: Sequence[int] | None,
    layer: nn.Module | None = None,
    *,
    layer_input: bool = False,
) -> ReshapeTransform | None:
    """The transform that lays a layer tensor of ``shape`` out as ``(B, K, *grid)``.

    One rule: the layer's type first, then the shape, else an error. A convolution,
    BatchNorm/InstanceNorm/GroupNorm, pooling or upsampling layer is channels-first whatever
    the shape; a ``Linear`` or a ``LayerNorm`` over the last axis puts the features last
    (channels-last maps, or transformer tokens when the tensor is ``(B, N, D)`` on an image);
    an ``nn.Sequential`` is read through its last child (skipping activations, dropout and
    ``Identity``). Any other layer is read from the shape, and when both channels-first and
    channels-last fit (``(B, 8, 8, 8)`` on a 32x32 input) it raises rather than guess.

    Args:
        shape: The layer tensor's shape, batch first.
        spatial: The input's spatial size (``(H, W)`` of ``(B, C, H, W)`` images), or
            ``None`` when the input has no grid; then a layer of unknown type is assumed
            channels-first, as Captum's ``LayerGradCam`` does.
        layer: The module whose tensor it is; ``None`` reads the shape alone.
        layer_input: The tensor is the layer's input (``attribute_to_layer_input``), not its
            output: a ``Sequential`` is then read through its first child.

    Returns:
        ``None`` for channels-first maps, else the transform to apply.

    Raises:
        ValueError: naming the shape, ``reshape_transform`` and the transforms that fix
            it, when no layout fits or several do.

    Example:
        >>> from torch import nn
        >>> from captum_contrast.transforms import infer_layout
        >>> infer_layout((8, 512, 7, 7), (224, 224)) is None
        True
        >>> infer_layout((8, 7, 7, 768), (224, 224)).__name__
        'channels_last_transform'
        >>> infer_layout((8, 2 + 196, 192), (224, 224)).keywords
        {'prefix_tokens': 2, 'height': 14, 'width': 14}
        >>> infer_layout((8, 5, 6, 8), (20, 24), nn.Conv2d(3, 5, 3, stride=3)) is None
        True
        >>> infer_layout((8, 8, 8, 8), (32, 32), nn.LayerNorm(8)).__name__
        'channels_last_transform'
    """
    shape, rank = tuple(shape), len(shape)
    if rank < 3 or rank > 5:
        raise ValueError(_unreadable(shape, "maps need 1 to 3 spatial axes: (B, K, *grid)"))
    said = layer_layout(layer, layer_input)
    if said == "first":
        return None
    if said == "last":
        if spatial is not None and len(spatial) == 2 and rank == 3:
            return _tokens(shape, tuple(spatial))
        return channels_last_transform
    if spatial is None or len(spatial) == 1:
        # No grid to compare with, or a 1-D signal, where one axis fits any stride: read it
        # as Conv1d and Captum do, channels-first.
        return None
    spatial = tuple(spatial)
    if rank == len(spatial) + 2:
        first, last = grid_fits(shape[2:], spatial), grid_fits(shape[1:-1], spatial)
        if first and last:
            raise ValueError(
                _unreadable(
                    shape,
                    f"it is ambiguous on an input of spatial size {spatial}: channels-first "
                    f"(B, K, *grid) and channels-last (B, *grid, K) both fit, and the layer's "
                    f"type ({type(layer).__name__}) does not say which it writes",
                )
            )
        if last:
            return channels_last_transform
        if first:
            return None
    if rank == 3 and len(spatial) == 2:
        return _tokens(shape, spatial)
    raise ValueError(_unreadable(shape, f"no layout fits an input of spatial size {spatial}"))


def _tokens(shape: tuple[int, ...], spatial: tuple[int, ...]) -> ReshapeTransform:
    """The one token grid ``(B, p + h*w, D)`` that fits ``spatial``, or a ValueError."""
    candidates: list[tuple[str, ReshapeTransform]] = []
    for prefix, height, width in _token_grids(shape[1], spatial):
        transform = partial(tokens_transform, prefix_tokens=prefix, height=height, width=width)
        label = f"tokens with {prefix} prefix tokens on a {height}x{width} grid"
        candidates.append((label, transform))
    if len(candidates) > 1:
        # Several token grids fit loosely (small non-square grids do); one whose cells
        # all have the same exact size, as a patch embedding makes them, settles it.
        exact = [c for c in candidates if _one_stride(_grid_of(c[1]), spatial)]
        candidates = exact if len(exact) == 1 else candidates
    if len(candidates) == 1:
        return candidates[0][1]
    if not candidates:
        reason = f"no layout fits an input of spatial size {spatial}"
    else:
        reason = "it is ambiguous: " + "; ".join(label for label, _ in candidates)
    raise ValueError(_unreadable(shape, reason))


def _unreadable(shape: tuple[int, ...], reason: str) -> str:
    return (
        f"cannot lay the layer's tensor of shape {shape} out as maps (B, K, *grid): {reason}. "
        "Pass `reshape_transform`: channels_last_transform for (B, *grid, K), "
        "functools.partial(tokens_transform, prefix_tokens=p, height=h, width=w) for "
        "transformer tokens (B, p + h*w, D), or your own function returning (B, K, *grid)"
    )


def transformed(reshape_transform: Callable[[Tensor], Tensor], tensor: Tensor) -> Tensor:
    """``reshape_transform(tensor)``, checked to keep the examples: a floating tensor with the
    same first (batch) axis, so that no map is silently dropped, doubled or mixed up."""
    result = reshape_transform(tensor)
    if not isinstance(result, Tensor) or not result.is_floating_point():
        kind = f"a {result.dtype} tensor" if isinstance(result, Tensor) else type(result).__name__
        raise ValueError(f"`reshape_transform` must return a floating tensor, got {kind}")
    if result.dim() == 0 or result.shape[0] != tensor.shape[0]:
        raise ValueError(
            f"`reshape_transform` must keep the batch axis first and whole: given "
            f"{tuple(tensor.shape)}, it returned {tuple(result.shape)} (it must also be "
            "batch-agnostic: it is applied to the gradients of every score stacked on the "
            "batch axis)"
        )
    return result


def check_maps(maps: Tensor, source: str) -> None:
    """Raise unless ``maps`` is ``(B, K, *grid)`` with 1 to 3 grid axes."""
    if not 3 <= maps.dim() <= 5:
        raise ValueError(
            f"expected layer maps (B, K, *grid) with 1 to 3 grid axes, but {source} shape "
            f"{tuple(maps.shape)}"
        )
