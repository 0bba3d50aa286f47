"""PaddleOCR's networks from ``rapidocr-onnxruntime`` (Apache-2.0), ported to torch.

Three networks ship as ONNX files in the ``rapidocr-onnxruntime`` wheel; each is vendored
here as a converted graph (:mod:`._graph`, made by :func:`convert_ocr_network`), so none
needs ``onnx`` or the wheel at load time:

- :func:`text_direction_model`: the text-direction classifier (0 vs 180 degrees, a small
  MobileNetV3): a line -> ``(B, 2)`` logits.
- :func:`text_detection_model`: PP-OCRv4's text **detector** (DB, Liao et al., 2020): an
  image -> a per-pixel text map, ``(B, 2, H, W)`` logits for (background, text).
- :func:`text_recognition_model`: PP-OCRv4's text **recogniser** (PP-LCNetV3 + SVTR neck + a
  CTC head): a line ``(B, 3, 48, W)`` -> ``(B, W / 8, 6625)`` logits over characters, one row
  per time step; :func:`ctc_greedy_decode` reads them.

The final softmax or sigmoid of each graph is cut, so every model returns logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_contrast.data.pretrained._common import (
    WEIGHTS_DIR,
    PretrainedModel,
    as_float_image,
    resize,
    source_file,
)
from captum_contrast.data.pretrained._graph import GraphNetwork, Spec

TEXT_DIRECTIONS = ("0", "180")
DETECTION_CLASSES = ("background", "text")

TEXT_DIRECTION_ONNX = "models/ch_ppocr_mobile_v2.0_cls_infer.onnx"
TEXT_DETECTION_ONNX = "models/ch_PP-OCRv4_det_infer.onnx"
TEXT_RECOGNITION_ONNX = "models/ch_PP-OCRv4_rec_infer.onnx"
# ONNX file in the wheel -> (vendored file, the operator that ends the graph and is cut).
NETWORKS = {
    TEXT_DIRECTION_ONNX: ("ppocr_mobile_v2_cls.pt", "Softmax"),
    TEXT_DETECTION_ONNX: ("ppocr_v4_det.pt", "Sigmoid"),
    TEXT_RECOGNITION_ONNX: ("ppocr_v4_rec.pt", "Softmax"),
}
SOURCE = (
    "rapidocr-onnxruntime 1.4.4, rapidocr_onnxruntime/{} (Apache-2.0); see weights/LICENSE-rapidocr"
)
RECOGNITION_HEIGHT, RECOGNITION_MIN_WIDTH = 48, 320


def convert_ocr_network(onnx_file: str, path: str | Path | None = None) -> Spec:
    """Convert one of the wheel's ONNX networks into the spec vendored under ``weights/``.

    Needs ``onnx`` (and, without ``path``, ``rapidocr-onnxruntime``): the ``[examples]`` extra.

    Args:
        onnx_file: One of :data:`NETWORKS`' keys, e.g. :data:`TEXT_DETECTION_ONNX`.
        path: The ``.onnx`` file; by default the installed wheel's.

    Example:
        >>> spec = convert_ocr_network(TEXT_DETECTION_ONNX)  # doctest: +SKIP
        >>> torch.save(spec, WEIGHTS_DIR / NETWORKS[TEXT_DETECTION_ONNX][0])  # doctest: +SKIP
    """
    from captum_contrast.data.pretrained._onnx import convert

    if onnx_file not in NETWORKS:
        raise ValueError(f"`onnx_file` must be one of {sorted(NETWORKS)}, got {onnx_file!r}")
    path = source_file("rapidocr_onnxruntime", onnx_file) if path is None else path
    return convert(path, cut_final=NETWORKS[onnx_file][1])


def _vendored(onnx_file: str) -> GraphNetwork:
    spec = torch.load(WEIGHTS_DIR / NETWORKS[onnx_file][0], map_location="cpu", weights_only=True)
    return GraphNetwork(spec).eval()


def _bgr(image: np.ndarray | Tensor) -> Tensor:
    """Three channels in PaddleOCR's order (it reads images with OpenCV, so BGR)."""
    rgb = as_float_image(image).expand(3, -1, -1)
    return rgb.flip(0)


# --- text direction ---------------------------------------------------------------------------


def text_direction_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A line of text -> the classifier's ``(3, 48, 192)`` input in ``[-1, 1]``.

    The line is resized to height 48 keeping its aspect ratio (at most 192 wide) and padded
    with zeros on the right, as PaddleOCR's classifier does.

    Example:
        >>> text_direction_preprocess(np.zeros((20, 100), np.uint8)).shape
        torch.Size([3, 48, 192])
    """
    bgr = _bgr(image)
    height, width = bgr.shape[-2:]
    new_width = min(192, max(1, int(np.ceil(48 * width / height))))
    line = (resize(bgr, (48, new_width)) - 0.5) / 0.5
    return F.pad(line, (0, 192 - new_width))


def text_direction_model() -> PretrainedModel:
    """PaddleOCR's text-direction classifier: a line (48x192) -> logits for ``"0"``, ``"180"``.

    Explained at the last feature maps before the final max-pool (``nodes.hardswish_17``,
    200 channels on a 2x96 grid for a 48x192 line: strides 24 and 2, which the automatic
    layout refuses; give this package's methods an identity ``reshape_transform``, as
    ``benchmarks/_common.py`` does).

    Example:
        >>> net = text_direction_model()
        >>> net.class_names, net.model(net.preprocess(np.zeros((32, 200), np.uint8))[None]).shape
        (('0', '180'), torch.Size([1, 2]))
    """
    return PretrainedModel(
        model=_vendored(TEXT_DIRECTION_ONNX),
        preprocess=text_direction_preprocess,
        class_names=TEXT_DIRECTIONS,
        layer="nodes.hardswish_17",
        source=SOURCE.format(TEXT_DIRECTION_ONNX),
    )


# --- text detection ---------------------------------------------------------------------------


class BinaryMapLogits(nn.Module):
    """A network's one-channel logit map ``z`` as two-class logits ``(0, z)`` per position.

    DB ends in a sigmoid: the text probability is ``p = sigmoid(z)``. With the sigmoid cut
    and a constant 0 logit for "background", a softmax over the two classes gives back
    ``(1 - p, p)`` exactly, so the map reads like a segmentation network's ``(B, C, H, W)``
    output: explaining "text" is explaining ``z``, and text-vs-background contrasts are the
    same thing (background's logit is the constant reference).

    Example:
        >>> two = BinaryMapLogits(nn.Identity())(torch.tensor([[[[2.0]]]]))
        >>> two.shape, two.softmax(1)[0, 1].item() == torch.sigmoid(torch.tensor(2.0)).item()
        (torch.Size([1, 2, 1, 1]), True)
    """

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, x: Tensor) -> Tensor:
        z = self.network(x)
        if z.dim() < 3 or z.shape[1] != 1:
            raise ValueError(f"expected a (B, 1, ...) logit map, got {tuple(z.shape)}")
        return torch.cat([torch.zeros_like(z), z], dim=1)


def text_detection_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """An image -> the detector's ``(3, H', W')`` input: BGR in ``[-1, 1]``, sides a multiple
    of 32 (each rounded to the nearest, as rapidocr does; rapidocr first scales the short side
    up to 736 px, which is left to the caller here).

    Example:
        >>> text_detection_preprocess(np.zeros((172, 448), np.uint8)).shape
        torch.Size([3, 160, 448])
    """
    bgr = _bgr(image)
    height, width = (max(32, int(round(side / 32)) * 32) for side in bgr.shape[-2:])
    size = (height, width)
    return (resize(bgr, size) - 0.5) / 0.5


def text_detection_model() -> PretrainedModel:
    """PP-OCRv4's DB text detector: ``(B, 3, H, W)`` -> ``(B, 2, H, W)`` (background, text).

    ``model(x).softmax(1)[:, 1]`` is DB's text probability map (what rapidocr thresholds at
    0.3 to find text boxes). Explained at ``network.nodes.Concat_1``: the neck's four
    upsampled pyramid levels (96 channels at a quarter of the input's resolution), which the
    head turns into the map.

    Example:
        >>> net = text_detection_model()
        >>> net.model(torch.zeros(1, 3, 64, 96)).shape
        torch.Size([1, 2, 64, 96])
    """
    return PretrainedModel(
        model=BinaryMapLogits(_vendored(TEXT_DETECTION_ONNX)).eval(),
        preprocess=text_detection_preprocess,
        class_names=DETECTION_CLASSES,
        layer="network.nodes.Concat_1",
        source=SOURCE.format(TEXT_DETECTION_ONNX),
    )


# --- text recognition -------------------------------------------------------------------------


def text_recognition_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A line of text -> the recogniser's ``(3, 48, W)`` input: BGR in ``[-1, 1]``.

    As rapidocr does: the line is resized to height 48 keeping its aspect ratio and padded
    with zeros on the right to ``W = max(320, int(48 * width / height))``; the output has
    ``W / 8`` time steps.

    Example:
        >>> text_recognition_preprocess(np.zeros((24, 100), np.uint8)).shape
        torch.Size([3, 48, 320])
        >>> text_recognition_preprocess(np.zeros((24, 384), np.uint8)).shape
        torch.Size([3, 48, 768])
    """
    bgr = _bgr(image)
    ratio = bgr.shape[-1] / bgr.shape[-2]
    width = max(RECOGNITION_MIN_WIDTH, int(RECOGNITION_HEIGHT * ratio))
    new_width = min(width, max(1, int(np.ceil(RECOGNITION_HEIGHT * ratio))))
    line = (resize(bgr, (RECOGNITION_HEIGHT, new_width)) - 0.5) / 0.5
    return F.pad(line, (0, width - new_width))


def text_recognition_model() -> PretrainedModel:
    """PP-OCRv4's recogniser: a line ``(B, 3, 48, W)`` -> ``(B, W / 8, 6625)`` CTC logits.

    ``class_names`` is the CTC alphabet: index 0 is the blank, then the 6623 characters of
    the model's dictionary (Chinese, Latin, digits, punctuation), then a space; decode with
    :func:`ctc_greedy_decode`. Explained at ``nodes.Add_231``: the backbone's last feature
    maps (480 channels, 3 x W/4) before they are pooled into one row of time steps.

    Example:
        >>> net = text_recognition_model()
        >>> net.class_names[0], len(net.class_names)
        ('blank', 6625)
        >>> net.model(torch.zeros(1, 3, 48, 320)).shape
        torch.Size([1, 40, 6625])
    """
    network = _vendored(TEXT_RECOGNITION_ONNX)
    # rapidocr's CTCLabelDecode: the metadata's lines, a space appended, the blank first.
    alphabet = ("blank", *network.metadata["character"].splitlines(), " ")
    return PretrainedModel(
        model=network,
        preprocess=text_recognition_preprocess,
        class_names=alphabet,
        layer="nodes.Add_231",
        source=SOURCE.format(TEXT_RECOGNITION_ONNX),
    )


class Reading(NamedTuple):
    """One line read by :func:`ctc_greedy_decode`.

    Example:
        >>> Reading("ab", (3, 7)).steps[1]  # "b" was emitted at time step 7
        7
    """

    text: str
    """The characters read."""
    steps: tuple[int, ...]
    """The time step at which each character was emitted (its first step)."""


def ctc_greedy_decode(logits: Tensor, alphabet: tuple[str, ...], blank: int = 0) -> list[Reading]:
    """Greedy CTC decoding: the best class per time step, repeats merged, blanks dropped.

    Args:
        logits: ``(B, T, V)`` scores (logits or probabilities: only the argmax is used).
        alphabet: The ``V`` class names (``PretrainedModel.class_names``).
        blank: The index of the CTC blank.

    Returns:
        One :class:`Reading` per example.

    Example:
        >>> scores = torch.eye(3)[[1, 1, 0, 1, 2, 2]][None]  # a a - a b b
        >>> ctc_greedy_decode(scores, ("-", "a", "b"))
        [Reading(text='aab', steps=(0, 3, 4))]
    """
    if logits.dim() != 3 or logits.shape[-1] != len(alphabet):
        raise ValueError(
            f"`logits` must be (B, T, {len(alphabet)}) for this alphabet, got {tuple(logits.shape)}"
        )
    readings = []
    for best in logits.argmax(-1).tolist():
        chars, steps = [], []
        for step, index in enumerate(best):
            if index != blank and (step == 0 or best[step - 1] != index):
                chars.append(alphabet[index])
                steps.append(step)
        readings.append(Reading("".join(chars), tuple(steps)))
    return readings


PAGE_LINES = ((8, 36), (44, 68), (62, 88), (80, 106), (98, 124), (118, 142), (170, 191))
"""Rows of the seven printed lines of scikit-image's ``page`` (a scanned page of text): the
title, the paragraph's five lines and the code line at the foot of the page, which the page's
edge cuts (the recogniser reads its ``>>>`` as ``ma`` and drops the ``=``)."""


def page_line(index: int = 1) -> np.ndarray:
    """One printed line of scikit-image's ``page`` scan, ``(rows, 384)`` ``uint8`` grey.

    ``index`` counts the lines of ``PAGE_LINES`` from 0 (the title). Line 1 (the
    default) reads "Let us first determine markers of the coins and the".

    Example:
        >>> page_line().shape
        (24, 384)
    """
    from skimage import data

    if not 0 <= index < len(PAGE_LINES):
        raise ValueError(f"`index` must be in 0..{len(PAGE_LINES) - 1}, got {index}")
    top, bottom = PAGE_LINES[index]
    return data.page()[top:bottom]
