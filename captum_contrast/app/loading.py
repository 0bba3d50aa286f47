"""Models and layers for the command line (images: :mod:`captum_contrast.app.images`).

Models are torchvision architectures with a local state dict, or with torchvision's own
named weights (``--weights DEFAULT``, ``IMAGENET1K_V2``: downloaded only because the user
asked, read from the torch hub cache when there), ``small-cnn`` (the package's canvas CNN),
``timm:<name>`` with a local state dict, or ``hf:<local model directory>``. Each model
comes with its resize and crop (ImageNet's 256/224 unless the weights say otherwise), for
:func:`captum_contrast.app.images.image_transform`; the mean/std step is the model's first module, so masks multiply pixels and
0 means black, as in Opti-CAM.
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
import torchvision
from torch import Tensor, nn

from captum_contrast import _model
from captum_contrast.scores import ClassScores

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
SMALL_CNN = "small-cnn"
TIMM, HF = "timm:", "hf:"


class CommandError(Exception):
    """A user error: printed without a traceback, exit status 2."""


class Normalized(nn.Module):
    """``model((x - mean) / std)``: inputs stay [0, 1] images, so a mask of 0 means black."""

    def __init__(self, model: nn.Module, mean: Sequence[float], std: Sequence[float]) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.tensor(mean).reshape(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).reshape(1, -1, 1, 1))

    def forward(self, inputs: Tensor) -> Any:
        outputs = self.model((inputs - self.mean) / self.std)
        if isinstance(outputs, dict):  # a segmentation network's {"out": ...}: read by scores
            return outputs
        # Logits, also from models returning an object (Hugging Face), for every consumer.
        return ClassScores()(outputs)


def architectures() -> list[str]:
    """Every torchvision classification and segmentation architecture, and ``small-cnn``."""
    return sorted(
        torchvision.models.list_models(module=torchvision.models) + segmentation_architectures()
    ) + [SMALL_CNN]


def segmentation_architectures() -> list[str]:
    """torchvision's semantic segmentation architectures (``{"out": (B, C, H, W)}`` outputs)."""
    return sorted(torchvision.models.list_models(module=torchvision.models.segmentation))


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


@dataclass
class Loaded:
    """A model ready to explain: ``network`` holds the weights (layer names refer to it),
    ``model`` adds the input normalisation; both in eval mode."""

    model: nn.Module
    network: nn.Module
    categories: list[str] | None = None
    resize: int = 256
    crop: int = 224
    interpolation: Any = None
    fixed_size: bool = False
    """The model takes only ``crop``-sized inputs (Hugging Face vision transformers)."""


def load_model(
    arch: str, weights: str | None, num_classes: int | None = None, normalize: bool = True
) -> Loaded:
    """The model named by ``--arch`` with ``--weights`` (see the module docstring)."""
    if arch.startswith(TIMM):
        return _timm_model(arch.removeprefix(TIMM), weights, num_classes, normalize)
    if arch.startswith(HF):
        return _hf_model(arch.removeprefix(HF), normalize)
    if weights is None:
        raise CommandError(
            f"--arch {arch} needs --weights: a local state dict, or a torchvision weights "
            "name such as DEFAULT"
        )
    if arch != SMALL_CNN and arch in architectures() and not Path(weights).suffix:
        named = _named_weights(arch, weights)
        if named is not None:
            return _torchvision_named(arch, named, normalize)
    model, network = build_model(arch, weights, num_classes, normalize)
    return Loaded(model, network)


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
        extra: dict[str, Any] = {}
        if arch in segmentation_architectures():
            # No backbone download; the auxiliary head only where the checkpoint has one.
            extra = {"weights_backbone": None, "aux_loss": any(k.startswith("aux_") for k in state)}
        network = builder(
            weights=None, **extra, **({"num_classes": num_classes} if num_classes else {})
        )
        head = _head_size(network.state_dict(), state) if num_classes is None else None
        if head is not None:
            network = builder(weights=None, num_classes=head, **extra)
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


def input_channels(network: nn.Module) -> int:
    first = next((m for m in network.modules() if isinstance(m, nn.Conv2d)), None)
    return first.in_channels if first is not None else 3


def _named_weights(arch: str, name: str) -> Any:
    """torchvision's weights enum member ``name`` of ``arch``, or ``None`` if not a name."""
    enum = torchvision.models.get_model_weights(arch)
    if name in enum.__members__:
        return enum[name]
    if name.isupper() or name.isidentifier() and not Path(name).exists():
        raise CommandError(
            f"--weights {name!r} is neither a file nor a weights name of {arch}; "
            f"names: {', '.join(enum.__members__)}"
        )
    return None


def hub_checkpoint(weights: Any) -> Path:
    """Where torch hub keeps the file of torchvision's ``weights`` (``$TORCH_HOME/hub``)."""
    return Path(torch.hub.get_dir()) / "checkpoints" / Path(urlparse(weights.url).path).name


def _torchvision_named(arch: str, weights: Any, normalize: bool) -> Loaded:
    """torchvision's builder with its named weights, preprocessing and category names."""
    path = hub_checkpoint(weights)
    if not path.is_file():
        print(f"downloading {weights} to {path} (asked for by --weights)", file=sys.stderr)
    try:
        network = torchvision.models.get_model(arch, weights=weights).eval()
    except (OSError, RuntimeError) as error:  # URLError is an OSError; no network, bad file
        raise CommandError(
            f"cannot load {weights} ({type(error).__name__}: {error}); offline, download "
            f"{weights.url} elsewhere and place it at {path}"
        ) from None
    preprocess = weights.transforms()
    model: nn.Module = network
    if normalize:
        model = Normalized(network, preprocess.mean, preprocess.std).eval()
    return Loaded(
        model,
        network,
        list(weights.meta.get("categories") or []) or None,
        preprocess.resize_size[0],
        preprocess.crop_size[0],
        preprocess.interpolation,
    )


def _timm_model(name: str, weights: str | None, num_classes: int | None, normalize: bool) -> Loaded:
    try:
        import timm
    except ImportError:
        raise CommandError("--arch timm:... needs timm: pip install timm") from None
    if name not in timm.list_models():
        close = difflib.get_close_matches(name, timm.list_models(), n=3)
        raise CommandError(f"unknown timm model {name!r}; did you mean {', '.join(close)}?")
    if weights is None:
        raise CommandError(f"--arch timm:{name} needs --weights, a local state dict")
    state = load_state_dict(weights)
    network = timm.create_model(
        name, pretrained=False, **({"num_classes": num_classes} if num_classes else {})
    )
    head = _head_size(network.state_dict(), state) if num_classes is None else None
    if head is not None:
        network = timm.create_model(name, pretrained=False, num_classes=head)
    _load_checked(network, state, f"timm:{name}", weights)
    config = network.pretrained_cfg
    size = config.get("input_size", (3, 224, 224))[-1]
    model: nn.Module = network.eval()
    if normalize:
        model = Normalized(
            network, config.get("mean", IMAGENET_MEAN), config.get("std", IMAGENET_STD)
        ).eval()
    crop_pct = config.get("crop_pct", 0.875)
    return Loaded(model, network, None, round(size / crop_pct), size)


def _hf_model(directory: str, normalize: bool) -> Loaded:
    try:
        from transformers import AutoConfig, AutoModelForImageClassification
    except ImportError:
        raise CommandError("--arch hf:... needs transformers: pip install transformers") from None
    if not Path(directory, "config.json").is_file():
        raise CommandError(f"--arch hf:{directory}: not a local model directory (no config.json)")
    try:
        network = AutoModelForImageClassification.from_pretrained(directory, local_files_only=True)
        config = AutoConfig.from_pretrained(directory, local_files_only=True)
    except Exception as error:  # noqa: BLE001 - transformers raises many kinds; all name the cause
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise CommandError(f"--arch hf:{directory}: cannot load the model: {first}") from None
    network.eval()
    processor = _hf_processor(directory)
    mean = getattr(processor, "image_mean", None) or IMAGENET_MEAN
    std = getattr(processor, "image_std", None) or IMAGENET_STD
    size = getattr(config, "image_size", 224)
    size = size if isinstance(size, int) else 224
    if not normalize:  # still wrapped, so that the model returns logits, not an object
        mean, std = (0.0,) * len(mean), (1.0,) * len(std)
    model = Normalized(network, mean, std).eval()
    labels = network.config.id2label
    categories = [labels[i] for i in range(len(labels))] if labels else None
    return Loaded(model, network, categories, round(size / 0.875), size, fixed_size=True)


def _hf_processor(directory: str) -> Any:
    try:
        from transformers import AutoImageProcessor

        return AutoImageProcessor.from_pretrained(directory, local_files_only=True)
    except Exception:  # noqa: BLE001 - no or a broken preprocessor_config.json: ImageNet's
        return None


def class_index(target: str, categories: list[str] | None, num_classes: int) -> int:
    """``--target`` as a class index: an int, or a category name of named weights."""
    if target.lstrip("-").isdigit():
        index = int(target)
        if not 0 <= index < num_classes:
            raise CommandError(
                f"--target {index} is not a class of a model with {num_classes} outputs"
            )
        return index
    if not categories:
        raise CommandError(
            f"--target {target!r}: class names need weights with category names "
            "(torchvision named weights, a Hugging Face model); pass a class index"
        )
    lowered = [name.lower() for name in categories]
    if target.lower() in lowered:
        return lowered.index(target.lower())
    close = difflib.get_close_matches(target.lower(), lowered, n=3)
    hint = (
        f"; did you mean {', '.join(categories[lowered.index(c)] for c in close)}?" if close else ""
    )
    raise CommandError(f"--target {target!r} is not a class name of these weights{hint}")
