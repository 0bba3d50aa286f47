"""What the package asks of a user's model: its device, and its layers by object or by name."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

import torch
from torch import nn


def model_device(forward_func: Callable[..., Any]) -> torch.device | None:
    """The device of the model's first parameter or buffer, or ``None`` for a plain function.

    A bound method (``model.forward``) is read through its module, so passing either form
    puts the inputs on the same device.
    """
    owner = (
        forward_func
        if isinstance(forward_func, nn.Module)
        else getattr(forward_func, "__self__", None)
    )
    if isinstance(owner, nn.Module):
        for tensor in owner.parameters():
            return tensor.device
        for tensor in owner.buffers():
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


def resolve_layer(model: nn.Module, name: str, argument: str = "layer") -> nn.Module:
    """The submodule called ``name`` (dotted, e.g. ``"layer4"`` or ``"features.28"``).

    Raises a ``ValueError`` naming ``argument`` with the closest module names, or the
    model's top-level modules when nothing is close.

    Example:
        >>> from torchvision.models import resnet18
        >>> from captum_contrast._model import resolve_layer
        >>> type(resolve_layer(resnet18(weights=None), "layer4.1.conv2")).__name__
        'Conv2d'
    """
    names = [module_name for module_name, _ in model.named_modules() if module_name]
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3)
        top = [child for child, _ in model.named_children()]
        hint = (
            f"did you mean {', '.join(close)}?" if close else f"top-level modules: {', '.join(top)}"
        )
        label = f"{argument} {name!r}" if argument.startswith("--") else f"`{argument}`={name!r}"
        raise ValueError(f"{label} is not a module of {type(model).__name__}; {hint}")
    return model.get_submodule(name)


def model_logits(outputs: Any) -> torch.Tensor:
    """The ``(batch, classes)`` scores a model returned, read through ``.logits`` if present.

    Hugging Face's ``ImageClassifierOutput`` and torchvision's ``InceptionOutputs`` /
    ``GoogLeNetOutputs`` (Inception and GoogLeNet in train mode) carry them as ``.logits``;
    any other structured output raises, showing the one-line wrapper to write.

    Example:
        >>> import torch
        >>> from torchvision.models import InceptionOutputs
        >>> from captum_contrast._model import model_logits
        >>> model_logits(InceptionOutputs(torch.zeros(2, 10), torch.ones(2, 10))).shape
        torch.Size([2, 10])
    """
    logits = getattr(outputs, "logits", outputs)
    if isinstance(logits, torch.Tensor) and logits.dim() == 2:
        return logits
    if isinstance(logits, torch.Tensor):
        got = f"a tensor of shape {tuple(logits.shape)}"
    else:
        fields = getattr(outputs, "_fields", None) or (
            list(outputs.keys()) if isinstance(outputs, dict) else None
        )
        got = f"a {type(outputs).__name__}" + (f" with fields {list(fields)}" if fields else "")
    raise ValueError(
        f"the model must return (batch, classes) scores, or an object whose `.logits` are; "
        f"got {got}. Wrap it in one line, e.g. "
        "`forward_func = lambda *inputs: model(*inputs)[0]`, and pass `forward_func` with "
        "the same `layer`"
    )
