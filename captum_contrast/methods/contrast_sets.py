"""Contrast sets for CASE: the classes a target is most often confused with."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor

from captum_contrast._model import (
    explained_in_eval_mode,
    model_device,
    owning_module,
)
from captum_contrast._targets import as_class_indices, check_class_range, top_other_classes
from captum_contrast._validation import class_indices
from captum_contrast.scores import ClassScores


def confusion_matrix(
    model: Callable[[Tensor], Tensor],
    data_loader: Iterable[Any],
    num_classes: int,
    device: torch.device | str | None = None,
) -> Tensor:
    """Confusion matrix of ``model`` over ``data_loader``: rows true class, columns predicted.

    Batches are ``(inputs, labels, ...)`` tuples or lists, as torchvision datasets yield;
    labels are integer class indices in ``[0, num_classes - 1]`` (floats and booleans are
    refused) and the model must have at most ``num_classes`` outputs. A
    model found in training mode is run in eval mode, with a warning, and its modes are
    restored: a training-mode forward would update its BatchNorm statistics.

    Returns:
        A ``(num_classes, num_classes)`` LongTensor of counts, on the CPU.

    Example:
        >>> import torch
        >>> from captum_contrast import confusion_matrix
        >>> scores = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])  # predicts 0, 1, 0
        >>> labels = torch.tensor([0, 0, 1])
        >>> confusion_matrix(lambda x: x, [(scores, labels)], num_classes=2)
        tensor([[1, 1],
                [1, 0]])
    """
    if isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2:
        raise ValueError(f"`num_classes` must be an int >= 2, got {num_classes!r}")
    device = torch.device(device) if device is not None else model_device(model)
    counts = torch.zeros(num_classes * num_classes, dtype=torch.long)
    if not hasattr(data_loader, "__iter__"):
        raise TypeError(
            "`data_loader` must be an iterable of (inputs, labels) batches, e.g. a "
            f"torch DataLoader; got {type(data_loader).__name__}"
        )
    seen = False
    with explained_in_eval_mode(owning_module(model), "confusion_matrix"), torch.no_grad():
        for number, batch in enumerate(data_loader):
            inputs, labels = _checked_batch(batch, number, num_classes)
            if device is not None:
                inputs = inputs.to(device)
            predicted = _predictions(model(inputs), len(labels), num_classes, number)
            counts += torch.bincount(labels * num_classes + predicted, minlength=num_classes**2)
            seen = True
    if not seen:  # no forward: nothing says the model's outputs fit num_classes
        raise ValueError("`data_loader` yielded no batches")
    return counts.reshape(num_classes, num_classes)


def _checked_batch(batch: Any, number: int, num_classes: int) -> tuple[Tensor, Tensor]:
    """A batch's inputs and ``(B,)`` labels, checked as class indices of ``num_classes``."""
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise ValueError(
            f"`data_loader` must yield (inputs, labels, ...) batches; batch {number} is "
            f"{type(batch).__name__}"
        )
    inputs = batch[0]
    if not isinstance(inputs, Tensor):
        raise ValueError(
            f"`data_loader` batch {number}: inputs must be a tensor, got {type(inputs).__name__}"
        )
    labels = class_indices(batch[1], "labels", num_classes=num_classes).reshape(-1).cpu()
    if len(labels) != len(inputs):
        raise ValueError(
            f"`data_loader` batch {number}: {len(labels)} `labels` for {len(inputs)} inputs; "
            "give one class index per example"
        )
    return inputs, labels


def _predictions(outputs: Any, batch_size: int, num_classes: int, number: int) -> Tensor:
    """The argmax of ``(B, C)`` outputs, refusing what would be counted wrongly."""
    logits = ClassScores()(outputs)
    if len(logits) != batch_size:
        raise ValueError(
            f"the model returned {len(logits)} rows of outputs for batch {number} of "
            f"{batch_size} examples"
        )
    if logits.shape[1] > num_classes:
        raise ValueError(
            f"`num_classes`={num_classes} but the model has {logits.shape[1]} outputs: a "
            f"prediction of class {num_classes} or above would have no column"
        )
    if logits.is_floating_point() and not bool(torch.isfinite(logits).all()):
        raise ValueError(
            f"the model returned NaN or infinite outputs for batch {number}; its argmax is "
            "no prediction"
        )
    return logits.argmax(dim=1).cpu()


class ContrastSet:
    """For every class, the ``k`` classes it is most confused with.

    Args:
        contrast_classes: ``(C, k)`` LongTensor; row ``c`` lists the contrast classes of ``c``.

    Calling the set with ``(B,)`` targets returns their ``(B, k)`` contrast classes, which is
    how :class:`~captum_contrast.ContrastGradCAM` uses it.

    Example:
        >>> import torch
        >>> from captum_contrast import ContrastSet
        >>> confusion = torch.tensor([[8, 2, 0], [1, 7, 2], [0, 5, 5]])
        >>> ContrastSet.from_confusion_matrix(confusion, k=1).contrast_classes.flatten().tolist()
        [1, 2, 1]
    """

    def __init__(self, contrast_classes: Tensor) -> None:
        contrast_classes = torch.as_tensor(contrast_classes, dtype=torch.long)
        if contrast_classes.dim() != 2:
            raise ValueError(
                f"`contrast_classes` must be (num_classes, k), got shape {tuple(contrast_classes.shape)}"
            )
        num_classes = contrast_classes.shape[0]
        own = torch.arange(num_classes).unsqueeze(1)
        if bool((contrast_classes == own).any()):
            raise ValueError("`contrast_classes` row c must not contain c itself")
        if int(contrast_classes.min()) < 0 or int(contrast_classes.max()) >= num_classes:
            raise ValueError(f"`contrast_classes` must hold indices in [0, {num_classes - 1}]")
        self.contrast_classes = contrast_classes

    @property
    def k(self) -> int:
        return self.contrast_classes.shape[1]

    @classmethod
    def from_confusion_matrix(cls, confusion: Tensor | np.ndarray, k: int = 1) -> ContrastSet:
        """Top-``k`` most confused classes per true class (CASE, SPEC 3).

        Rows are row-normalised (an all-zero row is divided by 1) and the diagonal removed;
        the order follows the reference code, ``np.argsort(row)[-k:][::-1]``, so ties go to
        the higher class index. Unlike the reference code, the class itself is never chosen,
        even when its row has fewer than ``k`` confusions.
        """
        matrix = np.asarray(confusion, dtype=np.float64)
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise ValueError(f"`confusion` must be a square matrix, got shape {matrix.shape}")
        if not np.isfinite(matrix).all() or (matrix < 0).any():
            raise ValueError(
                "`confusion` must hold finite non-negative counts (or rates); it has "
                f"{int((~np.isfinite(matrix)).sum())} non-finite and {int((matrix < 0).sum())} "
                "negative entries"
            )
        num_classes = matrix.shape[0]
        if not 1 <= k < num_classes:
            raise ValueError(
                f"`k` must be in [1, {num_classes - 1}] for {num_classes} classes, got {k}"
            )
        row_sums = matrix.sum(axis=1, keepdims=True)
        normalised = matrix / np.where(row_sums == 0, 1.0, row_sums)
        np.fill_diagonal(normalised, -np.inf)
        order = np.argsort(normalised, axis=1, kind="stable")[:, ::-1][:, :k]
        return cls(torch.from_numpy(order.copy()))

    def __call__(self, targets: Tensor) -> Tensor:
        """The ``(B, k)`` contrast classes of ``(B,)`` class indices ``targets``."""
        indices = as_class_indices(targets, "target", self.contrast_classes.device)
        # A negative index would wrap around to the last classes' rows.
        check_class_range(indices, self.contrast_classes.shape[0], "target")
        device = targets.device if isinstance(targets, Tensor) else indices.device
        return self.contrast_classes[indices].to(device)

    def __repr__(self) -> str:
        return f"ContrastSet(num_classes={self.contrast_classes.shape[0]}, k={self.k})"


ContrastType: TypeAlias = int | Sequence[int] | Tensor | ContrastSet | None


def resolve_contrast(contrast: ContrastType, k: int, targets: Tensor, outputs: Tensor) -> Tensor:
    """The ``(B, k)`` contrast classes of every form ``contrast`` takes, checked.

    ``None``: the ``k`` highest-scoring classes other than the target. An int or a list:
    the same classes for every example. A ``(B, k)`` tensor: per example. A
    :class:`ContrastSet`: each target's most confused classes.
    """
    batch_size, num_classes = outputs.shape
    if contrast is None:
        if k >= num_classes:
            raise ValueError(
                f"`k` must be smaller than the number of classes ({num_classes}), got {k}"
            )
        return top_other_classes(outputs, targets, k)
    if isinstance(contrast, ContrastSet):
        if k != 1 and k != contrast.k:
            raise ValueError(f"`k`={k} disagrees with the ContrastSet's k={contrast.k}; omit `k`")
        if contrast.contrast_classes.shape[0] != num_classes:
            raise ValueError(
                f"`contrast` is a ContrastSet over {contrast.contrast_classes.shape[0]} classes "
                f"but the model has {num_classes} outputs"
            )
        return contrast(targets)
    contrasts = as_class_indices(contrast, "contrast", outputs.device)
    if contrasts.dim() <= 1:
        contrasts = contrasts.reshape(1, -1).expand(batch_size, -1)
    if contrasts.dim() != 2 or contrasts.shape[0] != batch_size or contrasts.shape[1] == 0:
        raise ValueError(
            f"`contrast` must be an int, a list of ints, or a (batch, k) tensor with batch = "
            f"{batch_size}; got shape {tuple(contrasts.shape)}"
        )
    check_class_range(contrasts, num_classes, "contrast")
    if contrasts.shape[1] >= num_classes:
        raise ValueError(
            f"`contrast` names {contrasts.shape[1]} classes per example; at most "
            f"{num_classes - 1} are possible with {num_classes} classes"
        )
    clashes = (contrasts == targets.unsqueeze(1)).any(dim=1)
    if bool(clashes.any()):
        example = int(clashes.nonzero()[0])
        raise ValueError(
            f"`contrast` contains the target class {int(targets[example])} for example {example}; "
            "a class cannot be its own contrast"
        )
    ordered = contrasts.sort(dim=1).values
    if bool((ordered[:, 1:] == ordered[:, :-1]).any()):
        raise ValueError("`contrast` repeats a class within an example's contrast set")
    return contrasts
