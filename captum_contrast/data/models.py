"""A small GAP + linear CNN for the offline canvases: tests, the demo, benchmarks, tutorials."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class SmallCNN(nn.Module):
    """Three conv blocks, global average pooling and a linear head, so CAM = W . features.

    ``features`` is the conv trunk (it ends in a ReLU; two 2x2 max-pools, so a 32 px input
    gives 8x8 maps), ``classifier`` the ``nn.Linear`` head on the pooled features. This is the
    layout the salience losses (``captum_contrast.training``) and MinMax-CAM expect.

    Args:
        num_classes: Number of outputs.
        in_channels: Channels of the input images.
        width: Channels of the first block; the next two have ``2 * width`` and
            ``4 * width``, which is the number of feature maps seen by the head.
        batch_norm: Put a ``BatchNorm2d`` after every conv. Without it the GAP model can sit
            for hundreds of steps at the label prior before it starts to learn.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import SmallCNN
        >>> model = SmallCNN(num_classes=10, width=4)
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> logits.shape, features.shape  # 4 * width maps at 32 / 4 px
        (torch.Size([2, 10]), torch.Size([2, 16, 8, 8]))
    """

    def __init__(
        self, num_classes: int, in_channels: int = 1, width: int = 16, batch_norm: bool = False
    ) -> None:
        super().__init__()
        for name, value in (
            ("num_classes", num_classes),
            ("in_channels", in_channels),
            ("width", width),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"`{name}` must be a positive int, got {value!r}")
        channels = [in_channels, width, 2 * width, 4 * width]
        layers: list[nn.Module] = []
        for block, (inputs, outputs) in enumerate(zip(channels, channels[1:], strict=False)):
            layers.append(nn.Conv2d(inputs, outputs, 3, padding=1))
            if batch_norm:
                layers.append(nn.BatchNorm2d(outputs))
            layers.append(nn.ReLU())
            if block < 2:
                layers.append(nn.MaxPool2d(2))
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(4 * width, num_classes)

    def forward_with_features(self, inputs: Tensor) -> tuple[Tensor, Tensor]:
        """``(logits (B, C), features (B, K, h, w))`` from one forward pass, for the losses."""
        features = self.features(inputs)
        return self.classifier(torch.flatten(self.pool(features), 1)), features

    def forward(self, inputs: Tensor) -> Tensor:
        return self.forward_with_features(inputs)[0]


def small_cnn(
    num_classes: int, in_channels: int = 1, width: int = 16, batch_norm: bool = False
) -> SmallCNN:
    """A :class:`~captum_contrast.data.models.SmallCNN`: conv trunk ``features`` (ends in ReLU), GAP, ``classifier`` Linear.

    Example:
        >>> import torch
        >>> from captum_contrast.data.models import small_cnn
        >>> model = small_cnn(num_classes=10, width=8)
        >>> logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
        >>> logits.shape, features.shape
        (torch.Size([2, 10]), torch.Size([2, 32, 8, 8]))
    """
    return SmallCNN(num_classes, in_channels=in_channels, width=width, batch_norm=batch_norm)


def fit_classifier(
    model: nn.Module,
    images: Tensor,
    labels: Tensor,
    epochs: int = 5,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = 0,
) -> list[float]:
    """Train ``model`` on whole tensors with Adam; a helper for tests, demos and benchmarks.

    ``(n,)`` integer labels train with cross-entropy; ``(n, C)`` float multi-hot labels
    (:class:`~captum_contrast.data.canvases.MultiDigitCanvases`) with binary cross-entropy on the
    logits. Batches are shuffled by a generator seeded with ``seed``, so the run is
    deterministic given the model's initial weights. The model's train/eval mode is restored.

    Returns:
        The mean training loss of each epoch.

    Example:
        >>> import torch
        >>> from captum_contrast.data.canvases import DigitCanvases
        >>> from captum_contrast.data.models import fit_classifier, small_cnn
        >>> _ = torch.manual_seed(0)
        >>> model = small_cnn(num_classes=10, width=4)
        >>> data = DigitCanvases(n=64, seed=0)
        >>> losses = fit_classifier(model, data.images, data.labels, epochs=2)
        >>> len(losses)
        2
    """
    if images.dim() < 2 or len(images) != len(labels):
        raise ValueError(
            f"`images` and `labels` must have the same length, got {len(images)} and {len(labels)}"
        )
    multi_label = labels.dim() == 2
    if multi_label and not labels.is_floating_point():
        raise TypeError("multi-hot `labels` (n, C) must be floating point")
    if not multi_label and (labels.dim() != 1 or labels.is_floating_point()):
        raise TypeError("`labels` must be (n,) class indices or (n, C) float multi-hot labels")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`{name}` must be a positive int, got {value!r}")
    was_training = model.training
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    order = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    try:
        for _ in range(epochs):
            total = 0.0
            for batch in torch.randperm(len(images), generator=order).split(batch_size):
                logits = model(images[batch])
                if multi_label:
                    loss = F.binary_cross_entropy_with_logits(logits, labels[batch])
                else:
                    _check_labels(labels[batch], logits.shape[1])
                    loss = F.cross_entropy(logits, labels[batch])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            losses.append(total / len(images))
    finally:
        model.train(was_training)
    return losses


def _check_labels(labels: Tensor, num_classes: int) -> None:
    """Class indices within the model's outputs (cross-entropy's own error names no argument)."""
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = labels[(labels < 0) | (labels >= num_classes)].unique().tolist()
        raise ValueError(
            f"`labels` holds class indices {bad[:5]} outside [0, {num_classes - 1}] "
            f"(the model has {num_classes} outputs)"
        )
