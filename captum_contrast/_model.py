"""What the package asks of a user's model: its device, and its layers by object or by name."""

from __future__ import annotations

import contextlib
import difflib
import threading
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn


def model_device(forward_func: Callable[..., Any]) -> torch.device | None:
    """The device of the model's first parameter or buffer, or ``None`` for a plain function.

    A bound method (``model.forward``) is read through its module, so passing either form
    puts the inputs on the same device.
    """
    owner = owning_module(forward_func)
    if owner is not None:
        for tensor in owner.parameters():
            return tensor.device
        for tensor in owner.buffers():
            return tensor.device
    return None


def owning_module(forward_func: Callable[..., Any]) -> nn.Module | None:
    """The module behind ``forward_func`` (itself, or the owner of a bound method), if any."""
    if isinstance(forward_func, nn.Module):
        return forward_func
    owner = getattr(forward_func, "__self__", None)
    return owner if isinstance(owner, nn.Module) else None


_MODE_LOCK = threading.Lock()
# id(model) -> [number of calls inside, the (module, training) flags to restore]
_IN_EVAL: dict[int, list[Any]] = {}


@contextlib.contextmanager
def explained_in_eval_mode(model: nn.Module, caller: str) -> Iterator[None]:
    """Run the block with every module of ``model`` in eval mode, restoring the flags after.

    A forward in training mode updates BatchNorm's running statistics (a change to the
    model) and draws new dropout masks (two identical calls would differ), so a model found
    in training mode is explained in eval mode, with a warning. Concurrent calls on one
    model share the switch: the first one in sets eval mode, the last one out restores the
    flags, so no call ever runs the model in training mode while another restores it.

    Example:
        >>> import warnings
        >>> from torch import nn
        >>> from captum_contrast._model import explained_in_eval_mode
        >>> model = nn.Sequential(nn.BatchNorm1d(3)).train()
        >>> with warnings.catch_warnings(record=True):
        ...     with explained_in_eval_mode(model, "demo"):
        ...         inside = model.training
        >>> inside, model.training
        (False, True)
    """
    key = id(model)
    with _MODE_LOCK:
        entry = _IN_EVAL.setdefault(key, [0, None])
        if entry[0] == 0:
            flags = [(module, module.training) for module in model.modules()]
            if any(training for _, training in flags):
                warnings.warn(
                    f"{caller}: the model is in training mode; it is explained in eval mode "
                    "(BatchNorm running statistics, no dropout) so that no buffer changes, and "
                    "its mode is restored afterwards. Call model.eval() to silence this.",
                    UserWarning,
                    stacklevel=4,
                )
                model.eval()
                entry[1] = flags
        entry[0] += 1
    try:
        yield
    finally:
        with _MODE_LOCK:
            entry[0] -= 1
            if entry[0] == 0:
                for module, training in entry[1] or ():
                    module.training = training
                del _IN_EVAL[key]


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
