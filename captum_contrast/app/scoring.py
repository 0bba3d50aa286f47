"""One method's maps of one batch, scored with every metric asked for.

The masking metrics (AD/AG/AI and the multi-label family) are scored together by
:func:`captum_contrast.metrics.score_masking`, which forwards each input variant they read
once (``s * x``; ``(1 - s) * x`` for the retention metrics) and takes the unmasked class
scores from the evaluation's one hooked forward instead of running it again. Insertion and
Deletion also keep their per-example curves; ``quantus:`` names go through
:mod:`captum_contrast.app.quantus_metrics`; the rest through their own class.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from torch import Tensor, nn

from captum_contrast.app import quantus_metrics
from captum_contrast.app.registry import METRICS
from captum_contrast.metrics import Deletion, Insertion, MaskingMetric, score_masking, trapezoid

CURVE_METRICS = {"insertion": Insertion, "deletion": Deletion}


@dataclass
class Batch:
    """What every method of a batch is scored on: the explained rows as numpy arrays."""

    model: nn.Module
    x: np.ndarray
    """``(R, C, H, W)`` the explained rows' images."""
    y: np.ndarray
    """``(R,)`` the class each row explains."""
    original_scores: np.ndarray
    """``(R, C)`` the rows' unmasked class scores, from the hooked forward."""
    object_masks: np.ndarray | None
    """``(R, 1, H, W)`` the ground-truth masks, when the dataset has them."""
    device: str
    layer: nn.Module
    layer_name: str
    """The layer's dotted name in the model, for Quantus metrics that explain model copies."""


def score_method(
    batch: Batch,
    maps: np.ndarray,
    metrics: Sequence[str],
    explain: Callable[[Any], Callable[..., np.ndarray]],
) -> tuple[dict[str, np.ndarray], dict[str, tuple[np.ndarray, np.ndarray]]]:
    """``(scores, curves)``: per metric ``(R,)`` scores, per curve metric ``(fractions, (R, n))``.

    ``explain(layer)`` gives the method as a Quantus ``explain_func`` for ``layer`` (a
    module, or a dotted name for the metrics that explain copies of the model).
    """
    scores: dict[str, np.ndarray] = {}
    curves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    masking = [m for m in metrics if m in METRICS and issubclass(METRICS[m], MaskingMetric)]
    if masking:
        instances = [METRICS[m](disable_warnings=True) for m in masking]
        shared = score_masking(
            instances,
            batch.model,
            batch.x,
            batch.y,
            maps,
            original_scores=batch.original_scores,
            device=batch.device,
            batch_size=len(batch.x),
        )
        scores.update({m: shared[METRICS[m].short_name] for m in masking})
    for metric in metrics:
        if metric in scores:
            continue
        if metric in CURVE_METRICS:
            curves[metric] = _curves(CURVE_METRICS[metric](disable_warnings=True), batch, maps)
            scores[metric] = 100 * trapezoid(curves[metric][1], curves[metric][0])
        elif metric.startswith(quantus_metrics.PREFIX):
            scores[metric] = quantus_metrics.score(
                quantus_metrics.parse(metric),
                batch.model,
                batch.x,
                batch.y,
                maps,
                explain(batch.layer_name),
                batch.object_masks,
                batch.device,
            )
        else:
            cls = METRICS[metric]
            scores[metric] = np.asarray(
                cls(disable_warnings=True)(
                    model=batch.model,
                    x_batch=batch.x,
                    y_batch=batch.y,
                    a_batch=maps,
                    s_batch=batch.object_masks,
                    explain_func=explain(batch.layer) if cls.needs_explain_func else None,
                    device=batch.device,
                    batch_size=len(batch.x),
                ),
                dtype=np.float64,
            )
    return scores, curves


def _curves(instance: Any, batch: Batch, maps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The metric's own curves through its own Quantus path (one call, its preprocessing)."""
    recorded: list[tuple[np.ndarray, np.ndarray]] = []
    curves = instance.curves

    def evaluate_batch(
        model: Any, x_batch: np.ndarray, y_batch: np.ndarray, a_batch: np.ndarray, **_: Any
    ) -> list[float]:
        fractions, values = curves(model, x_batch, y_batch, a_batch)
        recorded.append((fractions, values))
        return (100 * trapezoid(values, fractions)).tolist()

    instance.evaluate_batch = evaluate_batch
    instance(
        model=batch.model,
        x_batch=batch.x,
        y_batch=batch.y,
        a_batch=maps,
        device=batch.device,
        batch_size=len(batch.x),
    )
    return recorded[0][0], np.concatenate([values for _, values in recorded])


def object_masks(items: list[Any], rows: Tensor, classes: Tensor) -> np.ndarray | None:
    """The ground-truth mask of each explained (image, class): ``(R, 1, H, W)``, or None."""
    import torch

    if not items or len(items[0]) < 3:
        return None
    if any(len(item) < 3 for item in items):
        raise ValueError("every dataset item must carry object masks: (image, label, masks)")
    masks = torch.stack([torch.as_tensor(item[2]) for item in items])  # (B, 1 or C, H, W)
    chosen = masks[rows, 0] if masks.shape[1] == 1 else masks[rows, classes]
    return chosen[:, None].numpy()
