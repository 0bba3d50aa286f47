"""Argument checks shared across the package, with messages that name the argument."""

from __future__ import annotations

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
