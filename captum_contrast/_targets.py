"""Turn Captum's target forms into tensors and build the score weights the engine takes.

Every method asks the engine for the gradients of a few *scores* per example, each a
weight vector over the model's outputs (``score = <w, output>``). The helpers here
resolve user-facing arguments (``target``, ``contrast``, label sets) against the
model's output, with errors that name the argument at fault.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor

TargetType: TypeAlias = int | Sequence[int] | Tensor | None


def as_class_indices(
    value: int | Sequence[int] | Tensor, name: str, device: torch.device
) -> Tensor:
    if isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be an int, a sequence of ints or an integer tensor, got bool"
        )
    if isinstance(value, int):
        return torch.tensor(value, dtype=torch.long, device=device)
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise TypeError(f"`{name}` must be an integer tensor, got dtype {value.dtype}")
        return value.to(device=device, dtype=torch.long)
    if isinstance(value, Sequence) and not isinstance(value, str):
        items = list(value)
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
            raise TypeError(
                f"`{name}` must contain plain ints (one class index per example); got "
                f"{[type(v).__name__ for v in items][:5]}. Tuple targets for outputs with more "
                "than two dimensions are not supported: the model must return (batch, classes)."
            )
        return torch.tensor(items, dtype=torch.long, device=device)
    raise TypeError(
        f"`{name}` must be None, an int, a sequence of ints or an integer tensor, "
        f"got {type(value).__name__}"
    )


def check_class_range(indices: Tensor, num_classes: int, name: str) -> None:
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_classes):
        bad = indices[(indices < 0) | (indices >= num_classes)].unique().tolist()
        raise ValueError(
            f"`{name}` holds class indices {bad[:5]} outside [0, {num_classes - 1}] "
            f"(the model has {num_classes} outputs)"
        )


def resolve_target(target: TargetType, outputs: Tensor, name: str = "target") -> Tensor:
    """One class index per example as a LongTensor ``(B,)``.

    ``None`` selects each example's highest-scoring output. A single int (or 0-d tensor)
    applies to every example, as in Captum. Anything else must hold exactly one index
    per example.
    """
    batch_size, num_classes = outputs.shape
    if target is None:
        return outputs.argmax(dim=1)
    indices = as_class_indices(target, name, outputs.device)
    if indices.dim() == 0:
        indices = indices.reshape(1).expand(batch_size)
    elif indices.dim() == 2 and indices.shape[1] == 1:
        indices = indices[:, 0]
    if indices.dim() != 1 or indices.numel() != batch_size:
        raise ValueError(
            f"`{name}` must give one class per example: expected an int or {batch_size} "
            f"indices for a batch of {batch_size}, got shape {tuple(indices.shape)}"
        )
    check_class_range(indices, num_classes, name)
    return indices.contiguous()


def one_hot_weights(classes: Tensor, num_classes: int, dtype: torch.dtype) -> Tensor:
    """``(B,)`` or ``(B, k)`` class indices -> ``(B, C)`` or ``(B, k, C)`` one-hot weights."""
    return torch.nn.functional.one_hot(classes, num_classes).to(dtype)


def runner_up(outputs: Tensor, targets: Tensor) -> Tensor:
    """Each example's highest-scoring class other than its target, ``(B,)``.

    Read from the outputs a method already has, so choosing it costs no forward pass.

    Example:
        >>> import torch
        >>> from captum_contrast._targets import runner_up
        >>> runner_up(torch.tensor([[0.1, 3.0, 2.0], [5.0, 1.0, 4.0]]), torch.tensor([1, 2]))
        tensor([2, 0])
    """
    return top_other_classes(outputs, targets, 1)[:, 0]


def top_other_classes(outputs: Tensor, targets: Tensor, k: int) -> Tensor:
    """The ``k`` highest-scoring classes of each example other than its target, ``(B, k)``."""
    # The target is pushed to the bottom of the ranking, so it is never its own contrast.
    return outputs.scatter(1, targets.unsqueeze(1), float("-inf")).topk(k, dim=1).indices
