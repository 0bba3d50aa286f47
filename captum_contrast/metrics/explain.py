"""Quantus explain functions: an adapter for CAM classes, and the Fake-CAM baseline."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from captum_contrast._model import explained_in_eval_mode, model_device
from captum_contrast._validation import class_indices
from captum_contrast.scores import scored_forward

LayerSpec: TypeAlias = nn.Module | str | Callable[[nn.Module], nn.Module]
ExplainFunc = Callable[..., np.ndarray]


def _resolve_layer(model: nn.Module, layer: LayerSpec) -> nn.Module:
    if isinstance(layer, str):
        try:
            return model.get_submodule(layer)
        except AttributeError as error:
            raise ValueError(
                f"`layer`={layer!r} names no submodule of {type(model).__name__}"
            ) from error
    if isinstance(layer, nn.Module):
        if not any(module is layer for module in model.modules()):
            raise ValueError(
                f"`layer` ({type(layer).__name__}) is not a submodule of the model Quantus "
                "passed (metrics such as MPRT explain copies of the model); give the layer "
                "as a dotted name, e.g. 'layer4', or as a function model -> module"
            )
        return layer
    if callable(layer):
        resolved = layer(model)
        if not isinstance(resolved, nn.Module):
            raise TypeError(f"`layer` returned {type(resolved).__name__}, expected a module")
        return resolved
    raise TypeError(
        f"`layer` must be a module, a dotted name or a function model -> module, "
        f"got {type(layer).__name__}"
    )


def explainer(
    method_class: type,
    layer: LayerSpec,
    *,
    init_kwargs: dict[str, Any] | None = None,
    **attribute_kwargs: Any,
) -> ExplainFunc:
    """Turn a layer attribution class into a Quantus ``explain_func``.

    The class is built as ``method_class(model, layer, **init_kwargs)`` for the model
    Quantus passes, and ``attribute(inputs, target=targets, **attribute_kwargs)`` is
    called; every class of this package and Captum's ``LayerGradCam`` fit. Maps come back
    as a ``(B, 1, H, W)`` float32 array, upsampled bilinearly (``align_corners=False``) to
    the input. The model is neither moved nor switched to another mode.

    Args:
        method_class: E.g. :class:`captum_contrast.ContrastGradCAM` or
            ``captum.attr.LayerGradCam``.
        layer: The layer to explain: a dotted name resolved on the model (``"layer4"``),
            a function ``model -> module``, or a module. Prefer the first two: metrics
            such as MPRT explain copies of the model, which a module object does not
            belong to.
        init_kwargs: Extra constructor arguments, e.g. ``{"reshape_transform": ...}``.
        **attribute_kwargs: Passed to ``attribute`` on every call, e.g. ``k=2`` or
            ``relu_attributions=True`` for ``LayerGradCam``.

    Returns:
        ``explain_func(model, inputs, targets, device=None, **kwargs) -> np.ndarray``.
        ``inputs`` are channel-first images (array or tensor), ``targets`` one class per
        example: integers (a float or bool array raises a ValueError naming
        ``targets``, see :func:`captum_contrast._validation.class_indices`). ``device`` (Quantus's) sets where the inputs go; by default the model's
        device. Quantus's ``method`` keyword is ignored; other keywords reach ``attribute``
        and override ``attribute_kwargs``.

    Example:
        >>> import numpy as np, torch
        >>> from captum.attr import LayerGradCam
        >>> from captum_contrast import ContrastGradCAM
        >>> from captum_contrast.metrics import explainer
        >>> model = torch.nn.Sequential(
        ...     torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(),
        ...     torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 5)).eval()
        >>> x = np.random.default_rng(0).random((2, 3, 8, 8), dtype=np.float32)
        >>> case = explainer(ContrastGradCAM, layer="1", k=2)
        >>> case(model, x, np.array([0, 3])).shape
        (2, 1, 8, 8)
        >>> explainer(LayerGradCam, layer=lambda m: m[1])(model, x, np.array([0, 3])).dtype
        dtype('float32')
    """
    if not isinstance(method_class, type) or not hasattr(method_class, "attribute"):
        raise TypeError(
            f"`method_class` must be an attribution class with an `attribute` method, "
            f"got {method_class!r}"
        )
    constructor_kwargs = dict(init_kwargs or {})
    fixed_kwargs = dict(attribute_kwargs)

    def explain_func(
        model: nn.Module,
        inputs: np.ndarray | Tensor,
        targets: np.ndarray | Tensor | int | None,
        device: str | torch.device | None = None,
        **kwargs: Any,
    ) -> np.ndarray:
        kwargs.pop("method", None)  # quantus.evaluate adds the method's name
        images = _as_input_tensor(model, inputs, device)
        target = _as_target(targets, images.device)
        attributions = layer_maps(
            method_class,
            model,
            _resolve_layer(model, layer),
            images,
            target,
            init_kwargs=constructor_kwargs,
            **{**fixed_kwargs, **kwargs},
        )
        if attributions.shape[-2:] != images.shape[-2:]:
            attributions = F.interpolate(
                attributions, size=images.shape[-2:], mode="bilinear", align_corners=False
            )
        return attributions.detach().float().cpu().numpy()

    explain_func.__name__ = f"explain_{method_class.__name__}"
    return explain_func


def layer_maps(
    method_class: type,
    model: Any,
    layer: nn.Module,
    images: Tensor,
    target: Any,
    *,
    init_kwargs: Mapping[str, Any] | None = None,
    **kwargs: Any,
) -> Tensor:
    """``method_class(model, layer, **init_kwargs).attribute(images, target, **kwargs)``,
    checked to be one ``(B, 1, h, w)`` map per image.

    The one place :func:`explainer` and ``app.registry.explain`` run a class: ``scores``
    reaches it as :func:`forward_reading_scores` says, and the call runs in eval mode (the
    package's methods switch themselves; Captum's ``LayerGradCam`` does not).
    """
    forward_func, call_kwargs = forward_reading_scores(method_class, model, kwargs)
    method = method_class(forward_func, layer, **dict(init_kwargs or {}))
    owner = model if isinstance(model, nn.Module) else None
    with explained_in_eval_mode(owner, f"{method_class.__name__}.attribute"):
        maps = method.attribute(images, target=target, **call_kwargs)
    batch = images.shape[0]
    if not isinstance(maps, Tensor) or maps.dim() != 4 or maps.shape[:2] != (batch, 1):
        shape = tuple(maps.shape) if isinstance(maps, Tensor) else type(maps).__name__
        raise ValueError(
            f"{method_class.__name__}.attribute must return one (B, 1, h, w) map per image "
            f"(do not pass return_weights; check the layer and any reshape_transform, which "
            f"must return (B, K, h, w)), got {shape} for {batch} images"
        )
    return maps


def forward_reading_scores(
    method_class: type, model: nn.Module, kwargs: dict[str, Any]
) -> tuple[Any, dict[str, Any]]:
    """The forward to build ``method_class`` on, and the ``attribute`` keywords to call it with.

    The package's methods read ``kwargs["scores"]`` themselves; a class whose ``attribute``
    takes no ``scores`` (Captum's ``LayerGradCam``) is built on
    :func:`~captum_contrast.scores.scored_forward` instead, which gives the same map.
    ``scores=None`` means :class:`~captum_contrast.scores.ClassScores`.
    """
    kwargs = dict(kwargs)
    scores = kwargs.pop("scores", None)
    attribute: Any = getattr(method_class, "attribute", None)
    if attribute is not None and "scores" in inspect.signature(attribute).parameters:
        return model, kwargs if scores is None else {**kwargs, "scores": scores}
    # Even with no scores: the default ClassScores() checks the output is (B, C) logits and
    # says what to pass otherwise, where Captum would fail on an assertion.
    return scored_forward(model, scores), kwargs


def _as_input_tensor(
    model: nn.Module, inputs: np.ndarray | Tensor, device: str | torch.device | None
) -> Tensor:
    target_device = torch.device(device) if device is not None else model_device(model)
    parameters = model.parameters() if isinstance(model, nn.Module) else iter(())
    dtype = next((p.dtype for p in parameters if p.is_floating_point()), torch.float32)
    images = torch.as_tensor(np.asarray(inputs) if not isinstance(inputs, Tensor) else inputs)
    if images.dim() != 4:
        raise ValueError(
            f"`inputs` must be channel-first images (B, C, H, W), got {tuple(images.shape)}"
        )
    return images.to(device=target_device, dtype=dtype)


def _as_target(
    targets: np.ndarray | Tensor | int | None, device: torch.device
) -> Tensor | int | None:
    """Quantus's ``targets`` checked as class indices: floats and booleans are refused."""
    if targets is None:
        return None
    indices = class_indices(targets, "targets", device)
    return int(indices) if indices.dim() == 0 else indices.reshape(-1)


def fake_cam(
    model: nn.Module | None,
    inputs: np.ndarray | Tensor,
    targets: Any = None,
    **kwargs: Any,
) -> np.ndarray:
    """The Fake-CAM baseline as a Quantus ``explain_func``: ones, with the top-left pixel 0.

    A map that keeps almost the whole image scores near-zero Average Drop and Average Gain,
    which is why Opti-CAM pairs AD with AG rather than with AI. The model and targets are
    ignored.

    Returns:
        ``(B, 1, H, W)`` float32 maps at the resolution of channel-first ``inputs``.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.metrics import fake_cam
        >>> fake_cam(None, np.zeros((1, 3, 2, 3)))[0, 0].tolist()
        [[0.0, 1.0, 1.0], [1.0, 1.0, 1.0]]
    """
    shape = tuple(inputs.shape)
    if len(shape) != 4:
        raise ValueError(f"`inputs` must be channel-first images (B, C, H, W), got {shape}")
    maps = np.ones((shape[0], 1, shape[2], shape[3]), dtype=np.float32)
    maps[:, :, 0, 0] = 0.0
    return maps
