"""Models, layers and images for the command line, from local files only.

Models are torchvision architectures built with ``weights=None`` and loaded from a local
state dict (nothing is downloaded), or ``small-cnn``, the package's canvas CNN. Images are
preprocessed ImageNet-style (resize 256, center crop 224) into [0, 1]; the mean/std step is
the model's first module, so masks multiply pixels and 0 means black, as in Opti-CAM.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torchvision
from torch import Tensor, nn

from captum_contrast import _model

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_CNN = "small-cnn"


class CommandError(Exception):
    """A user error: printed without a traceback, exit status 2."""


class Normalized(nn.Module):
    """``model((x - mean) / std)``: inputs stay [0, 1] images, so a mask of 0 means black."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, inputs: Tensor) -> Tensor:
        return self.model((inputs - self.mean) / self.std)


def architectures() -> list[str]:
    """Every torchvision classification architecture, and ``small-cnn``."""
    return sorted(torchvision.models.list_models(module=torchvision.models)) + [SMALL_CNN]


def load_state_dict(path: str | Path) -> dict[str, Tensor]:
    """A state dict from ``path`` (``weights_only``), unwrapping ``{"state_dict": ...}``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CommandError(f"weights file {path} does not exist") from None
    except Exception as error:  # torch raises many types for a file that is not a checkpoint
        raise CommandError(
            f"cannot read weights file {path}: not a tensor-only PyTorch "
            f"checkpoint (torch.load(weights_only=True) raised "
            f"{type(error).__name__})"
        ) from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        raise CommandError(f"{path} does not hold a state dict (a mapping of names to tensors)")
    return {key.removeprefix("module."): value for key, value in state.items()}


def build_model(
    arch: str, weights: str | Path, num_classes: int | None = None, normalize: bool = True
) -> tuple[nn.Module, nn.Module]:
    """``(model, network)``: ``network`` is the architecture with the weights loaded (layer
    names refer to it); ``model`` adds the input normalisation, in eval mode."""
    if arch not in architectures():
        close = difflib.get_close_matches(arch, architectures(), n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else "; see --help for the list"
        raise CommandError(f"unknown --arch {arch!r}{hint}")
    state = load_state_dict(weights)
    if arch == SMALL_CNN:
        network = _small_cnn_for(state)
    else:
        builder = torchvision.models.get_model_builder(arch)
        network = builder(weights=None, **({"num_classes": num_classes} if num_classes else {}))
        head = _head_size(network.state_dict(), state) if num_classes is None else None
        if head is not None:
            network = builder(weights=None, num_classes=head)
    _load_checked(network, state, arch, weights)
    network.eval()
    if arch == SMALL_CNN or not normalize:
        return network, network
    return Normalized(network, IMAGENET_MEAN, IMAGENET_STD).eval(), network


def _head_size(expected: dict[str, Tensor], state: dict[str, Tensor]) -> int | None:
    """The number of classes of a checkpoint whose only difference is the classifier size."""
    different = [k for k in state if k in expected and state[k].shape != expected[k].shape]
    sizes = {state[k].shape[0] for k in different}
    same_rest = all(state[k].shape[1:] == expected[k].shape[1:] for k in different)
    return sizes.pop() if different and len(sizes) == 1 and same_rest else None


def _small_cnn_for(state: dict[str, Tensor]) -> nn.Module:
    from captum_contrast.data.models import small_cnn

    if "features.0.weight" not in state or "classifier.weight" not in state:
        raise CommandError(
            "--weights does not match --arch small-cnn: no features.0.weight or classifier.weight"
        )
    width, in_channels = state["features.0.weight"].shape[:2]
    batch_norm = "features.1.running_mean" in state
    return small_cnn(state["classifier.weight"].shape[0], int(in_channels), int(width), batch_norm)


def _load_checked(network: nn.Module, state: dict[str, Tensor], arch: str, path: Any) -> None:
    expected = network.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k} {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
        for k in state
        if k in expected and state[k].shape != expected[k].shape
    ]
    if missing or unexpected or shapes:
        parts = [
            f"{label}: {', '.join(items[:3])}{' ...' if len(items) > 3 else ''}"
            for label, items in (
                ("missing keys", missing),
                ("unexpected keys", unexpected),
                ("shape mismatches", shapes),
            )
            if items
        ]
        raise CommandError(f"weights file {path} does not match --arch {arch} ({'; '.join(parts)})")
    network.load_state_dict(state)


def resolve_layer(network: nn.Module, name: str) -> nn.Module:
    """The submodule called ``name`` (dotted, e.g. ``layer4`` or ``features.28``)."""
    try:
        return _model.resolve_layer(network, name, argument="--layer")
    except ValueError as error:
        raise CommandError(str(error)) from None


def image_transform(resize: int, crop: int, channels: int) -> Callable[[Any], Tensor]:
    """PIL image -> ``(channels, crop, crop)`` float tensor in [0, 1]."""
    from torchvision import transforms

    mode = "L" if channels == 1 else "RGB"
    return transforms.Compose(
        [
            transforms.Lambda(lambda image: image.convert(mode)),
            transforms.Resize(resize),
            transforms.CenterCrop(crop),
            transforms.ToTensor(),
        ]
    )


def load_image(path: str | Path) -> Any:
    """A PIL image, or a :class:`CommandError` naming the file."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.load()
            return image.copy()
    except (OSError, UnidentifiedImageError) as error:
        raise CommandError(f"cannot read image {path}: {error}") from None


def input_channels(network: nn.Module) -> int:
    first = next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else 3
