"""Reading a model's output: the protocol, the default ClassScores, and the checks."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal, Protocol, runtime_checkable

import numpy as np
import torch
from torch import Tensor

Probability = Literal["softmax", "sigmoid", "identity", "exp"]
"""How scores become probabilities for the metrics: softmax over the ``C`` scores (logits of
one-of-C classes), sigmoid of each (multi-label logits), the scores as they are (already
probabilities, similarities), or the exponential of each (log-probabilities)."""
PROBABILITIES: tuple[str, ...] = ("softmax", "sigmoid", "identity", "exp")


@runtime_checkable
class Scores(Protocol):
    """What the package asks of a scores object: a call, and optionally these attributes.

    ``probability`` (``None``: the metric's own, softmax for single-label metrics, sigmoid
    for multi-label ones); ``per_example`` and ``subset(index)``: a selection that holds one
    entry per example (a mask, a step, a box per example) and can follow a batch of them.
    """

    def __call__(self, outputs: Any) -> Tensor: ...


class ClassScores:
    """``(B, C)`` class scores as the model returns them: the default reading.

    A tensor ``(B, C)``, or an object whose ``.logits`` is one (Hugging Face's
    ``ImageClassifierOutput``, torchvision's ``InceptionOutputs``). Anything else raises,
    naming the ``scores`` that read it.

    Example:
        >>> import torch
        >>> from torchvision.models import InceptionOutputs
        >>> from captum_contrast.scores import ClassScores
        >>> ClassScores()(InceptionOutputs(torch.zeros(2, 10), torch.ones(2, 10))).shape
        torch.Size([2, 10])
    """

    probability: Probability | None = None
    per_example = False

    def __call__(self, outputs: Any) -> Tensor:
        logits = getattr(outputs, "logits", outputs)
        if isinstance(logits, Tensor) and logits.dim() == 2:
            return logits
        raise ValueError(
            f"the model must return (batch, classes) scores, or an object whose `.logits` are; "
            f"got {describe(outputs)}. Pass `scores=` to read another output: RegionScores "
            "for a segmentation or dense map, StepScores for a sequence, BoxScores for "
            "detections, SimilarityScores for embeddings (captum_contrast.scores), any "
            "callable returning (batch, classes), or wrap the model in one line, e.g. "
            "`forward_func = lambda *inputs: model(*inputs)[0]`, with the same `layer`"
        )

    def subset(self, index: Tensor) -> ClassScores:
        return self

    def __repr__(self) -> str:
        return "ClassScores()"


def dense_output(outputs: Any, name: str) -> Tensor:
    """The tensor of a dense output: itself, ``outputs["out"]`` (torchvision) or ``.logits``."""
    if isinstance(outputs, dict) and "out" in outputs:
        outputs = outputs["out"]
    outputs = getattr(outputs, "logits", outputs)
    if not isinstance(outputs, Tensor):
        raise ValueError(
            f"{name} reads a tensor output (or {{'out': tensor}}), got {describe(outputs)}"
        )
    return outputs


def check_probability(probability: Any) -> Probability | None:
    if probability is not None and probability not in PROBABILITIES:
        raise ValueError(
            f"`probability` must be one of {PROBABILITIES} or None, got {probability!r}"
        )
    return probability


def describe(value: Any) -> str:
    """What an error message shows of a value: a tensor's shape, a container's fields."""
    if isinstance(value, Tensor):
        return f"a tensor of shape {tuple(value.shape)}"
    fields = getattr(value, "_fields", None) or (
        list(value.keys()) if isinstance(value, dict) else None
    )
    return f"a {type(value).__name__}" + (f" with fields {list(fields)}" if fields else "")


def as_tensor_argument(value: Any, name: str) -> Tensor:
    """A tensor or array argument as a detached tensor, or a TypeError naming it."""
    if isinstance(value, Tensor):
        return value.detach()
    if isinstance(value, (np.ndarray, list, tuple)):
        array = np.asarray(value)
        if array.dtype.kind not in "biuf":
            raise TypeError(f"`{name}` must hold numbers or booleans, got dtype {array.dtype}")
        return torch.as_tensor(array)
    raise TypeError(f"`{name}` must be a tensor or an array, got {type(value).__name__}")


def as_index_tensor(value: Any, name: str) -> Tensor:
    """An int, a sequence of ints or an integer tensor as a LongTensor; floats and bools refused."""
    if isinstance(value, bool) or (isinstance(value, Tensor) and value.dtype == torch.bool):
        raise TypeError(f"`{name}` must be an int or integers, got a bool")
    if isinstance(value, int):
        return torch.tensor(value)
    if isinstance(value, float):
        raise TypeError(f"`{name}` must be an int or integers, got the float {value!r}")
    tensor = as_tensor_argument(value, name)
    if tensor.is_floating_point() or tensor.dtype == torch.bool:
        raise TypeError(f"`{name}` must be an int or integers, got dtype {tensor.dtype}")
    return tensor.to(torch.long)


def check_examples(given: int, batch: int, name: str) -> None:
    """Raise unless a per-example ``name`` has one entry per example of the batch."""
    if given != batch:
        raise ValueError(
            f"`{name}` holds {given} entries (one per example) but the batch has {batch} "
            "examples; nothing is broadcast: give one per example, or a single one for all"
        )


def copy_with(scores: Any, **changes: Any) -> Any:
    """A shallow copy of a selection with some attributes replaced (for :meth:`subset`)."""
    copy = object.__new__(type(scores))
    copy.__dict__.update(scores.__dict__)
    copy.__dict__.update(changes)
    return copy


ScoresLike = Callable[[Any], Tensor] | None


def resolve_scores(scores: ScoresLike) -> Callable[[Any], Tensor]:
    """``scores`` if callable, ``ClassScores()`` for ``None``; else a TypeError naming it."""
    if scores is None:
        return ClassScores()
    if not callable(scores):
        raise TypeError(
            f"`scores` must be None or a callable outputs -> (batch, classes), e.g. "
            f"captum_contrast.scores.RegionScores(mask); got {type(scores).__name__}"
        )
    return scores


def read_scores(scores: ScoresLike, outputs: Any, batch_size: int | None = None) -> Tensor:
    """``scores(outputs)``, checked to be a floating ``(batch_size, C)`` tensor.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import read_scores
        >>> read_scores(None, torch.zeros(2, 3), batch_size=2).shape
        torch.Size([2, 3])
        >>> read_scores(lambda out: out.sum(), torch.zeros(2, 3))
        Traceback (most recent call last):
        ...
        ValueError: `scores` must return (batch, classes) scores, got a tensor of shape ()
    """
    read = resolve_scores(scores)
    result = read(outputs)
    if not isinstance(result, Tensor) or result.dim() != 2:
        raise ValueError(f"`scores` must return (batch, classes) scores, got {describe(result)}")
    if not (result.is_floating_point() or result.is_complex()) or result.is_complex():
        raise ValueError(f"`scores` must return real floating scores, got dtype {result.dtype}")
    if batch_size is not None and result.shape[0] != batch_size:
        raise ValueError(
            f"`scores` returned {result.shape[0]} rows for a batch of {batch_size} examples; "
            "it must return one row of class scores per example"
        )
    if result.shape[1] == 0:
        raise ValueError("`scores` returned no class score (shape (B, 0))")
    return result


def scored_forward(model: Callable[..., Any], scores: ScoresLike) -> Callable[..., Tensor]:
    """``model`` followed by ``scores``: the forward to give a class that takes no ``scores``.

    Captum's own classes (``LayerGradCam``) explain whatever their forward returns; wrapped
    this way they explain the same scores the package's methods read with ``scores=``.

    Example:
        >>> import torch
        >>> from captum_contrast.scores import StepScores, scored_forward
        >>> forward = scored_forward(lambda x: x * 2, StepScores(1))
        >>> forward(torch.arange(12.0).reshape(1, 3, 4)).tolist()
        [[8.0, 10.0, 12.0, 14.0]]
    """

    def forward(*inputs: Any) -> Tensor:
        batch = inputs[0].shape[0] if inputs and isinstance(inputs[0], Tensor) else None
        return read_scores(scores, model(*inputs), batch)

    return forward


def probability_of(scores: ScoresLike, default: Probability) -> Probability:
    """How a metric turns ``scores``' output into probabilities: its own or ``default``."""
    declared = getattr(scores, "probability", None) if scores is not None else None
    return declared if declared is not None else default


def to_probabilities(values: np.ndarray, probability: Probability) -> np.ndarray:
    """``(B, C)`` scores as probabilities: softmax, sigmoid, unchanged or exponential.

    Example:
        >>> import numpy as np
        >>> from captum_contrast.scores import to_probabilities
        >>> to_probabilities(np.log([[0.25, 0.5]]), "exp")
        array([[0.25, 0.5 ]])
    """
    from scipy.special import expit, softmax

    if probability == "softmax":
        return softmax(values, axis=1)
    if probability == "sigmoid":
        return expit(values)
    if probability == "exp":
        return np.exp(values)
    return values


def subset_scores(scores: ScoresLike, index: Tensor | np.ndarray | Sequence[int]) -> ScoresLike:
    """``scores`` for the examples ``index`` (a per-example selection follows them)."""
    if scores is None or not getattr(scores, "per_example", False):
        return scores
    return scores.subset(torch.as_tensor(np.asarray(index), dtype=torch.long))  # type: ignore[attr-defined]
