"""Argument checks shared across the package, with messages that name the argument."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor


def describe_shape(value: object) -> str:
    """``"shape (2, 3)"`` for a tensor, else the type's name: what an error message shows.

    Example:
        >>> import torch
        >>> from captum_contrast._validation import describe_shape
        >>> describe_shape(torch.zeros(2, 3)), describe_shape([1, 2])
        ('shape (2, 3)', 'list')
    """
    return f"shape {tuple(value.shape)}" if isinstance(value, Tensor) else type(value).__name__


class ClassIndexError(TypeError, ValueError):
    """Class indices that are not integers: a ``TypeError`` and a ``ValueError`` alike.

    The methods have always refused a float target with a ``TypeError``, the metrics and
    the command line a bad label with a ``ValueError``; one check serves both.
    """


def class_indices(
    value: Any, name: str, device: torch.device | None = None, *, num_classes: int | None = None
) -> Tensor:
    """``value`` as a LongTensor of class indices (same shape), or an error naming ``name``.

    The one check of "class indices" in the package: the methods' ``target``/``contrast``,
    the Quantus explainer's ``targets``, the metrics' ``y_batch``, the confusion matrix's
    labels, the losses' ``labels`` and ``class_activation_maps``'s ``classes``. An int, a
    NumPy integer, a (nested) sequence of those or an integer array or tensor passes;
    floats (even whole ones: ``1.0`` may be a rounded ``0.97``), booleans, NaN, strings and
    complex numbers are refused, and with ``num_classes`` so is any index outside
    ``[0, num_classes - 1]``.

    Example:
        >>> import numpy as np, torch
        >>> from captum_contrast._validation import class_indices
        >>> class_indices(np.array([1, 2]), "targets").tolist()
        [1, 2]
        >>> class_indices(np.array([1.7, 2.2]), "targets")
        Traceback (most recent call last):
        ...
        captum_contrast._validation.ClassIndexError: `targets` must hold integer class indices (an int, a sequence of ints, or an integer array or tensor), got an array of dtype float64; cast whole numbers with .long() or .astype(int)
        >>> class_indices([0, 7], "labels", num_classes=5)
        Traceback (most recent call last):
        ...
        ValueError: `labels` holds class indices [7] outside [0, 4] (the model has 5 outputs)
    """
    if isinstance(value, Tensor) and value.is_meta:
        raise ClassIndexError(
            f"`{name}` is a meta tensor, which holds no values; pass real indices"
        )
    tensor = _as_index_tensor(value, name)
    if device is not None:
        tensor = tensor.to(device)
    if num_classes is not None:
        check_class_range(tensor, num_classes, name)
    return tensor


def _refuse(name: str, got: str) -> ClassIndexError:
    return ClassIndexError(
        f"`{name}` must hold integer class indices (an int, a sequence of ints, or an integer "
        f"array or tensor), got {got}; cast whole numbers with .long() or .astype(int)"
    )


def _as_index_tensor(value: Any, name: str) -> Tensor:
    if isinstance(value, (bool, np.bool_)):
        raise _refuse(name, f"the bool {value!r}")
    if isinstance(value, (int, np.integer)):
        return torch.tensor(int(value), dtype=torch.long)
    if isinstance(value, Tensor):
        if value.is_floating_point() or value.is_complex() or value.dtype == torch.bool:
            raise _refuse(name, f"a tensor of dtype {value.dtype}")
        return value.detach().to(dtype=torch.long)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "iu":
            raise _refuse(name, f"an array of dtype {value.dtype}")
        return torch.from_numpy(value.astype(np.int64))
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes, list, tuple)):
        value = list(value)  # a range, a user's sequence type
    if isinstance(value, (list, tuple)):
        bad = next((item for item in _leaves(value) if not _is_index(item)), None)
        if bad is not None:
            raise _refuse(name, f"a {type(value).__name__} holding {bad!r}")
        try:
            return torch.tensor([_plain(item) for item in value] if value else [], dtype=torch.long)
        except (ValueError, TypeError):
            raise ValueError(
                f"`{name}` must be a rectangular sequence of class indices, got {value!r:.80}"
            ) from None
    raise _refuse(name, f"{type(value).__name__} {value!r:.40}")


def _leaves(value: Any) -> Iterator[Any]:
    for item in value:
        if isinstance(item, (list, tuple)):
            yield from _leaves(item)
        else:
            yield item


def _is_index(item: Any) -> bool:
    if isinstance(item, Tensor):
        return item.dim() == 0 and not (
            item.is_floating_point() or item.is_complex() or item.dtype == torch.bool
        )
    return isinstance(item, (int, np.integer)) and not isinstance(item, (bool, np.bool_))


def _plain(item: Any) -> Any:
    if isinstance(item, (list, tuple)):
        return [_plain(inner) for inner in item]
    return int(item)


def check_class_range(indices: Tensor, num_classes: int, name: str) -> None:
    """Raise a ValueError naming ``name`` unless every index is in ``[0, num_classes - 1]``."""
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= num_classes):
        bad = indices[(indices < 0) | (indices >= num_classes)].unique().tolist()
        raise ValueError(
            f"`{name}` holds class indices {bad[:5]} outside [0, {num_classes - 1}] "
            f"(the model has {num_classes} outputs)"
        )
