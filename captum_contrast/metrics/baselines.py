"""Sanity baselines and checks: a seeded random map, and Quantus's parameter randomisation tests.

Two things every saliency table needs beside its methods. The **random map**
(:func:`random_cam`) is the floor a method must beat on every metric; with Fake-CAM (a
map that keeps the whole image, :func:`~captum_contrast.metrics.fake_cam`) it shows which
metrics a map can win without looking at the model. The **model parameter randomisation
tests** (Adebayo et al. 2018; Quantus's ``MPRT`` and ``EfficientMPRT``,
:func:`randomisation_scores`) ask whether a map depends on the weights at all: a map that
stays the same when the model's weights are re-drawn explains nothing about the model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

DEFAULT_CELLS = 7


def random_cam(
    model: nn.Module | None,
    inputs: np.ndarray | Tensor,
    targets: Any = None,
    *,
    seed: int = 0,
    cells: int = DEFAULT_CELLS,
    **kwargs: Any,
) -> np.ndarray:
    """A seeded random map as a Quantus ``explain_func``: uniform noise on a coarse grid.

    Each example's map is ``U(0, 1)`` noise on a ``cells x cells`` grid, upsampled
    bilinearly to the input, so it has the blob scale of a CAM at a 7x7 layer. The draw
    depends only on ``seed`` and the batch shape: the model and targets are ignored, so a
    randomised model gets the same maps, and the map fails every model parameter
    randomisation test by construction (correlation 1), which is what a baseline must do.
    (pytorch-grad-cam's ``RandomCAM`` instead draws random channel weights for the layer's
    activations, a map that still moves with the weights.) Quantus keywords are ignored.

    Returns:
        ``(B, 1, H, W)`` float32 maps in ``[0, 1]`` at the resolution of channel-first
        ``inputs``.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import random_cam
        >>> maps = random_cam(None, np.zeros((2, 3, 16, 16)), seed=1)
        >>> maps.shape, bool((maps >= 0).all() and (maps <= 1).all())
        ((2, 1, 16, 16), True)
        >>> bool((random_cam(None, np.zeros((2, 3, 16, 16)), seed=1) == maps).all())
        True
    """
    shape = tuple(inputs.shape)
    if len(shape) < 3:
        raise ValueError(f"`inputs` must be channel-first (B, C, *grid), got shape {shape}")
    if isinstance(cells, bool) or not isinstance(cells, int) or cells < 1:
        raise ValueError(f"`cells` must be a positive int, got {cells!r}")
    grid = shape[2:]
    if len(grid) > 3:
        raise ValueError(f"`inputs` must have 1-3 grid axes, got shape {shape}")
    generator = torch.Generator().manual_seed(int(seed))
    coarse = torch.rand((shape[0], 1, *(min(cells, size) for size in grid)), generator=generator)
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[len(grid)]
    maps = F.interpolate(coarse, size=grid, mode=mode, align_corners=False)
    return maps.clamp(0, 1).numpy().astype(np.float32)


def randomisation_scores(
    model: nn.Module,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    explain_func: Callable[..., np.ndarray],
    *,
    seed: int = 42,
    batch_size: int = 64,
) -> dict[str, np.ndarray]:
    """Quantus's MPRT and eMPRT of one method, per example: does the map depend on the weights?

    Both compare the map of the trained model with the map of the same model with *every*
    layer's parameters re-drawn (``reset_parameters``, seeded):

    - ``"mprt"``: Spearman rank correlation of the two maps (Quantus ``MPRT``, top-down
      cascade, last correlation; maps made absolute and normalised as Quantus does;
      ``rank_correlation``). Lower is better: a map that ignores the weights scores 1.
    - ``"emprt"``: the relative rise of the map's discrete entropy, ``(H_random - H) / H``
      (Quantus ``EfficientMPRT``). Higher is better: a faithful map should become noisier
      when the weights carry no information; a map that ignores the weights scores 0.

    The model is never changed (Quantus randomises a deep copy), so ``explain_func`` must
    name its layer in a way that resolves on a copy: build it with
    :func:`~captum_contrast.metrics.explainer` and a dotted layer name.

    Returns:
        ``{"mprt": (B,), "emprt": (B,)}`` float arrays; NaN where Quantus could not compare
        (e.g. a map that is zero everywhere).

    Example:
        >>> import numpy as np, torch
        >>> from captum.attr import LayerGradCam
        >>> from captum_contrast.metrics import explainer, random_cam, randomisation_scores
        >>> torch.manual_seed(0)  # doctest: +ELLIPSIS
        <torch._C.Generator object at ...>
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 4)).eval()
        >>> x = np.random.default_rng(0).random((4, 3, 12, 12), dtype=np.float32)
        >>> y = np.array([0, 1, 2, 3])
        >>> randomisation_scores(model, x, y, random_cam)["mprt"].round(3).tolist()
        [1.0, 1.0, 1.0, 1.0]
        >>> grad_cam = explainer(LayerGradCam, layer="1", relu_attributions=True)
        >>> bool(np.nanmean(randomisation_scores(model, x, y, grad_cam)["mprt"]) < 0.9)
        True
    """
    import quantus

    common = {"disable_warnings": True, "display_progressbar": False, "seed": seed}
    inputs = {
        "model": model,
        "x_batch": np.asarray(x_batch),
        "y_batch": np.asarray(y_batch),
        "a_batch": None,
        "explain_func": explain_func,
        "batch_size": batch_size,
    }
    mprt = quantus.MPRT(
        similarity_func=rank_correlation, return_last_correlation=True, skip_layers=True, **common
    )
    emprt = quantus.EfficientMPRT(similarity_func=rank_correlation, **common)
    with np.errstate(all="ignore"), _restored(model):
        return {
            "mprt": np.asarray(mprt(**inputs), dtype=np.float64),
            "emprt": np.asarray(emprt(**inputs), dtype=np.float64),
        }


def rank_correlation(a: np.ndarray, b: np.ndarray, batched: bool = False, **_: Any) -> Any:
    """Spearman's rank correlation of ``a`` and ``b``, row by row when ``batched``.

    Quantus's own batched Spearman breaks on a batch of one and returns a single NaN for the
    whole batch when one row is constant (a Grad-CAM map that the ReLU zeroes); here each
    row has its own value, and a row with a constant side is NaN (nothing to rank).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics.baselines import rank_correlation
        >>> a = np.array([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
        >>> rank_correlation(a, np.array([[3.0, 2.0, 1.0], [1.0, 5.0, 9.0], [1.0, 2.0, 3.0]]), batched=True)
        array([-1.,  1., nan])
    """
    from scipy.stats import rankdata

    rows_a, rows_b = np.atleast_2d(a).astype(np.float64), np.atleast_2d(b).astype(np.float64)
    ranks_a = rankdata(rows_a.reshape(len(rows_a), -1), axis=1)
    ranks_b = rankdata(rows_b.reshape(len(rows_b), -1), axis=1)
    centred_a = ranks_a - ranks_a.mean(axis=1, keepdims=True)
    centred_b = ranks_b - ranks_b.mean(axis=1, keepdims=True)
    norms = np.sqrt((centred_a**2).sum(axis=1) * (centred_b**2).sum(axis=1))
    with np.errstate(all="ignore"):
        correlation = (centred_a * centred_b).sum(axis=1) / norms
    correlation = np.where(norms == 0, np.nan, correlation)
    return correlation if batched else float(correlation[0])


class _restored:
    """Quantus puts the model in eval mode; this puts each module's mode back."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        self.modes = [module.training for module in self.model.modules()]

    def __exit__(self, *exc: object) -> None:
        for module, mode in zip(self.model.modules(), self.modes, strict=True):
            module.training = mode
