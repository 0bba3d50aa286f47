"""The engine: layer activations and the gradients of several scores, one forward, one backward.

Every method in the package is Grad-CAM asking a different question. They all need the
same two tensors, the activations ``A`` of one layer ``(B, K, h, w)`` and the gradients of
``T`` scores per example with respect to ``A`` ``(T, B, K, h, w)``, where score ``t`` of
example ``b`` is ``<weights[t, b], output[b]>``. :func:`layer_gradients` computes both with
one forward pass and one batched autograd call.

The hook on the layer returns a detached copy of the layer's output that requires grad, so
back-propagation stops at the layer: parameter ``.grad`` is never written and the backbone
below the layer is never back-propagated.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from captum._utils.common import _format_additional_forward_args, _format_tensor_into_tuples
from torch import Tensor, nn

ScoreWeights = Tensor | Callable[[Tensor], Tensor]
ReshapeTransform = Callable[[Tensor], Tensor]


@dataclass
class LayerGradients:
    """What :func:`layer_gradients` returns; every tensor is detached."""

    activations: Tensor
    """Layer activations ``(B, K, h, w)`` after ``reshape_transform``."""
    gradients: Tensor
    """Gradients of each score with respect to the activations, ``(T, B, K, h, w)``."""
    outputs: Tensor
    """Model outputs ``(B, C)``."""
    weights: Tensor
    """The score weights that were back-propagated, ``(T, B, C)``."""


def model_device(forward_func: Callable[..., Any]) -> torch.device | None:
    """The device of the model's first parameter or buffer, or ``None`` for a plain function."""
    if isinstance(forward_func, nn.Module):
        for tensor in forward_func.parameters():
            return tensor.device
        for tensor in forward_func.buffers():
            return tensor.device
    return None


def check_layer(forward_func: Callable[..., Any], layer: Any) -> None:
    """Raise if ``layer`` is not a module of ``forward_func`` (when that can be checked)."""
    if not isinstance(layer, nn.Module):
        raise TypeError(f"`layer` must be a torch.nn.Module, got {type(layer).__name__}")
    if isinstance(forward_func, nn.Module) and not any(
        module is layer for module in forward_func.modules()
    ):
        raise ValueError(
            f"`layer` ({type(layer).__name__}) is not a submodule of the model "
            f"({type(forward_func).__name__}); pass a module reached from the model itself, "
            "e.g. model.layer4"
        )


def format_inputs(
    inputs: Tensor | tuple[Tensor, ...], device: torch.device | None
) -> tuple[Tensor, ...]:
    """Captum's input forms as a tuple, checked for NaN and moved to the model's device."""
    formatted = _format_tensor_into_tuples(inputs)
    if formatted is None or len(formatted) == 0:
        raise ValueError("`inputs` must be a tensor or a non-empty tuple of tensors")
    checked = []
    for index, tensor in enumerate(formatted):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"`inputs[{index}]` must be a tensor, got {type(tensor).__name__}")
        if tensor.is_floating_point() and bool(torch.isnan(tensor).any()):
            raise ValueError(f"`inputs[{index}]` contains NaN values")
        checked.append(tensor.to(device) if device is not None else tensor)
    return tuple(checked)


def _as_single_tensor(value: Any, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, tuple) and len(value) == 1 and isinstance(value[0], Tensor):
        return value[0]
    raise ValueError(
        f"the layer's {where} must be a single tensor to be explained, got "
        f"{type(value).__name__}{f' of length {len(value)}' if isinstance(value, tuple) else ''}"
    )


class _Capture:
    """Forward (or pre-forward) hook that swaps the layer's tensor for a grad-requiring leaf."""

    def __init__(self, to_layer_input: bool) -> None:
        self.to_layer_input = to_layer_input
        self.leaves: dict[torch.device, Tensor] = {}
        self.calls = 0

    def _leaf(self, value: Any, where: str) -> Tensor:
        tensor = _as_single_tensor(value, where)
        leaf = tensor.detach().requires_grad_(True)
        self.calls += 1
        self.leaves[leaf.device] = leaf
        # The clone keeps the leaf intact when the model applies an in-place op after the layer.
        return leaf.clone()

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        if len(args) != 1:
            raise ValueError(
                f"`attribute_to_layer_input=True` needs a layer called with one tensor, "
                f"this one received {len(args)} positional inputs"
            )
        return (self._leaf(args[0], "input"),)

    def hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Tensor:
        return self._leaf(output, "output")


def _check_activations(activations: Tensor, reshape_transform: ReshapeTransform | None) -> None:
    if activations.dim() != 4:
        hint = (
            "reshape_transform returned"
            if reshape_transform is not None
            else "the layer produced (pass `reshape_transform` to turn e.g. transformer tokens "
            "(B, 1 + h*w, D) into (B, D, h, w))"
        )
        raise ValueError(
            f"expected 4-D layer activations (B, K, h, w), but {hint} shape {tuple(activations.shape)}"
        )


def layer_gradients(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    inputs: Tensor | tuple[Tensor, ...],
    weights: ScoreWeights,
    additional_forward_args: Any = None,
    attribute_to_layer_input: bool = False,
    device_ids: list[int] | None = None,
    reshape_transform: ReshapeTransform | None = None,
) -> LayerGradients:
    """Activations of ``layer`` and the gradients of ``T`` weighted scores per example.

    Args:
        forward_func: The model, or any function of ``inputs`` returning ``(B, C)`` outputs.
        layer: The module whose output (or input) is explained.
        inputs: A tensor or a tuple of tensors, as in Captum.
        weights: ``(T, B, C)`` score weights, or a function from the detached ``(B, C)``
            outputs to them, so that classes chosen from the prediction cost no second
            forward pass.
        additional_forward_args: Extra arguments appended to ``inputs`` when calling the model.
        attribute_to_layer_input: Explain the layer's input instead of its output.
        device_ids: Device order used to gather the per-device activations when
            ``forward_func`` is a ``DataParallel`` model, as in Captum.
        reshape_transform: Maps the layer tensor to ``(B, K, h, w)`` (e.g. ViT tokens to a
            grid). It must only select and rearrange elements (slicing, reshape, permute):
            the same transform is applied to the gradients.

    Returns:
        A :class:`LayerGradients` with activations ``(B, K, h, w)``, gradients
        ``(T, B, K, h, w)``, outputs ``(B, C)`` and the weights used.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast import layer_gradients
        >>> model = resnet18(weights=None, num_classes=5).eval()
        >>> def top_two(outputs):  # scores picked from this very forward pass
        ...     classes = outputs.topk(2, dim=1).indices.T  # (2, B)
        ...     return torch.nn.functional.one_hot(classes, outputs.shape[1]).float()
        >>> result = layer_gradients(model, model.layer4, torch.rand(3, 3, 64, 64), top_two)
        >>> result.activations.shape, result.gradients.shape
        (torch.Size([3, 512, 2, 2]), torch.Size([2, 3, 512, 2, 2]))
    """
    check_layer(forward_func, layer)
    device = model_device(forward_func)
    input_tuple = format_inputs(inputs, device)
    extra_args = _format_additional_forward_args(additional_forward_args) or ()

    capture = _Capture(attribute_to_layer_input)
    if attribute_to_layer_input:
        handle = layer.register_forward_pre_hook(capture.pre_hook)
    else:
        handle = layer.register_forward_hook(capture.hook)
    try:
        with torch.enable_grad():
            outputs = forward_func(*input_tuple, *extra_args)
    finally:
        handle.remove()

    leaves = _gather_leaves(capture, device_ids, layer)
    if not isinstance(outputs, Tensor) or outputs.dim() != 2:
        shape = tuple(outputs.shape) if isinstance(outputs, Tensor) else type(outputs).__name__
        raise ValueError(f"the model must return (batch, classes) outputs, got {shape}")

    score_weights = weights(outputs.detach()) if callable(weights) else weights
    score_weights = score_weights.to(device=outputs.device, dtype=outputs.dtype)
    if score_weights.dim() != 3 or score_weights.shape[1:] != outputs.shape:
        raise ValueError(
            f"score weights must have shape (T, {outputs.shape[0]}, {outputs.shape[1]}), "
            f"got {tuple(score_weights.shape)}"
        )
    gradients = _batched_grad(outputs, leaves, score_weights)

    activations = torch.cat([leaf.detach() for leaf in leaves], dim=0)
    if reshape_transform is not None:
        activations = reshape_transform(activations)
        num_scores = gradients.shape[0]
        flat = reshape_transform(gradients.flatten(0, 1))
        gradients = flat.reshape(num_scores, -1, *flat.shape[1:])
    _check_activations(activations, reshape_transform)
    return LayerGradients(activations, gradients, outputs.detach(), score_weights)


def _gather_leaves(
    capture: _Capture, device_ids: list[int] | None, layer: nn.Module
) -> list[Tensor]:
    if capture.calls == 0:
        raise ValueError(
            f"`layer` ({type(layer).__name__}) was not called during the forward pass; "
            "choose a module the model actually runs"
        )
    if len(capture.leaves) == 1:
        if capture.calls > 1:
            raise ValueError(
                f"`layer` ({type(layer).__name__}) was called {capture.calls} times in one "
                "forward pass (a shared module such as a reused ReLU); choose a module that "
                "runs once, e.g. the enclosing block"
            )
        return list(capture.leaves.values())
    # DataParallel: one replica per device, gathered in the order the outputs are.
    order = device_ids if device_ids is not None else sorted(d.index or 0 for d in capture.leaves)
    by_index = {device.index: leaf for device, leaf in capture.leaves.items()}
    return [by_index[index] for index in order if index in by_index]


def _batched_grad(outputs: Tensor, leaves: list[Tensor], score_weights: Tensor) -> Tensor:
    """Gradients of the T weighted scores w.r.t. the leaves, ``(T, B, K, ...)``."""
    if not outputs.requires_grad:
        raise ValueError(
            "the model output does not depend on `layer`; is the layer on the path to the output?"
        )
    num_scores = score_weights.shape[0]
    if num_scores == 1:
        grads = torch.autograd.grad(
            outputs, leaves, grad_outputs=score_weights[0], allow_unused=True
        )
        grads = tuple(g.unsqueeze(0) if g is not None else None for g in grads)
    else:
        try:
            grads = torch.autograd.grad(
                outputs,
                leaves,
                grad_outputs=score_weights,
                is_grads_batched=True,
                allow_unused=True,
            )
        except RuntimeError:
            # Some backward kernels have no vmap rule; fall back to one backward per score.
            per_score = [
                torch.autograd.grad(
                    outputs,
                    leaves,
                    grad_outputs=score_weights[t],
                    retain_graph=t < num_scores - 1,
                    allow_unused=True,
                )
                for t in range(num_scores)
            ]
            grads = tuple(
                torch.stack([g[i] for g in per_score]) if per_score[0][i] is not None else None
                for i in range(len(leaves))
            )
    if any(g is None for g in grads):
        raise ValueError(
            "the model output does not depend on `layer`; is the layer on the path to the output?"
        )
    return torch.cat([g.detach() for g in grads], dim=1)


def spatial_mean(gradients: Tensor) -> Tensor:
    """Grad-CAM channel weights: the mean over the spatial dims of ``(..., K, h, w)``."""
    return gradients.mean(dim=(-2, -1))


def weighted_activations(channel_weights: Tensor, activations: Tensor) -> Tensor:
    """``sum_k weights[b, k] * A[b, k]`` as a ``(B, 1, h, w)`` map."""
    return torch.einsum("bk,bkhw->bhw", channel_weights, activations).unsqueeze(1)
