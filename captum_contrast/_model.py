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
# id(module) -> [number of scopes holding it, the module, its training flag to restore]
_SWITCHED: dict[int, list[Any]] = {}


class _EvalScope:
    """The modules one call holds in eval mode; shared with concurrent calls by counting.

    The first scope to hold a module records its flag and sets eval mode; the last one to
    let it go restores the flag, so no call ever runs a module in training mode while
    another restores it. Modules are held when the scope opens (``model``'s) and, through a
    global forward pre-hook acting in this call's thread only, whenever a module runs
    (with its submodules) before its forward: a model hidden behind ``lambda x: model(x)``
    or ``functools.partial`` is found as it runs.
    """

    def __init__(self, caller: str) -> None:
        self.caller = caller
        self.owner = threading.get_ident()
        self.held: dict[int, nn.Module] = {}
        self.warned = False

    def hold(self, root: nn.Module, stacklevel: int) -> None:
        switched: list[str] = []
        with _MODE_LOCK:
            for module in root.modules():
                key = id(module)
                if key in self.held:
                    continue
                self.held[key] = module
                entry = _SWITCHED.get(key)
                if entry is not None:
                    entry[0] += 1
                    continue
                _SWITCHED[key] = [1, module, module.training]
                if module.training:
                    switched.append(type(module).__name__)
                    module.training = False
        if switched and not self.warned:
            self.warned = True
            more = f" and {len(switched) - 1} more modules" if len(switched) > 1 else ""
            warnings.warn(
                f"{self.caller}: the model is in training mode ({switched[0]}{more}); it is "
                "explained in eval mode (BatchNorm running statistics, no dropout) so that no "
                "buffer changes, and its mode is restored afterwards. Call model.eval() to "
                "silence this.",
                UserWarning,
                stacklevel=stacklevel,
            )

    def pre_hook(self, module: nn.Module, args: Any) -> None:
        # Read without the lock: only this thread writes `held`.
        if id(module) not in self.held and threading.get_ident() == self.owner:
            self.hold(module, stacklevel=4)

    def release(self) -> None:
        with _MODE_LOCK:
            for key in self.held:
                entry = _SWITCHED[key]
                entry[0] -= 1
                if entry[0] == 0:
                    entry[1].training = entry[2]
                    del _SWITCHED[key]
            self.held.clear()


@contextlib.contextmanager
def explained_in_eval_mode(model: nn.Module | None, caller: str) -> Iterator[None]:
    """Run the block with every module that runs in eval mode, restoring the flags after.

    A forward in training mode updates BatchNorm's running statistics (a change to the
    model) and draws new dropout masks (two identical calls would differ), so a model found
    in training mode is explained in eval mode, with a warning. The modules of ``model``
    (``None`` when the model is hidden in a function) are switched up front, and every
    module called through ``module(...)`` in this thread during the block is switched, with
    its submodules, before its forward runs (a global forward pre-hook): a model behind
    ``lambda x: model(x)`` or ``functools.partial(model)`` is protected too. Not protected:
    a module whose ``forward`` is called directly (``bn.forward(x)``, which skips every
    hook) and that no protected module contains, and code that reads a flag other than
    ``module.training``. Concurrent calls share each module's switch (see
    :class:`_EvalScope`).

    Example:
        >>> import warnings, torch
        >>> from torch import nn
        >>> from captum_contrast._model import explained_in_eval_mode
        >>> model = nn.Sequential(nn.BatchNorm1d(3)).train()
        >>> with warnings.catch_warnings(record=True):
        ...     with explained_in_eval_mode(model, "demo"):
        ...         inside = model.training
        >>> inside, model.training
        (False, True)
        >>> hidden = lambda x: model(x)  # found when it runs
        >>> with warnings.catch_warnings(record=True):
        ...     with explained_in_eval_mode(None, "demo"):
        ...         _ = hidden(torch.rand(4, 3))
        ...         inside = model[0].training
        >>> inside, model[0].training
        (False, True)
    """
    scope = _EvalScope(caller)
    handle = torch.nn.modules.module.register_module_forward_pre_hook(scope.pre_hook)
    try:
        if model is not None:
            scope.hold(model, stacklevel=5)
        yield
    finally:
        handle.remove()
        scope.release()


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
