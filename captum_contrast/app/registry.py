"""The methods and metrics by name: what ``--method`` and ``--metric`` accept.

Methods are listed here, each with its display title and default ``attribute`` arguments.
Metrics are not: every class in :data:`captum_contrast.metrics.METRICS` declares its
``cli_name``, ``short_name`` and Quantus ``score_direction``, and the table columns are
derived from them, so a new metric is one file in ``metrics/`` and one line in ``METRICS``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from captum.attr import LayerGradCam
from quantus.helpers.enums import ScoreDirection
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from captum_contrast import metrics
from captum_contrast.methods import (
    ContrastGradCAM,
    DifferenceSalience,
    LayerContrastAttribution,
    MinMaxCAM,
    OptiCAM,
)
from captum_contrast.metrics import CAMMetric, explainer, fake_cam
from captum_contrast.transforms import grid_fits, vit_reshape_transform


@dataclass(frozen=True)
class Method:
    """An attribution method: its display title, class (``None``: Fake-CAM) and defaults."""

    title: str
    cls: type | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


METHODS: dict[str, Method] = {
    "grad-cam": Method("Grad-CAM (Captum)", LayerGradCam, {"relu_attributions": True}),
    "contrast-grad-cam": Method("ContrastGradCAM", ContrastGradCAM, {"k": 1}),
    "minmax-cam": Method("MinMaxCAM", MinMaxCAM, {"variant": "minmax"}),
    "d-minmax-cam": Method("D-MinMaxCAM", MinMaxCAM, {"variant": "d-minmax"}),
    "opti-cam": Method("OptiCAM", OptiCAM, {"n_iter": 100}),
    # On two outputs the runner-up is the other class, so this default fits any model.
    "difference-salience": Method(
        "DifferenceSalience", DifferenceSalience, {"contrast": "runner-up"}
    ),
    "fake-cam": Method("Fake-CAM", None),
}
"""CLI name -> method. Every map is ``(B, 1, h, w)``, explained for one class per example."""

METRICS: dict[str, type[CAMMetric]] = {cls.cli_name: cls for cls in metrics.METRICS}
"""CLI name -> metric class, from the metrics' own ``cli_name``."""

SINGLE_LABEL_METRICS = ("average-drop", "average-gain", "average-increase", "deletion", "insertion")
MULTI_LABEL_METRICS = tuple(name for name, cls in METRICS.items() if cls.multilabel)


def column(metric: str) -> str:
    """The table column of a metric: its short name and the arrow of its better direction."""
    cls = METRICS[metric]
    return f"{cls.short_name} {'↑' if cls.score_direction == ScoreDirection.HIGHER else '↓'}"


def check_names(methods: Sequence[str], metric_names: Any = ()) -> None:
    """Raise a ValueError listing unknown method or metric names and the known ones."""
    unknown = [m for m in methods if m not in METHODS] + [
        m for m in metric_names if m not in METRICS
    ]
    if unknown:
        raise ValueError(
            f"unknown methods or metrics {unknown}; methods: {sorted(METHODS)}, "
            f"metrics: {sorted(METRICS)}"
        )


def explain(
    name: str,
    model: nn.Module,
    layer: nn.Module,
    images: Tensor,
    targets: Tensor,
    **overrides: Any,
) -> Tensor:
    """The map of method ``name`` for ``targets`` ``(B,)``, detached on the CPU.

    ``overrides`` replace the method's default ``attribute`` arguments. Fake-CAM returns its
    map at input resolution, the others at layer resolution.
    """
    check_names([name])
    method = METHODS[name]
    if method.cls is None:
        return torch.as_tensor(fake_cam(model, images))
    maps = method.cls(model, layer, **_init_kwargs(name, method, model)).attribute(
        images, target=targets, **{**method.kwargs, **overrides}
    )
    if not grid_fits(tuple(maps.shape[2:]), tuple(images.shape[2:])):
        # Captum's LayerGradCam reads dim 1 as channels whatever the layer's layout.
        raise ValueError(
            f"{method.title} returned {tuple(maps.shape)}, not maps on the layer's grid (a "
            "channels-last or token layer); use contrast-grad-cam, minmax-cam, opti-cam or "
            "difference-salience, which recognise the layout"
        )
    return maps.detach().float().cpu()


def explain_func(
    name: str, model: nn.Module, layer: nn.Module, **overrides: Any
) -> Callable[..., np.ndarray]:
    """Method ``name`` on ``model`` as a Quantus ``explain_func``, through the package's one
    adapter, :func:`captum_contrast.metrics.explainer`."""
    check_names([name])
    method = METHODS[name]
    if method.cls is None:
        return fake_cam
    return explainer(
        method.cls,
        layer=layer,
        init_kwargs=_init_kwargs(name, method, model),
        **{**method.kwargs, **overrides},
    )


def _init_kwargs(name: str, method: Method, model: nn.Module) -> dict[str, Any]:
    """Constructor extras: a torchvision ViT's tokens are laid out on their patch grid."""
    if not any(isinstance(module, VisionTransformer) for module in model.modules()):
        return {}
    if method.cls is None or not issubclass(method.cls, LayerContrastAttribution):
        raise ValueError(
            f"method {name!r} cannot read vision-transformer tokens (Captum's LayerGradCam "
            "has no reshape_transform); use contrast-grad-cam, minmax-cam, opti-cam or "
            "difference-salience, which lay the tokens on their patch grid"
        )
    return {"reshape_transform": vit_reshape_transform}
