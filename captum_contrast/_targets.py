"""Turn Captum's target forms into tensors and build the score weights the engine takes.

Every method asks the engine for the gradients of a few *scores* per example, each a
weight vector over the model's outputs (``score = <w, output>``). The helpers here
resolve user-facing arguments (``target``, ``contrast``, label sets) against the
model's output, with errors that name the argument at fault.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import TypeAlias

import torch
from torch import Tensor

from captum_contrast._validation import check_class_range, class_indices

TargetType: TypeAlias = int | Sequence[int] | Tensor | None


# The one check of class indices lives in _validation; the methods import it from here.
as_class_indices = class_indices


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


def check_scores(outputs: Tensor) -> None:
    """Warn, naming the examples, when the ``(B, C)`` class scores hold NaN.

    (Integer scores are refused where they are read, by ``scores.read_scores``.) NaN
    scores make the chosen targets and contrasts arbitrary (``argmax`` of NaN) and usually
    the maps NaN too, so they are reported rather than explained quietly.

    Example:
        >>> import torch, warnings
        >>> from captum_contrast._targets import check_scores
        >>> with warnings.catch_warnings(record=True) as caught:
        ...     warnings.simplefilter("always")
        ...     check_scores(torch.tensor([[1.0, 2.0], [float("nan"), 0.0]]))
        >>> print(caught[0].message)
        the model's scores are NaN for examples [1] (of 2): their targets, contrasts and maps are not meaningful
    """
    nan = torch.isnan(outputs.detach()).flatten(1).any(dim=1)
    if bool(nan.any()):
        examples = nan.nonzero().flatten().tolist()
        shown = f"{examples[:10]}{' ...' if len(examples) > 10 else ''}"
        warnings.warn(
            f"the model's scores are NaN for examples {shown} (of {len(nan)}): their "
            "targets, contrasts and maps are not meaningful",
            RuntimeWarning,
            stacklevel=4,
        )


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
