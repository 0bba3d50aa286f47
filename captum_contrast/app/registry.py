"""The methods and metrics by name: what ``--method`` and ``--metric`` accept.

Methods are listed here, once: :data:`METHODS` holds each one's display title, class, default
``attribute`` arguments and the default lists it joins; the CLI, the demo, the tests and the
benchmarks all read it, so adding a method is one entry.
Metrics are not: every class in :data:`captum_contrast.metrics.METRICS` declares its
``cli_name``, ``short_name`` and Quantus ``score_direction``, and the table columns are
derived from them, so a new metric is one file in ``metrics/`` and one line in ``METRICS``.
"""

from __future__ import annotations

import inspect
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
    FinerCAM,
    LayerContrastAttribution,
    MinMaxCAM,
    OptiCAM,
)
from captum_contrast.metrics import CAMMetric, explainer, fake_cam, random_cam
from captum_contrast.metrics.explain import layer_maps
from captum_contrast.transforms import grid_fits, vit_reshape_transform


@dataclass(frozen=True)
class Method:
    """An attribution method: everything the CLI, the demo, the tests and the benchmarks need.

    Args:
        title: The display title (tables, figures).
        cls: The attribution class, built as ``cls(model, layer)``; ``None`` for a
            model-free baseline, whose map ``baseline`` gives.
        kwargs: The default ``attribute`` arguments.
        baseline: For ``cls=None``: a Quantus ``explain_func`` ``(model, inputs, targets)``
            returning maps at input resolution (Fake-CAM, the random map).
        uses: The default method lists it joins: ``"canvases"`` (``evaluate`` on the digit
            canvases and the demo's table), ``"image-folder"`` (``evaluate`` on an
            ImageFolder) and ``"figure"`` (the demo's figure).
        signed: Its map is signed (overlays show both signs).
        iterative: It optimises (``n_iter``, ``show_progress``): the CLI's
            ``--opti-iters`` reaches it.
    """

    title: str
    cls: type | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    baseline: Callable[..., np.ndarray] | None = None
    uses: frozenset[str] = frozenset()
    signed: bool = False
    iterative: bool = False

    def run_kwargs(self, iterations: int | None = None, progress: bool = False) -> dict[str, Any]:
        """The per-run ``attribute`` extras: ``n_iter`` and a progress bar, for iterative methods."""
        if not self.iterative:
            return {}
        extras: dict[str, Any] = {} if iterations is None else {"n_iter": iterations}
        return {**extras, "show_progress": True} if progress else extras


_EVERYWHERE = frozenset({"canvases", "image-folder", "figure"})
_TABLES = frozenset({"canvases", "image-folder"})

METHODS: dict[str, Method] = {
    "grad-cam": Method(
        "Grad-CAM (Captum)", LayerGradCam, {"relu_attributions": True}, uses=_EVERYWHERE
    ),
    "contrast-grad-cam": Method("ContrastGradCAM", ContrastGradCAM, {"k": 1}, uses=_EVERYWHERE),
    # torchcam's and the paper's defaults: the 3 classes closest in score, gamma 0.6.
    "finer-cam": Method("FinerCAM", FinerCAM, {"k": 3, "gamma": 0.6}, uses=_TABLES),
    "minmax-cam": Method(
        "MinMaxCAM", MinMaxCAM, {"variant": "minmax"}, uses=frozenset({"canvases", "figure"})
    ),
    "d-minmax-cam": Method("D-MinMaxCAM", MinMaxCAM, {"variant": "d-minmax"}),
    "opti-cam": Method("OptiCAM", OptiCAM, {"n_iter": 100}, uses=_EVERYWHERE, iterative=True),
    # On two outputs the runner-up is the other class, so this default fits any model.
    "difference-salience": Method(
        "DifferenceSalience",
        DifferenceSalience,
        {"contrast": "runner-up"},
        uses=frozenset({"canvases", "figure"}),
        signed=True,
    ),
    "fake-cam": Method("Fake-CAM", None, baseline=fake_cam, uses=_TABLES),
    "random-cam": Method("Random map (seed 0)", None, baseline=random_cam, uses=_TABLES),
}
"""CLI name -> method: the one list of methods. Every map is ``(B, 1, h, w)``, explained
for one class per example; adding a method is one entry here."""


def method_names(use: str | None = None) -> tuple[str, ...]:
    """The methods, in registry order; with ``use``, those in that default list.

    Example:
        >>> from captum_contrast.app.registry import method_names
        >>> method_names("figure")
        ('grad-cam', 'contrast-grad-cam', 'minmax-cam', 'opti-cam', 'difference-salience')
    """
    return tuple(name for name, method in METHODS.items() if use is None or use in method.uses)


def iteration_overrides(iterations: int) -> dict[str, dict[str, Any]]:
    """``{name: {"n_iter": iterations}}`` for every iterative method (``method_kwargs``)."""
    return {name: m.run_kwargs(iterations) for name, m in METHODS.items() if m.iterative}


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
    not_names = [m for m in [*methods, *metric_names] if not isinstance(m, str)]
    if not_names:
        raise TypeError(f"method and metric names are strings, got {not_names!r}")
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
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Tensor:
    """The map of method ``name`` for ``targets`` ``(B,)``, detached on the CPU.

    ``overrides`` replace the method's default ``attribute`` arguments; ``init_kwargs`` are
    constructor extras (see :func:`constructor_kwargs`), e.g. ``{"reshape_transform": f}``
    for a layer the automatic layout cannot read. The baselines (Fake-CAM, the random map)
    return their maps at input resolution, the others at layer resolution.

    Example:
        >>> import torch
        >>> from captum_contrast.app.registry import explain
        >>> model = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 3)).eval()
        >>> same = {"reshape_transform": lambda activations: activations}
        >>> explain("minmax-cam", model, model[1], torch.rand(2, 1, 6, 6), torch.tensor([0, 2]),
        ...         init_kwargs=same).shape
        torch.Size([2, 1, 6, 6])
    """
    check_names([name])
    method = METHODS[name]
    extras = constructor_kwargs(name, model, init_kwargs)
    if method.cls is None:
        assert method.baseline is not None
        options = _baseline_options(name, method.baseline, overrides)
        return torch.as_tensor(method.baseline(model, images, targets, **options))
    maps = layer_maps(
        method.cls, model, layer, images, targets, init_kwargs=extras,
        **{**method.kwargs, **overrides},
    )  # fmt: skip
    layout_aware = issubclass(method.cls, LayerContrastAttribution)
    if not layout_aware and not grid_fits(tuple(maps.shape[2:]), tuple(images.shape[2:])):
        # Captum's LayerGradCam reads dim 1 as channels whatever the layer's layout; this
        # package's methods check the layout themselves, or follow a given reshape_transform.
        raise ValueError(
            f"{method.title} returned {tuple(maps.shape)}, not maps on the layer's grid (a "
            f"channels-last or token layer); use one of {_layout_aware()}, which recognise "
            "the layout"
        )
    return maps.detach().float().cpu()


def explain_func(
    name: str,
    model: nn.Module,
    layer: nn.Module,
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> Callable[..., np.ndarray]:
    """Method ``name`` on ``model`` as a Quantus ``explain_func``, through the package's one
    adapter, :func:`captum_contrast.metrics.explainer`; ``init_kwargs`` as in :func:`explain`."""
    check_names([name])
    method = METHODS[name]
    extras = constructor_kwargs(name, model, init_kwargs)
    if method.cls is None:
        assert method.baseline is not None
        return method.baseline
    return explainer(method.cls, layer=layer, init_kwargs=extras, **{**method.kwargs, **overrides})


def _baseline_options(
    name: str, baseline: Callable[..., np.ndarray], overrides: Mapping[str, Any]
) -> dict[str, Any]:
    """The overrides a model-free baseline takes (``seed`` ...); ``scores`` is dropped, since
    its map reads no output, and any other key is refused rather than ignored."""
    named = {
        parameter.name
        for parameter in inspect.signature(baseline).parameters.values()
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY
    }
    options = {key: value for key, value in overrides.items() if key != "scores"}
    unknown = sorted(set(options) - named)
    if unknown:
        raise ValueError(
            f"method {name!r} (a model-free baseline) takes {sorted(named)}, not {unknown}"
        )
    return options


def constructor_kwargs(
    name: str, model: nn.Module, init_kwargs: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """The constructor extras of method ``name``: the ViT default merged with ``init_kwargs``.

    A torchvision ViT gets :func:`~captum_contrast.transforms.vit_reshape_transform`;
    ``init_kwargs`` (e.g. ``{"reshape_transform": f}``) are added and win over that default.
    Captum's ``LayerGradCam`` takes no ``reshape_transform`` (it reads dim 1 of the layer's
    output as channels), so one given for it is an error rather than dropped; keys the
    class's constructor does not take are errors too. The model-free baselines ignore them.

    Example:
        >>> import torch
        >>> from captum_contrast.app.registry import constructor_kwargs
        >>> model = torch.nn.Linear(2, 2)
        >>> sorted(constructor_kwargs("contrast-grad-cam", model, {"reshape_transform": abs}))
        ['reshape_transform']
        >>> constructor_kwargs("grad-cam", model, {"reshape_transform": abs})  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        ValueError: `init_kwargs['reshape_transform']` is not taken by grad-cam (Captum's ...
    """
    check_names([name])
    method = METHODS[name]
    if init_kwargs is not None and not isinstance(init_kwargs, Mapping):
        raise TypeError(
            f"`init_kwargs` must be a mapping of constructor arguments, e.g. "
            f"{{'reshape_transform': f}}, got {type(init_kwargs).__name__}"
        )
    given = dict(init_kwargs or {})
    if method.cls is None:
        return {}
    if given.get("reshape_transform") is not None and not issubclass(
        method.cls, LayerContrastAttribution
    ):
        raise ValueError(
            f"`init_kwargs['reshape_transform']` is not taken by {name} (Captum's "
            f"{method.cls.__name__} reads dim 1 of the layer's output as channels); use one "
            f"of {_layout_aware()}, or no reshape_transform where the layer is channels-first"
        )
    accepted = set(inspect.signature(method.cls).parameters) - {"forward_func", "layer"}
    unknown = sorted(set(given) - accepted)
    if unknown:
        raise ValueError(
            f"`init_kwargs` has {unknown}, which {method.cls.__name__}'s constructor does not "
            f"take; it takes {sorted(accepted)}"
        )
    vit = {} if "reshape_transform" in given else _init_kwargs(name, method, model)
    return {**vit, **given}


def _init_kwargs(name: str, method: Method, model: nn.Module) -> dict[str, Any]:
    """Constructor extras: a torchvision ViT's tokens are laid out on their patch grid."""
    if not any(isinstance(module, VisionTransformer) for module in model.modules()):
        return {}
    if method.cls is None or not issubclass(method.cls, LayerContrastAttribution):
        raise ValueError(
            f"method {name!r} cannot read vision-transformer tokens (Captum's LayerGradCam "
            f"has no reshape_transform); use one of {_layout_aware()}, which lay the tokens "
            "on their patch grid"
        )
    return {"reshape_transform": vit_reshape_transform}


def _layout_aware() -> str:
    """The methods of this package, which lay any layer out (channels-last, tokens)."""
    return ", ".join(
        name
        for name, m in METHODS.items()
        if m.cls is not None and issubclass(m.cls, LayerContrastAttribution)
    )
