"""RISE's Insertion and Deletion (Petsiuk et al.), the variant Opti-CAM reports, as Quantus metrics."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import (
    CAMMetric,
    check_classes,
    constant_maps,
    finite_maps,
    maps_at_input,
    pixel_ranks,
    probabilities,
)

Substrate = float | str | Callable[[np.ndarray], np.ndarray]

BLUR_KERNEL_SIZE = 11
BLUR_SIGMA = 5.0


def trapezoid(values: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Trapezoidal area under ``values`` (..., n) over ``positions`` (n,), on the last axis.

    Written out because NumPy 2.4 removed the old ``trapz`` and ``np.trapezoid`` is missing
    before NumPy 2.0.
    """
    widths = np.diff(positions)
    return ((values[..., 1:] + values[..., :-1]) / 2 * widths).sum(axis=-1)


def gaussian_blur(
    x_batch: np.ndarray, kernel_size: int = BLUR_KERNEL_SIZE, sigma: float = BLUR_SIGMA
) -> np.ndarray:
    """Per-channel Gaussian blur with zero padding, RISE's insertion substrate (11x11, sigma 5)."""
    offsets = torch.arange(kernel_size, dtype=torch.float64) - (kernel_size - 1) / 2
    line = torch.exp(-(offsets**2) / (2 * sigma**2))
    kernel = torch.outer(line, line) / line.sum() ** 2
    images = torch.as_tensor(x_batch, dtype=torch.float64)
    channels = images.shape[1]
    weight = kernel.expand(channels, 1, kernel_size, kernel_size)
    blurred = F.conv2d(images, weight, padding=kernel_size // 2, groups=channels)
    return blurred.numpy().astype(x_batch.dtype, copy=False)


class _PixelCurve(CAMMetric):
    evaluation_category = EvaluationCategory.FAITHFULNESS
    # Deletion starts from the image and ends at the substrate; insertion the reverse.
    _deletes: bool

    def __init__(self, step: int | None = None, substrate: Substrate = 0.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or step < 1):
            raise ValueError(
                f"`step` must be a positive int (pixels per step) or None, got {step!r}"
            )
        if isinstance(substrate, str) and substrate != "blur":
            raise ValueError(
                f"`substrate` must be a number, 'blur' or a callable, got {substrate!r}"
            )
        self.step = step
        self.substrate = substrate

    def _substrate(self, x_batch: np.ndarray) -> np.ndarray:
        if self.substrate == "blur":
            return gaussian_blur(x_batch)
        if callable(self.substrate):
            filled = np.asarray(self.substrate(x_batch))
            if filled.shape != x_batch.shape:
                raise ValueError(
                    f"`substrate` returned shape {filled.shape}, expected {x_batch.shape}"
                )
            return filled
        return np.full_like(x_batch, float(self.substrate))

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        height, width = x_batch.shape[-2:]
        num_pixels = height * width
        valid = finite_maps(a_batch)
        maps = maps_at_input(np.where(valid[:, None, None, None], a_batch, 0.0), (height, width))
        valid &= ~constant_maps(maps)
        ranks = pixel_ranks(maps).numpy().reshape(-1, 1, height, width)
        substrate = self._substrate(x_batch)
        start, end = (x_batch, substrate) if self._deletes else (substrate, x_batch)
        step = self.step or width
        counts = np.minimum(np.arange(math.ceil(num_pixels / step) + 1) * step, num_pixels)
        rows = np.arange(len(x_batch))
        curve = []
        for count in counts:
            # The `count` most salient pixels have switched from start to end.
            probs = probabilities(model, np.where(ranks < count, end, start), "softmax")
            if count == 0:
                check_classes(y_batch, probs.shape[1])
            curve.append(probs[rows, y_batch])
        areas = 100 * trapezoid(np.stack(curve, axis=1), counts / num_pixels)
        return np.where(valid, areas, np.nan).tolist()


_DOC = """

    Pixels switch in order of decreasing saliency (the map upsampled bilinearly to the input
    when smaller; ties by lower flat pixel index), ``step`` pixels at a time, and the
    softmax probability of ``y_batch`` is read after each step (Opti-CAM reports the
    predicted class, so pass predictions as ``y_batch`` to match). The score is the area
    under that curve against the fraction of pixels switched, trapezoidal rule, in percent.
    Each step is one batched forward of the whole batch. A constant map (all zero included)
    gives no order and scores NaN, as does a non-finite map.

    Args:
        step: Pixels switched per step; ``None`` (default) uses the image width, RISE's
            224 steps of 224 pixels at 224x224.
        substrate: {substrate}
        **kwargs: Quantus's metric options.

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from captum_contrast.metrics import {cls}
        >>> model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2)).eval()
        >>> x_batch = np.random.default_rng(0).random((2, 1, 4, 4)).astype(np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))
        >>> scores = {cls}(step=4)(model, x_batch, np.array([0, 1]), a_batch=maps)
        >>> len(scores), all(0 <= score <= 100 for score in scores)
        (2, True)
"""


class Deletion(_PixelCurve):
    __doc__ = (
        "Deletion (lower is better): the class probability as salient pixels are removed."
        + _DOC.format(
            cls="Deletion",
            substrate="What removed pixels become: a number (default 0, RISE), ``'blur'`` "
            "(Gaussian 11x11, sigma 5)\n            or ``callable(x_batch) -> array``.",
        )
    )
    name = "Deletion"
    score_direction = ScoreDirection.LOWER
    _deletes = True


class Insertion(_PixelCurve):
    __doc__ = (
        "Insertion (higher is better): the class probability as salient pixels are restored."
        + _DOC.format(
            cls="Insertion",
            substrate="The image pixels are inserted into: ``'blur'`` (default, RISE's "
            "Gaussian 11x11, sigma 5,\n            zero padding), a number, or "
            "``callable(x_batch) -> array``.",
        )
    )
    name = "Insertion"
    score_direction = ScoreDirection.HIGHER
    _deletes = False

    def __init__(
        self, step: int | None = None, substrate: Substrate = "blur", **kwargs: Any
    ) -> None:
        super().__init__(step=step, substrate=substrate, **kwargs)
