"""RISE's Insertion and Deletion (Petsiuk et al.), the variant Opti-CAM reports, as Quantus metrics.

Both switch pixels between the image and a substrate in order of decreasing saliency and
integrate the class probability over the fraction switched; :func:`trapezoid` and
:func:`gaussian_blur` (the insertion substrate) are public helpers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from quantus.helpers.enums import EvaluationCategory, ScoreDirection
from quantus.helpers.model.model_interface import ModelInterface

from captum_contrast.metrics._base import CAMMetric
from captum_contrast.metrics._helpers import (
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

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import trapezoid
        >>> float(trapezoid(np.array([0.0, 1.0, 1.0]), np.array([0.0, 0.5, 1.0])))  # 0.25 + 0.5
        0.75
    """
    positions = np.asarray(positions)
    if positions.ndim != 1 or positions.shape[0] != np.shape(values)[-1]:
        raise ValueError(
            f"`positions` must be 1-D with one entry per value on the last axis of `values`, "
            f"got shapes {positions.shape} and {np.shape(values)}"
        )
    widths = np.diff(positions)
    if (widths < 0).any():
        raise ValueError("`positions` must be sorted in increasing order")
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
    """The probability curve of RISE's Insertion and Deletion, one batched forward per step."""

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

    def curves(
        self, model: ModelInterface, x_batch: np.ndarray, y_batch: np.ndarray, a_batch: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """``(fractions (n,), probabilities (B, n))``: the curve of every example.

        ``fractions`` are the shares of pixels switched at each step; an example whose map
        gives no order (constant, or not finite) has a NaN curve. The metric's score is
        ``100 * trapezoid(probabilities, fractions)``.
        """
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
            probs = probabilities(
                model, np.where(ranks < count, end, start), "softmax", self.batch_scores
            )
            if count == 0:
                check_classes(y_batch, probs.shape[1])
            curve.append(probs[rows, y_batch])
        curves = np.stack(curve, axis=1)
        return counts / num_pixels, np.where(valid[:, None], curves, np.nan)

    def evaluate_batch(  # type: ignore[override]
        self,
        model: ModelInterface,
        x_batch: np.ndarray,
        y_batch: np.ndarray,
        a_batch: np.ndarray,
        **kwargs: Any,
    ) -> list[float]:
        fractions, curves = self.curves(model, x_batch, y_batch, a_batch)
        return (100 * trapezoid(curves, fractions)).tolist()


class Deletion(_PixelCurve):
    r"""Deletion (RISE): area under the class probability as the most salient pixels are removed.

    Petsiuk, Das and Saenko's causal metric ("RISE: Randomized Input Sampling for
    Explanation of Black-box Models", BMVC 2018), in the variant Opti-CAM reports (Zhang et
    al., 2024, Sec. 5.3.2): pixels are removed in order of decreasing saliency, and a map
    that ranks the evidence first makes the class probability collapse early, leaving a
    small area under the curve. With ``x^{(t)}`` the image whose fraction ``t`` of most
    salient pixels are set to the ``substrate``:

    .. math::

        \mathrm{Deletion}_i = 100 \int_0^1 \mathrm{softmax}(f(x_i^{(t)}))_c \, dt

    with ``c`` = ``y_batch`` (Opti-CAM uses the predicted class, so pass predictions to
    match), computed with the trapezoidal rule at ``t = 0, step / HW, 2 step / HW, ..., 1``.
    Pixels are ranked on the map upsampled bilinearly to the input when it is smaller,
    ties broken by the lower flat pixel index, and switch in every channel at once. Each
    step is one batched forward of the whole batch (``ceil(HW / step) + 1`` forwards).

    Scores: one per example, in percent, in [0, 100]; lower is better
    (``ScoreDirection.LOWER``).

    Degenerate maps: a constant map (all zero included) gives no order and scores NaN, as
    does a map holding NaN or infinity; the rest of the batch is unaffected.

    References:
        Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
        Black-box Models", BMVC 2018. Zhang et al., "Opti-CAM: Optimizing saliency maps for
        interpretability", CVIU 2024, Sec. 5.3.2.

    Args:
        step: Pixels removed per step, a positive int; ``None`` (default) uses the image
            width, RISE's 224 steps of 224 pixels at 224x224.
        substrate: What removed pixels become: a number (default 0, RISE), ``"blur"``
            (Gaussian 11x11, sigma 5, zero padding, see ``gaussian_blur``) or
            ``callable(x_batch) -> array`` of the shape of ``x_batch``.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import Deletion
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> scores = Deletion()(model, x, np.array([0, 1]), a_batch=maps)  # 8 steps of 8 pixels
        >>> np.round(scores, 2).tolist()
        [34.31, 31.45]
    """

    name = "Deletion"
    score_direction = ScoreDirection.LOWER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "deletion"
    short_name = "Deletion"
    _deletes = True


class Insertion(_PixelCurve):
    r"""Insertion (RISE): area under the class probability as the most salient pixels come back.

    Petsiuk, Das and Saenko's causal metric ("RISE: Randomized Input Sampling for
    Explanation of Black-box Models", BMVC 2018), in the variant Opti-CAM reports (Zhang et
    al., 2024, Sec. 5.3.2): starting from a blurred image, pixels of the image are inserted
    in order of decreasing saliency, and a map that ranks the evidence first makes the
    class probability rise early, giving a large area under the curve. With ``x^{(t)}``
    the ``substrate`` whose fraction ``t`` of most salient pixels are the image's:

    .. math::

        \mathrm{Insertion}_i = 100 \int_0^1 \mathrm{softmax}(f(x_i^{(t)}))_c \, dt

    with ``c`` = ``y_batch`` (Opti-CAM uses the predicted class, so pass predictions to
    match), computed with the trapezoidal rule at ``t = 0, step / HW, 2 step / HW, ..., 1``.
    Pixels are ranked on the map upsampled bilinearly to the input when it is smaller,
    ties broken by the lower flat pixel index, and switch in every channel at once. Each
    step is one batched forward of the whole batch (``ceil(HW / step) + 1`` forwards).

    Scores: one per example, in percent, in [0, 100]; higher is better
    (``ScoreDirection.HIGHER``).

    Degenerate maps: a constant map (all zero included) gives no order and scores NaN, as
    does a map holding NaN or infinity; the rest of the batch is unaffected.

    References:
        Petsiuk, Das and Saenko, "RISE: Randomized Input Sampling for Explanation of
        Black-box Models", BMVC 2018. Zhang et al., "Opti-CAM: Optimizing saliency maps for
        interpretability", CVIU 2024, Sec. 5.3.2.

    Args:
        step: Pixels inserted per step, a positive int; ``None`` (default) uses the image
            width, RISE's 224 steps of 224 pixels at 224x224.
        substrate: The image pixels are inserted into: ``"blur"`` (default, RISE's
            Gaussian 11x11, sigma 5, zero padding, see ``gaussian_blur``), a number, or
            ``callable(x_batch) -> array`` of the shape of ``x_batch``.
        **kwargs: Quantus's metric options (``return_aggregate``, ``aggregate_func``, ...),
            see :class:`CAMMetric`.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast.metrics import Insertion
        >>> _ = torch.manual_seed(0)
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.Flatten(), torch.nn.Linear(4 * 8 * 8, 3)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> maps = np.random.default_rng(1).random((2, 1, 4, 4))  # at layer resolution
        >>> scores = Insertion()(model, x, np.array([0, 1]), a_batch=maps)  # 8 steps of 8 pixels
        >>> np.round(scores, 2).tolist()
        [34.97, 32.05]
    """

    name = "Insertion"
    score_direction = ScoreDirection.HIGHER
    evaluation_category = EvaluationCategory.FAITHFULNESS
    cli_name = "insertion"
    short_name = "Insertion"
    _deletes = False

    def __init__(
        self, step: int | None = None, substrate: Substrate = "blur", **kwargs: Any
    ) -> None:
        super().__init__(step=step, substrate=substrate, **kwargs)
