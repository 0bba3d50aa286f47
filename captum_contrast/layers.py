"""The default layer to explain: the last module whose maps receive gradient.

Engine knowledge beside :func:`captum_contrast.transforms.infer_layout`, which it uses to
decide which module outputs are maps; the command line, the model zoo and the benchmarks
read it from here.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from captum_contrast.scores import ScoresLike, read_scores
from captum_contrast.transforms import infer_layout

POOLING = (nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveAvgPool3d, nn.AdaptiveMaxPool2d)


def default_layer(
    model: nn.Module, network: nn.Module, example: Tensor, scores: ScoresLike = None
) -> str:
    """The dotted name of the last module that outputs a map whose cells receive gradient.

    One forward and backward of ``example``: among modules run once whose output lays out as
    maps (:func:`captum_contrast.transforms.infer_layout`), pooling, linear, flatten and
    permute layers aside, the last to finish whose gradient reaches more than one cell. That
    is ``layer4`` for a ResNet, ``features`` for VGG, DenseNet or EfficientNet, and the last block's first LayerNorm for a
    vision transformer that classifies from its class token (later tokens get no gradient).
    ``network`` names the modules (it may be ``model`` itself, or the network inside a
    normalising wrapper); ``scores`` reads the model's output (:mod:`captum_contrast.scores`),
    e.g. a ``RegionScores`` for a segmentation network. Raises a ValueError when no module
    qualifies.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast.layers import default_layer
        >>> model = resnet18(weights=None).eval()
        >>> default_layer(model, model, torch.rand(1, 3, 64, 64))
        'layer4'
    """
    names = {module: name for name, module in network.named_modules() if name}
    seen: dict[str, tuple[Tensor, Any]] = {}
    calls: dict[str, int] = {}
    grid = tuple(example.shape[2:])

    def hook(module: nn.Module, args: Any, output: Any) -> None:
        name = names[module]
        calls[name] = calls.get(name, 0) + 1
        if isinstance(output, tuple) and len(output) == 1:
            output = output[0]
        if (
            not isinstance(output, Tensor)
            or not output.requires_grad
            # Pooled maps and per-token projections (attention's q/k/v, MLPs) are not the
            # features a CAM explains.
            or isinstance(module, (*POOLING, nn.Linear, nn.Flatten))
            or type(module).__name__ == "Permute"  # torchvision's: a rearrangement, not features
        ):
            return
        try:
            transform = infer_layout(output.shape, grid, module)
        except ValueError:
            return
        seen[name] = (output, transform)

    handles = [module.register_forward_hook(hook) for module in names]
    try:
        with torch.enable_grad():
            logits = read_scores(scores, model(example.detach().clone().requires_grad_(True)))
    finally:
        for handle in handles:
            handle.remove()
    once = [name for name in seen if calls[name] == 1]
    # autograd.grad, not backward(): no parameter's .grad is written.
    grads = torch.autograd.grad(
        logits.max(dim=1).values.sum(), [seen[name][0] for name in once], allow_unused=True
    )
    for name, grad in reversed(list(zip(once, grads, strict=True))):
        if grad is None:
            continue
        transform = seen[name][1]
        maps = grad if transform is None else transform(grad)
        reached = maps.abs().sum(dim=(0, 1)) > 0
        if reached.numel() > 1 and int(reached.sum()) > 1:
            return name
    raise ValueError(
        "no layer of this model outputs maps that receive gradient; pass the layer explicitly"
    )
