"""The base of every method: a Captum layer attribution that computes through the engine."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, ClassVar

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
    draw new dropout masks. (Only the modules of ``forward_func`` when it is a module or a
    bound method of one, else those of ``layer``; put a model hidden in a plain function in
    eval mode yourself.) Every public method of a subclass that runs the model (those named
    in ``model_calling_methods``: ``attribute``, and e.g. ``ContrastGradCAM.cosine``) gets
    this through ``__init_subclass__``. Calls from several threads on one shared model are safe and give
    the maps sequential calls give.

    Args:
        forward_func: The model, or any function returning ``(batch, classes)`` outputs.
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
    ) -> LayerForward:
        """One forward of the model, read at this method's layer (see :mod:`._engine`)."""
        return forward_layer(
            self.forward_func,
            self.layer,
            inputs,
            additional_forward_args=additional_forward_args,
            attribute_to_layer_input=attribute_to_layer_input,
            device_ids=self.device_ids,
            reshape_transform=self.reshape_transform,
            keep_graph=keep_graph,
        )

    @staticmethod
    def _weighted_map(
        channel_weights: Tensor, activations: Tensor, relu_attributions: bool, return_weights: bool
    ) -> Tensor | tuple[Tensor, Tensor]:
        """``sum_k w_k A_k`` (ReLU'd on request), with the weights when asked for."""
        attributions = weighted_activations(channel_weights, activations)
        if relu_attributions:
            attributions = F.relu(attributions)
        return (attributions, channel_weights) if return_weights else attributions


def _in_eval_mode(attribute: Callable[..., Any]) -> Callable[..., Any]:
    """``attribute`` run with the explained model in eval mode (see the class docstring).

    Captum's ``NoiseTunnel`` calls ``attribute.__wrapped__`` to skip ``@log_usage``'s
    logging, which would also skip a plain ``functools.wraps`` wrapper: so ``__wrapped__``
    is the same eval-mode switch around the unlogged ``attribute``.
    """

    def switched(function: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(function)
        def wrapped(self: LayerContrastAttribution, *args: Any, **kwargs: Any) -> Any:
            model = owning_module(self.forward_func) or self.layer
            with explained_in_eval_mode(model, type(self).__name__):
                return function(self, *args, **kwargs)

        return wrapped

    logged = switched(attribute)
    logged.__wrapped__ = switched(getattr(attribute, "__wrapped__", attribute))  # type: ignore[attr-defined]
    return logged
