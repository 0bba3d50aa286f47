"""The engine: one forward pass read at one layer, then the gradients of several scores.

Every method in the package is Grad-CAM asking a different question. The data flows one
way, with no call back into the method:

1. :func:`forward_layer` runs the model once and reads its output as ``(B, C)`` class
   scores (:mod:`captum_contrast.scores`: logits, a region of a segmentation, a step of a
   sequence, a detection, a similarity). A hook swaps the layer's output for a
   detached copy that requires grad, so back-propagation stops at the layer: parameter
   ``.grad`` is never written and the backbone below the layer is never back-propagated.
   It returns a :class:`LayerForward` with the scores ``(B, C)`` and activations
   ``A`` ``(B, K, *grid)``, laid out by ``reshape_transform`` or recognised
   from their shape (:mod:`captum_contrast.transforms`).
2. The method resolves its targets from ``outputs`` in plain code.
3. :meth:`LayerForward.gradients` back-propagates ``T`` scores per example, score ``t`` of
   example ``b`` being ``<weights[t, b], outputs[b]>``, in one batched autograd call:
   ``(T, B, K, *grid)``. Methods that need only ``A`` (OptiCAM, MinMax's CAM form) never
   call it and run the forward with ``keep_graph=False``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from captum._utils.common import _format_additional_forward_args, _format_tensor_into_tuples
from torch import Tensor, nn

from captum_contrast._model import check_layer, model_device
from captum_contrast.scores import ScoresLike, read_scores
from captum_contrast.transforms import ReshapeTransform, check_maps, infer_layout, transformed


@dataclass
class LayerForward:
    """One forward pass of the model, read at one layer; every public tensor is detached.

    :meth:`gradients` back-propagates any number of scores from this very pass in one
    batched autograd call, so a method chooses its scores from :attr:`outputs` in plain
    code between the forward and the backward.
    """

    outputs: Tensor
    """The class scores ``(B, C)`` read from the model's output by ``scores``."""
    activations: Tensor
    """Layer activations ``(B, K, *grid)`` (1 to 3 grid axes), laid out by the layout."""
    _graph_outputs: Tensor | None = field(repr=False)
    _leaves: list[Tensor] = field(repr=False)
    _reshape_transform: ReshapeTransform | None = field(repr=False)

    @property
    def spatial_rank(self) -> int:
        """The number of grid axes of :attr:`activations` (1, 2 or 3)."""
        return self.activations.dim() - 2

    def gradients(self, weights: Tensor) -> Tensor:
        """Gradients of ``T`` scores per example with respect to the activations.

        Score ``t`` of example ``b`` is ``<weights[t, b], outputs[b]>``; the result is
        ``(T, B, K, *grid)``, laid out like :attr:`activations`. Call it once: the graph is
        freed afterwards.
        """
        if self._graph_outputs is None:
            raise RuntimeError(
                "this forward was run with keep_graph=False; no gradients can be taken"
            )
        outputs = self._graph_outputs
        score_weights = weights.to(device=outputs.device, dtype=outputs.dtype)
        if score_weights.dim() != 3 or score_weights.shape[1:] != outputs.shape:
            raise ValueError(
                f"score weights must have shape (T, {outputs.shape[0]}, {outputs.shape[1]}), "
                f"got {tuple(score_weights.shape)}"
            )
        gradients = _batched_grad(outputs, self._leaves, score_weights)
        self._graph_outputs = None  # the graph is freed by autograd; say so on a second call
        if self._reshape_transform is None:
            return gradients
        num_scores = gradients.shape[0]
        # The scores' gradients are stacked on the batch axis: the transform must be
        # batch-agnostic (it sees T * B examples here).
        flat = transformed(self._reshape_transform, gradients.flatten(0, 1))
        return flat.reshape(num_scores, -1, *flat.shape[1:])


def format_inputs(
    inputs: Tensor | tuple[Tensor, ...], device: torch.device | None
) -> tuple[Tensor, ...]:
    """Captum's input forms as a tuple, checked for NaN and infinity, on the model's device."""
    formatted = _format_tensor_into_tuples(inputs)
    if formatted is None or len(formatted) == 0:
        raise ValueError("`inputs` must be a tensor or a non-empty tuple of tensors")
    checked = []
    for index, tensor in enumerate(formatted):
        if not isinstance(tensor, Tensor):
            raise TypeError(f"`inputs[{index}]` must be a tensor, got {type(tensor).__name__}")
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            # An infinite pixel gives a NaN map as surely as a NaN one: refuse both.
            kinds = " and ".join(
                kind
                for kind, found in (("NaN", torch.isnan(tensor)), ("infinite", torch.isinf(tensor)))
                if bool(found.any())
            )
            raise ValueError(f"`inputs[{index}]` contains {kinds} values; pass finite inputs")
        checked.append(tensor.to(device) if device is not None else tensor)
    return tuple(checked)


def _as_single_tensor(value: Any, where: str) -> Tensor:
    if isinstance(value, Tensor):
        return value
    if isinstance(value, (tuple, list)) and len(value) == 1 and isinstance(value[0], Tensor):
        return value[0]
    raise ValueError(
        f"the layer's {where} must be a single tensor to be explained, got "
        f"{type(value).__name__}"
        f"{f' of length {len(value)}' if isinstance(value, (tuple, list)) else ''}"
    )


def _with_tensor(value: Any, tensor: Tensor) -> Any:
    """``value`` with its one tensor replaced by ``tensor``, in the same container type.

    A block returning ``(h,)`` (Hugging Face style) is read by the model as ``block(h)[0]``:
    handing back a bare tensor would make that ``[0]`` pick example 0 of the batch.
    """
    if isinstance(value, Tensor):
        return tensor
    if isinstance(value, list):
        return type(value)([tensor]) if type(value) is not list else [tensor]
    if hasattr(value, "_fields"):  # a named tuple
        return type(value)(tensor)
    return type(value)((tensor,)) if type(value) is not tuple else (tensor,)


class _Capture:
    """Forward (or pre-forward) hook that swaps the layer's tensor for a grad-requiring leaf.

    The hook belongs to one call: it sits on a module other threads may be running at the
    same moment (one model shared by several explaining threads), so it only acts in the
    thread that registered it. A ``DataParallel`` replica of the layer (a different module
    object, run in a worker thread) is this call's own and is always captured.
    """

    def __init__(self, layer: nn.Module, to_layer_input: bool) -> None:
        self.layer = layer
        self.to_layer_input = to_layer_input
        self.owner = threading.get_ident()
        self.leaves: dict[torch.device, Tensor] = {}
        self.calls = 0
        self.grad_enabled = True

    def _mine(self, module: nn.Module) -> bool:
        return module is not self.layer or threading.get_ident() == self.owner

    def _leaf(self, value: Any, where: str) -> Tensor:
        tensor = _as_single_tensor(value, where)
        leaf = tensor.detach().requires_grad_(True)
        self.calls += 1
        self.leaves[leaf.device] = leaf
        # Remembered to say *where* gradients were off if the output ends up without a graph.
        self.grad_enabled &= torch.is_grad_enabled()
        # The clone keeps the leaf intact when the model applies an in-place op after the layer.
        return leaf.clone()

    def pre_hook(self, module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
        if not self._mine(module):
            return None
        if len(args) != 1:
            raise ValueError(
                f"`attribute_to_layer_input=True` needs a layer called with one tensor, "
                f"this one received {len(args)} positional inputs"
            )
        return (_with_tensor(args[0], self._leaf(args[0], "input")),)

    def hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        if not self._mine(module):
            return None
        # The output's structure is kept: only the tensor inside is swapped.
        return _with_tensor(output, self._leaf(output, "output"))


def _input_grid(inputs: tuple[Tensor, ...]) -> tuple[int, ...] | None:
    """The first input's spatial size ``(B, C, *grid)``, or ``None`` when it has no grid."""
    return tuple(inputs[0].shape[2:]) if inputs[0].dim() >= 3 else None


def forward_layer(
    forward_func: Callable[..., Any],
    layer: nn.Module,
    inputs: Tensor | tuple[Tensor, ...],
    additional_forward_args: Any = None,
    attribute_to_layer_input: bool = False,
    device_ids: list[int] | None = None,
    reshape_transform: ReshapeTransform | None = None,
    *,
    keep_graph: bool = True,
    scores: ScoresLike = None,
) -> LayerForward:
    """Run the model once and read ``layer``; gradients are taken later, on request.

    Args:
        forward_func: The model, or any function of ``inputs`` returning ``(B, C)`` outputs.
        layer: The module whose output (or input) is explained.
        inputs: A tensor or a tuple of tensors, as in Captum.
        additional_forward_args: Extra arguments appended to ``inputs`` when calling the model.
        attribute_to_layer_input: Read the layer's input instead of its output.
        device_ids: Device order used to gather the per-device activations when
            ``forward_func`` is a ``DataParallel`` model, as in Captum.
        reshape_transform: Maps the layer tensor to ``(B, K, *grid)`` (e.g. ViT tokens to a
            grid). It must only select and rearrange elements (slicing, reshape, permute):
            the same transform is applied to the gradients. ``None``: the layout is
            recognised from the layer's type, else the tensor's shape and the input's grid
            (:func:`captum_contrast.transforms.infer_layout`).
        scores: Reads the model's output as ``(B, C)`` class scores
            (:mod:`captum_contrast.scores`); ``None`` is :class:`~captum_contrast.scores.ClassScores`.
            It runs inside the recorded graph, so the gradients are those of its scores.
        keep_graph: Record the graph from the layer to the outputs, so that
            :meth:`LayerForward.gradients` can be called. ``False`` runs the forward under
            ``torch.no_grad`` for methods that need only the activations and outputs.

    Returns:
        A :class:`LayerForward` holding the detached outputs and activations.

    Example:
        >>> import torch
        >>> from torchvision.models import resnet18
        >>> from captum_contrast._engine import forward_layer
        >>> model = resnet18(weights=None, num_classes=5).eval()
        >>> forward = forward_layer(model, model.layer4, torch.rand(3, 3, 64, 64))
        >>> top_two = forward.outputs.topk(2, dim=1).indices.T        # (2, B), from this forward
        >>> weights = torch.nn.functional.one_hot(top_two, 5).float()  # (T=2, B, C)
        >>> forward.activations.shape, forward.gradients(weights).shape
        (torch.Size([3, 512, 2, 2]), torch.Size([2, 3, 512, 2, 2]))
    """
    check_layer(forward_func, layer)
    if keep_graph:
        check_gradients_enabled()
    device = model_device(forward_func)
    input_tuple = format_inputs(inputs, device)
    extra_args = _format_additional_forward_args(additional_forward_args) or ()

    capture = _Capture(layer, attribute_to_layer_input)
    if attribute_to_layer_input:
        handle = layer.register_forward_pre_hook(capture.pre_hook)
    else:
        handle = layer.register_forward_hook(capture.hook)
    try:
        with torch.set_grad_enabled(keep_graph):
            outputs = forward_func(*input_tuple, *extra_args)
    finally:
        handle.remove()

    leaves = _gather_leaves(capture, device_ids, layer)
    with torch.set_grad_enabled(keep_graph):
        outputs = read_scores(scores, outputs, batch_size=input_tuple[0].shape[0])
    if keep_graph and not capture.grad_enabled:
        raise RuntimeError(
            f"gradients are disabled where `layer` ({type(layer).__name__}) runs: the model's "
            "forward runs it under torch.no_grad() or inside reentrant checkpointing "
            "(torch.utils.checkpoint with use_reentrant=True); enable gradients there, or use "
            "use_reentrant=False"
        )
    activations = torch.cat([leaf.detach() for leaf in leaves], dim=0)
    if reshape_transform is None:
        reshape_transform = infer_layout(
            activations.shape,
            _input_grid(input_tuple),
            layer,
            layer_input=attribute_to_layer_input,
        )
    if reshape_transform is not None:
        activations = transformed(reshape_transform, activations)
    check_maps(activations, "`reshape_transform` returned")
    return LayerForward(
        outputs=outputs.detach(),
        activations=activations,
        _graph_outputs=outputs if keep_graph else None,
        _leaves=leaves,
        _reshape_transform=reshape_transform,
    )


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


def check_gradients_enabled() -> None:
    """Raise a RuntimeError saying so when the caller runs under ``torch.inference_mode``.

    Tensors made under inference mode can never enter a graph, so no layer gradient can be
    taken; ``torch.no_grad`` around a call is fine (the engine re-enables gradients).
    """
    if torch.is_inference_mode_enabled():
        raise RuntimeError(
            "gradients are disabled: this call runs under torch.inference_mode(), in which "
            "no gradient can be taken; call it outside that block (torch.no_grad() is fine)"
        )


NOT_ON_THE_PATH = (
    "the model output does not depend on `layer`: gradients are disabled between the layer "
    "and the output (torch.no_grad() or .detach() in the model's forward), or the layer is "
    "not on the path to the output"
)


def _batched_grad(outputs: Tensor, leaves: list[Tensor], score_weights: Tensor) -> Tensor:
    """Gradients of the T weighted scores w.r.t. the leaves, ``(T, B, K, ...)``."""
    if not outputs.requires_grad:
        raise ValueError(NOT_ON_THE_PATH)
    num_scores = score_weights.shape[0]
    if num_scores == 1:
        grads = torch.autograd.grad(
            outputs, leaves, grad_outputs=score_weights[0], allow_unused=True
        )
        grads = tuple(g.unsqueeze(0) if g is not None else None for g in grads)
    else:
        grads = _grads_of_several_scores(outputs, leaves, score_weights)
    if any(g is None for g in grads):
        raise ValueError(NOT_ON_THE_PATH)
    return torch.cat([g.detach() for g in grads], dim=1)


def _grads_of_several_scores(
    outputs: Tensor, leaves: list[Tensor], score_weights: Tensor
) -> tuple[Tensor | None, ...]:
    """One batched (vmapped) backward of T scores, or T plain ones if an op cannot be batched.

    The batched attempt retains the graph: a backward that fails half way has already freed
    the buffers of the nodes it ran, and the fallback needs them. Any error of the fallback
    (the model's own backward failing) propagates as it is.
    """
    try:
        return torch.autograd.grad(
            outputs,
            leaves,
            grad_outputs=score_weights,
            is_grads_batched=True,
            retain_graph=True,
            allow_unused=True,
        )
    except Exception:  # noqa: BLE001 - no vmap rule (or the model's error, re-raised below)
        pass
    num_scores = score_weights.shape[0]
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
    return tuple(
        torch.stack([g[i] for g in per_score]) if per_score[0][i] is not None else None
        for i in range(len(leaves))
    )


def spatial_mean(gradients: Tensor, spatial_rank: int = 2) -> Tensor:
    """Grad-CAM channel weights: the mean over the last ``spatial_rank`` (grid) dims."""
    return gradients.mean(dim=tuple(range(-spatial_rank, 0)))


def weighted_activations(channel_weights: Tensor, activations: Tensor) -> Tensor:
    """``sum_k weights[b, k] * A[b, k]`` as a ``(B, 1, *grid)`` map, any grid rank."""
    return torch.einsum("bk,bk...->b...", channel_weights, activations).unsqueeze(1)
