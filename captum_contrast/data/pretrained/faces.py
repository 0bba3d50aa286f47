"""MTCNN's output network ONet (Zhang et al., 2016) as a face / non-face classifier.

``facenet-pytorch`` ships it as a torch state dict (``data/onet.pt``, MIT); its face head is
vendored under ``weights/mtcnn_onet.pt``: a real binary classifier on 48x48 RGB crops, the
binary network for Difference Salience.
"""

from __future__ import annotations

import numpy as np
from torch import Tensor, nn

from captum_contrast.data.pretrained._common import (
    PretrainedModel,
    as_float_image,
    load_vendored,
    resize,
)

FACE_CLASSES = ("non-face", "face")


def face_preprocess(image: np.ndarray | Tensor) -> Tensor:
    """A crop -> ONet's ``(3, 48, 48)`` input, ``(x - 127.5) / 128`` on 0-255 values.

    Example:
        >>> face_preprocess(np.zeros((60, 60, 3), np.uint8)).shape
        torch.Size([3, 48, 48])
    """
    rgb = as_float_image(image).expand(3, -1, -1)
    return (resize(rgb, (48, 48)) * 255.0 - 127.5) / 128.0


# --- MTCNN's ONet ---------------------------------------------------------------------------


class ONet(nn.Module):
    """MTCNN's output network reduced to its face / non-face head (logits, face = index 1).

    Four conv + PReLU stages (48 px in: 46, 23, 21, 10, 8, 4, then 3x3 after ``conv4``), a
    dense layer and ``dense6_1``. Parameter names are ``facenet-pytorch``'s, so its state dict
    loads once the box and landmark heads are dropped.

    Example:
        >>> import torch
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
        model=load_vendored(ONet(), "mtcnn_onet.pt"),
        preprocess=face_preprocess,
        class_names=FACE_CLASSES,
        layer="prelu3",
        source="facenet-pytorch 2.6.0, data/onet.pt (MIT); see weights/LICENSE-facenet-pytorch",
    )


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
