"""Channel analysis (CASE): how many feature channels each class's correct predictions use."""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable
from typing import Any

import torch
from torch import Tensor, nn

from captum_contrast._model import (
    check_layer,
    explained_in_eval_mode,
    model_device,
)
from captum_contrast._validation import class_indices
from captum_contrast.scores import ClassScores


def active_channels(
    model: nn.Module,
    layer: nn.Module,
    data_loader: Iterable[Any],
    tau: float = 1e-3,
    num_classes: int | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    r"""Per-class mean number of active channels of ``layer`` (CASE, eq. 10).

    For each correctly predicted example, every channel of the layer's output is pooled
    spatially, :math:`\hat a_c = \mathrm{mean}_{ij} A_c(i, j)`, and counted as active when
    :math:`\hat a_c > \tau`; the counts are then averaged per true class. Few active channels
    mean a class relies on a sparse set of features, which CASE links to class-insensitive
    (shared) explanations.

    The model runs in eval mode under ``torch.no_grad`` (a model found in ``train()`` mode is
    switched, with a warning, and restored afterwards, as the methods do); a forward hook on
    ``layer`` reads its output, in this call's thread only, so other threads may use the
    model meanwhile. The hook is removed afterwards, even on error.

    Args:
        model: Classifier returning ``(B, C)`` logits; predictions are the argmax.
        layer: A submodule of ``model`` whose output has channels on dim 1 and spatial
            dims after it: ``(B, K, h, w)``, or ``(B, K)`` already pooled.
        data_loader: Yields ``(inputs, labels, ...)`` batches, labels ``(B,)`` class indices.
        tau: Activity threshold. The paper uses 1e-3 (default); the authors' script 0.1.
        num_classes: Length of the result; default the number of model outputs.
        device: Where to run; default the model's device.

    Returns:
        A float64 ``(num_classes,)`` CPU tensor: the mean count of active channels over the
        correctly predicted examples of each class, NaN for classes with none.

    Example:
        >>> import torch
        >>> from torch.utils.data import DataLoader
        >>> from captum_contrast.methods.analysis import active_channels
        >>> from captum_contrast.data.canvases import DigitCanvases
        >>> from captum_contrast.data.models import small_cnn
        >>> model = small_cnn(num_classes=10, width=4)
        >>> loader = DataLoader(DigitCanvases(n=32, split="val"), batch_size=16)
        >>> active_channels(model, model.features, loader).shape
        torch.Size([10])
    """
    check_layer(model, layer)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau):
        raise ValueError(f"`tau` must be a finite number, got {tau!r}")
    if num_classes is not None and (
        isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 1
    ):
        raise ValueError(f"`num_classes` must be a positive int or None, got {num_classes!r}")
    device = torch.device(device) if device is not None else model_device(model)
    outputs: list[Tensor] = []
    caller = threading.get_ident()

    def record(module: nn.Module, args: Any, output: Any) -> None:
        if threading.get_ident() == caller:
            outputs.append(output)

    handle = layer.register_forward_hook(record)
    totals: Tensor | None = None
    counts: Tensor | None = None
    try:
        with explained_in_eval_mode(model, "active_channels"), torch.no_grad():
            for batch in data_loader:
                if not isinstance(batch, (tuple, list)) or len(batch) < 2:
                    raise ValueError("`data_loader` must yield (inputs, labels, ...) batches")
                inputs, labels = batch[0], class_indices(batch[1], "labels").cpu()
                outputs.clear()
                logits = ClassScores()(model(inputs.to(device) if device is not None else inputs))
                activations = _layer_output(outputs)
                if totals is None or counts is None:
                    size = num_classes if num_classes is not None else logits.shape[1]
                    totals = torch.zeros(size, dtype=torch.float64)
                    counts = torch.zeros(size, dtype=torch.long)
                if labels.shape != (logits.shape[0],):
                    raise ValueError(
                        f"labels must be ({logits.shape[0]},), got {tuple(labels.shape)}"
                    )
                if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= len(totals)):
                    raise ValueError(f"labels outside [0, {len(totals) - 1}] in `data_loader`")
                pooled = activations.flatten(2).mean(2) if activations.dim() > 2 else activations
                active = (pooled > tau).sum(1).cpu()
                correct = logits.argmax(1).cpu() == labels
                totals.index_add_(0, labels[correct], active[correct].double())
                counts += torch.bincount(labels[correct], minlength=len(counts))
    finally:
        handle.remove()
    if totals is None or counts is None:
        raise ValueError("`data_loader` yielded no batches")
    return torch.where(counts > 0, totals / counts.clamp(min=1), float("nan"))


def _layer_output(outputs: list[Any]) -> Tensor:
    if len(outputs) != 1:
        raise ValueError(
            f"`layer` ran {len(outputs)} times in one forward pass; pick a module that runs once"
        )
    output = outputs[0]
    if not isinstance(output, Tensor) or output.dim() < 2:
        raise ValueError("`layer` must output a (B, K, ...) tensor")
    return output
