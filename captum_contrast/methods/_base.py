"""The base of every method: a Captum layer attribution that computes through the engine."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import GradientAttribution, LayerAttribution
from torch import Tensor, nn

from captum_contrast._engine import (
    LayerForward,
    ReshapeTransform,
    forward_layer,
    weighted_activations,
)
from captum_contrast._model import check_layer, explained_in_eval_mode, owning_module
from captum_contrast._targets import check_scores
from captum_contrast.scores import ScoresLike


@dataclass
class GradientPlan:
    """What a gradient method asks of one forward: ``T`` scores and how to finish the map.

    ``weights`` ``(T, B, C)`` are the score weights handed to
    :meth:`~captum_contrast._engine.LayerForward.gradients` (``None``: the method needs no
    gradient, e.g. MinMax-CAM's CAM form); ``finish`` turns their gradients
    ``(T, B, K, *grid)`` (or ``None``) into what ``attribute`` returns. Several methods'
    plans on one forward share one batched backward (:func:`run_plans`).

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import ContrastGradCAM
        >>> from captum_contrast._engine import forward_layer
        >>> model = resnet18(weights=None, num_classes=4).eval()
        >>> forward = forward_layer(model, model.layer4, torch.rand(2, 3, 64, 64))
        >>> plan = ContrastGradCAM(model, model.layer4).plan(forward, target=1, k=2)
        >>> plan.weights.shape      # (T=2 scores, B=2, C=4): the target and the contrast mean
        torch.Size([2, 2, 4])
        >>> plan.finish(forward.gradients(plan.weights)).shape
        torch.Size([2, 1, 2, 2])
    """

    weights: Tensor | None
    finish: Callable[[Tensor | None], Any]


def run_plans(forward: LayerForward, plans: Sequence[GradientPlan]) -> list[Any]:
    """Finish every plan from one batched backward of all their scores together.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import ContrastGradCAM, DifferenceSalience
        >>> from captum_contrast._engine import forward_layer
        >>> from captum_contrast.methods import run_plans
        >>> model = resnet18(weights=None, num_classes=4).eval()
        >>> x = torch.rand(2, 3, 64, 64)
        >>> case, diff = ContrastGradCAM(model, model.layer4), DifferenceSalience(model, model.layer4)
        >>> forward = forward_layer(model, model.layer4, x)       # one forward ...
        >>> maps = run_plans(forward, [case.plan(forward, 1), diff.plan(forward, 1, contrast=2)])
        >>> torch.allclose(maps[0], case.attribute(x, 1), atol=1e-6)   # ... one backward
        True
    """
    needed = [plan.weights for plan in plans if plan.weights is not None]
    gradients = forward.gradients(torch.cat(needed)) if needed else None
    results, start = [], 0
    for plan in plans:
        if plan.weights is None:
            results.append(plan.finish(None))
            continue
        stop = start + plan.weights.shape[0]
        assert gradients is not None
        results.append(plan.finish(gradients[start:stop]))
        start = stop
    return results


class LayerContrastAttribution(LayerAttribution, GradientAttribution):
    """Base of the package's CAM methods; a sibling of Captum's ``LayerGradCam``.

    Every subclass has the constructor ``(forward_func, layer, device_ids=None, *,
    reshape_transform=None)`` and the method
    ``attribute(inputs, target=None, additional_forward_args=None,
    attribute_to_layer_input=False, *, <method-specific keywords>)``: Captum's shared
    arguments come first and in Captum's order, so a positional call means what it means
    for ``LayerGradCam``; everything specific to a method is keyword-only. Maps are
    ``(B, 1, *grid)`` at layer resolution and raw scale, as ``LayerGradCam`` returns them.

    ``relu_attributions`` defaults follow each paper, and so differ by method:
    ``True`` for :class:`ContrastGradCAM` and :class:`MinMaxCAM`, whose papers ReLU the map
    as Grad-CAM does; ``False`` for :class:`DifferenceSalience`, whose map is signed (the
    true class against the other); OptiCAM has none, since its map is a convex combination
    of the activations. Captum's ``LayerGradCam`` defaults to ``False``.

    The model is left as it was found, whatever the call does or raises: parameters and
    buffers bit for bit, hooks, ``requires_grad`` flags, ``.grad`` and modes. A model in
    ``train()`` mode is explained in eval mode, with a warning, and its flags are restored
    afterwards: a training-mode forward would update BatchNorm's running statistics and
    draw new dropout masks. The modules of ``forward_func`` (a module or a bound method of
    one) are switched up front, and every module the call runs, when ``forward_func`` hides
    the model (``lambda x: model(x)``, ``functools.partial(model)``); see
    ``docs/guarantees.md`` for exactly what is protected. Every public method of a subclass that runs the model (those named
    in ``model_calling_methods``: ``attribute``, and e.g. ``ContrastGradCAM.cosine``) gets
    this through ``__init_subclass__``. Calls from several threads on one shared model are safe and give
    the maps sequential calls give.

    Every ``attribute`` takes a keyword-only ``scores`` (:mod:`captum_contrast.scores`):
    how the model's output is read as ``(B, C)`` class scores (a region of a segmentation,
    a step of a sequence, a detection, a similarity). ``None`` reads ``(B, C)`` logits.
    Given ``scores``, the map is the one computed for ``lambda *x: scores(model(*x))``.
    The gradient methods also have ``plan(forward, target, ...)``: the scores they need
    from a forward, so that several methods share one forward and one backward
    (:func:`captum_contrast.methods.run_plans`).

    Args:
        forward_func: The model, or any function of the inputs; its output is read by
            ``scores`` (``(batch, classes)`` logits by default).
        layer: The module whose output (or input) is explained: maps ``(B, K, *grid)``
            with 1-3 grid axes, channels-last maps or transformer tokens (recognised from
            the shape, see :func:`captum_contrast.transforms.infer_layout`).
        device_ids: Device IDs, needed only if ``forward_func`` applies a ``DataParallel``
            model, as in Captum.
        reshape_transform: Turns the layer's tensor into ``(B, K, *grid)`` when the
            automatic layout cannot tell (see :func:`captum_contrast.tokens_transform`,
            :func:`captum_contrast.channels_last_transform`). It must only select and
            rearrange elements, because it is applied to the gradients as well.

    Example:
        >>> import torch
        >>> from torch import nn
        >>> from captum.attr import LayerGradCam
        >>> from captum_contrast import ContrastGradCAM, LayerContrastAttribution, OptiCAM
        >>> issubclass(ContrastGradCAM, LayerContrastAttribution), issubclass(OptiCAM, LayerContrastAttribution)
        (True, True)
        >>> model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
        >>> x = torch.rand(2, 1, 8, 8)
        >>> ContrastGradCAM(model, model[0]).attribute(x, 0).shape == LayerGradCam(model, model[0]).attribute(x, 0).shape
        True
    """

    model_calling_methods: ClassVar[tuple[str, ...]] = ("attribute",)
    """The methods that run the model, each wrapped in the eval-mode switch."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in cls.model_calling_methods:
            if name in cls.__dict__:
                setattr(cls, name, _in_eval_mode(cls.__dict__[name]))

    def __init__(
        self,
        forward_func: Callable[..., Any],
        layer: nn.Module,
        device_ids: list[int] | None = None,
        *,
        reshape_transform: ReshapeTransform | None = None,
    ) -> None:
        check_constructor(forward_func, layer, device_ids, reshape_transform)
        check_layer(forward_func, layer)
        LayerAttribution.__init__(self, forward_func, layer, device_ids)
        GradientAttribution.__init__(self, forward_func)
        self.reshape_transform = reshape_transform

    def _forward(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        additional_forward_args: Any,
        attribute_to_layer_input: bool,
        keep_graph: bool = True,
        scores: ScoresLike = None,
    ) -> LayerForward:
        """One forward of the model, read at this method's layer (see :mod:`._engine`)."""
        forward = forward_layer(
            self.forward_func,
            self.layer,
            inputs,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=self.device_ids,
            reshape_transform=self.reshape_transform,
            keep_graph=keep_graph,
            scores=scores,
        )
        check_scores(forward.outputs)
        return forward

    def _attribute_by_plan(
        self,
        inputs: Tensor | tuple[Tensor, ...],
        additional_forward_args: Any,
        attribute_to_layer_input: bool,
        scores: ScoresLike,
        plan: Callable[[LayerForward], GradientPlan],
        keep_graph: bool = True,
    ) -> Any:
        """The straight line of every gradient method: forward, plan, one backward, finish."""
        forward = self._forward(
            inputs, additional_forward_args, attribute_to_layer_input, keep_graph, scores
        )
        return run_plans(forward, [plan(forward)])[0]

    @staticmethod
    def _weighted_map(
        channel_weights: Tensor, activations: Tensor, relu_attributions: bool, return_weights: bool
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``sum_k w_k A_k`` (ReLU'd on request), with the weights when asked for."""
        check_flag(relu_attributions, "relu_attributions")  # reached from ``plan`` too
        check_flag(return_weights, "return_weights")
        attributions = weighted_activations(channel_weights, activations)
        if relu_attributions:
            attributions = F.relu(attributions)
        return (attributions, channel_weights) if return_weights else attributions


def check_flag(value: Any, name: str) -> None:
    """Raise a ``TypeError`` naming ``name`` unless ``value`` is a bool.

    A string such as ``"no"`` is truthy, so it would silently mean ``True``.

    Example:
        >>> from captum_contrast.methods._base import check_flag
        >>> check_flag(True, "relu_attributions")
        >>> check_flag("no", "relu_attributions")
        Traceback (most recent call last):
        ...
        TypeError: `relu_attributions` must be True or False, got 'no' (str)
    """
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"`{name}` must be True or False, got {value!r} ({type(value).__name__})")


def check_constructor(
    forward_func: Any, layer: Any, device_ids: Any, reshape_transform: Any
) -> None:
    """The constructor's arguments, checked before anything calls them.

    Example:
        >>> from torch import nn
        >>> from captum_contrast import ContrastGradCAM
        >>> model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten())
        >>> ContrastGradCAM(model, model[0], device_ids="0")
        Traceback (most recent call last):
        ...
        TypeError: `device_ids` must be None or a list of ints (CUDA device indices), got '0'
    """
    if not callable(forward_func):
        raise TypeError(
            f"`forward_func` must be the model or a callable, got {type(forward_func).__name__}"
        )
    if reshape_transform is not None and not callable(reshape_transform):
        raise TypeError(
            "`reshape_transform` must be None or a callable taking the layer's tensor, got "
            f"{type(reshape_transform).__name__}"
        )
    if device_ids is not None and not (
        isinstance(device_ids, (list, tuple))
        and all(isinstance(i, int) and not isinstance(i, bool) for i in device_ids)
    ):
        raise TypeError(
            f"`device_ids` must be None or a list of ints (CUDA device indices), got {device_ids!r}"
        )
    # Captured layers need forward hooks, which TorchScript modules do not support.
    for name, module in (("forward_func", owning_module(forward_func)), ("layer", layer)):
        if isinstance(module, (torch.jit.ScriptModule, torch.jit.ScriptFunction)):
            raise TypeError(
                f"`{name}` is a TorchScript {type(module).__name__}: forward hooks are not "
                "supported on ScriptModules, so its layer cannot be read; pass the eager "
                "nn.Module the script was made from"
            )
    if isinstance(forward_func, torch.jit.ScriptFunction):
        raise TypeError(
            "`forward_func` is a TorchScript function: forward hooks are not supported on "
            "ScriptModules; pass the eager model"
        )


def _bool_parameters(function: Callable[..., Any]) -> tuple[inspect.Signature, list[str]]:
    signature = inspect.signature(function)
    flags = [n for n, p in signature.parameters.items() if p.annotation in ("bool", bool)]
    return signature, flags


def _in_eval_mode(attribute: Callable[..., Any]) -> Callable[..., Any]:
    """``attribute`` run with the explained model in eval mode (see the class docstring).

    Every argument annotated ``bool`` is checked first (:func:`check_flag`), before the
    model runs.

    Captum's ``NoiseTunnel`` calls ``attribute.__wrapped__`` to skip ``@log_usage``'s
    logging, which would also skip a plain ``functools.wraps`` wrapper: so ``__wrapped__``
    is the same eval-mode switch around the unlogged ``attribute``.
    """

    def switched(function: Callable[..., Any]) -> Callable[..., Any]:
        signature, flags = _bool_parameters(function)

        @functools.wraps(function)
        def wrapped(self: LayerContrastAttribution, *args: Any, **kwargs: Any) -> Any:
            try:
                given = signature.bind_partial(self, *args, **kwargs).arguments
            except TypeError:  # the call below raises Python's own error, naming the method
                given = {}
            for name in flags:
                if name in given:
                    check_flag(given[name], name)
            model = owning_module(self.forward_func) or self.layer
            with explained_in_eval_mode(model, type(self).__name__):
                return function(self, *args, **kwargs)

        return wrapped

    logged = switched(attribute)
    logged.__wrapped__ = switched(getattr(attribute, "__wrapped__", attribute))  # type: ignore[attr-defined]
    return logged
