"""Every method's maps for one batch from one hooked forward and one batched backward.

:func:`explain_batch` runs the model once on the batch through
:func:`captum_contrast._engine.forward_layer`; that forward gives the explained targets,
the unmasked class scores the masking metrics compare with, and the activations every
gradient method needs. Each gradient method contributes its
:class:`~captum_contrast.methods.GradientPlan` and :func:`~captum_contrast.methods.run_plans`
takes one batched backward for all of them. Captum's Grad-CAM has no plan, so it gets one
here (:func:`grad_cam_plan`, equal to ``LayerGradCam`` to float rounding). Multi-label
detections of one image share its forward and backward: the ``j``-th detection of every
image is one more set of scores (one more plan), not one more copy of the image.

OptiCAM runs its own forward (its ``attribute`` has no plan; its cost is its ``n_iter``
masked forwards anyway); Fake-CAM runs none.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchvision.models import VisionTransformer

from captum_contrast._engine import LayerForward, forward_layer, spatial_mean, weighted_activations
from captum_contrast.app.registry import METHODS, explain
from captum_contrast.methods import GradientPlan, run_plans
from captum_contrast.transforms import grid_fits, vit_reshape_transform

GRADIENT_METHODS: tuple[str, ...] = ("grad-cam", "contrast-grad-cam", "minmax-cam", "d-minmax-cam")
GRADIENT_METHODS += ("difference-salience", "finer-cam")


@dataclass
class Explained:
    """One batch explained: which (image, class) rows, the maps, the unmasked logits."""

    rows: Tensor
    """``(R,)`` the image of each explained row."""
    classes: Tensor
    """``(R,)`` the class each row explains."""
    outputs: Tensor
    """``(B, C)`` class scores of the unmasked images, from the one hooked forward."""
    maps: dict[str, Tensor]
    """Per method ``(R, 1, h, w)`` float32 on the CPU."""
    seconds: dict[str, float]
    """Wall time: ``"shared"`` (forward and backward) and each method run on its own."""


def grad_cam_plan(forward: LayerForward, targets: Tensor, relu_attributions: bool) -> GradientPlan:
    """Captum's ``LayerGradCam`` as a plan: the target's one-hot score, Grad-CAM's finish.

    Example:
        >>> import torch
        >>> from captum.attr import LayerGradCam
        >>> from torchvision.models import resnet18
        >>> from captum_contrast._engine import forward_layer
        >>> from captum_contrast.app.explaining import grad_cam_plan
        >>> from captum_contrast.methods import run_plans
        >>> model = resnet18(weights=None, num_classes=4).eval()
        >>> x, target = torch.rand(2, 3, 64, 64), torch.tensor([1, 3])
        >>> forward = forward_layer(model, model.layer4, x)
        >>> (ours,) = run_plans(forward, [grad_cam_plan(forward, target, True)])
        >>> captum = LayerGradCam(model, model.layer4).attribute(x, target, relu_attributions=True)
        >>> torch.allclose(ours, captum, atol=1e-6)
        True
    """
    weights = F.one_hot(targets.to(forward.outputs.device), forward.outputs.shape[1])
    weights = weights.to(forward.outputs.dtype).unsqueeze(0)

    def finish(gradients: Tensor | None) -> Tensor:
        assert gradients is not None
        maps = weighted_activations(
            spatial_mean(gradients[0], forward.spatial_rank), forward.activations
        )
        return F.relu(maps) if relu_attributions else maps

    return GradientPlan(weights, finish)


def select_targets(outputs: Tensor, labels: Tensor, mode: str) -> tuple[Tensor, Tensor]:
    """``(rows, classes)`` from the forward's class scores ``(B, C)``.

    ``"label"``: each image for its label; ``"predicted"``: for its top class;
    ``"detections"``: once per class with ``sigmoid > 0.5`` (the multi-label protocol).

    Example:
        >>> import torch
        >>> from captum_contrast.app.explaining import select_targets
        >>> outputs = torch.tensor([[2.0, -2.0, 1.0], [2.0, -2.0, 1.0]])
        >>> [t.tolist() for t in select_targets(outputs, torch.tensor([1, 2]), "detections")]
        [[0, 0, 1, 1], [0, 2, 0, 2]]
    """
    if mode == "label":
        return torch.arange(len(labels)), labels.long().cpu()
    outputs = outputs.detach().cpu()
    if mode == "predicted":
        return torch.arange(len(outputs)), outputs.argmax(dim=1)
    if mode == "detections":
        rows, classes = torch.nonzero(torch.sigmoid(outputs) > 0.5, as_tuple=True)
        return rows, classes
    raise ValueError(f"`targets` must be 'label', 'predicted' or 'detections', got {mode!r}")


def explain_batch(
    model: nn.Module,
    layer: nn.Module,
    images: Tensor,
    labels: Tensor,
    mode: str,
    methods: Sequence[str],
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
) -> Explained:
    """Every method's maps for the batch's explained rows (see the module docstring)."""
    start = time.perf_counter()
    vit = any(isinstance(module, VisionTransformer) for module in model.modules())
    forward = forward_layer(
        model, layer, images, reshape_transform=vit_reshape_transform if vit else None
    )
    rows, classes = select_targets(forward.outputs, labels, mode)
    # Slot j holds the j-th explained class of every image (rows are sorted by image); an
    # image with fewer classes fills the slot with its first one, and that map is dropped.
    counts = torch.bincount(rows, minlength=len(images))
    slot_of_row = torch.arange(len(rows)) - torch.cumsum(counts, 0)[rows] + counts[rows]
    slots = int(counts.max()) if len(rows) else 0
    first_of_image = torch.cumsum(counts, 0) - counts  # where each image's classes start
    gradient = [name for name in methods if name in GRADIENT_METHODS]
    plans, owners = [], []
    for slot in range(slots):
        targets = torch.zeros(len(images), dtype=torch.long)
        explained = counts > 0
        targets[explained] = classes[first_of_image[explained]]
        chosen = slot_of_row == slot
        targets[rows[chosen]] = classes[chosen]
        device_targets = targets.to(forward.outputs.device)
        for name in gradient:
            plans.append(_plan(name, model, layer, forward, device_targets, vit, method_kwargs))
            owners.append((name, slot))
    finished = run_plans(forward, plans) if plans else []
    by_slot = {key: maps for key, maps in zip(owners, finished, strict=True)}
    maps: dict[str, Tensor] = {}
    for name in gradient:
        if not slots:
            maps[name] = torch.zeros(0, 1, *forward.activations.shape[2:])
            continue
        stacked = torch.stack([by_slot[(name, slot)] for slot in range(slots)])  # (S, B, 1, *grid)
        maps[name] = _checked(name, stacked[slot_of_row, rows], images).detach().float().cpu()
    seconds = {"shared": time.perf_counter() - start}
    for name in methods:
        if name in gradient:
            continue
        start = time.perf_counter()
        kwargs = dict((method_kwargs or {}).get(name, {}))
        device_rows = rows.to(images.device)
        maps[name] = explain(
            name, model, layer, images[device_rows], classes.to(images.device), **kwargs
        )
        seconds[name] = time.perf_counter() - start
    return Explained(rows, classes, forward.outputs, maps, seconds)


def _plan(
    name: str,
    model: nn.Module,
    layer: nn.Module,
    forward: LayerForward,
    targets: Tensor,
    vit: bool,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None,
) -> GradientPlan:
    method = METHODS[name]
    kwargs = {**method.kwargs, **(method_kwargs or {}).get(name, {})}
    if method.cls is not None and name == "grad-cam":
        if vit:
            raise ValueError(
                f"method {name!r} cannot read vision-transformer tokens (Captum's LayerGradCam "
                "has no reshape_transform); use contrast-grad-cam, minmax-cam, opti-cam or "
                "difference-salience, which lay the tokens on their patch grid"
            )
        return grad_cam_plan(forward, targets, bool(kwargs.get("relu_attributions", False)))
    init = {"reshape_transform": vit_reshape_transform} if vit else {}
    assert method.cls is not None  # baselines have no plan; grad-cam's is built above
    return method.cls(model, layer, **init).plan(forward, targets, **kwargs)


def _checked(name: str, maps: Tensor, images: Tensor) -> Tensor:
    if not grid_fits(tuple(maps.shape[2:]), tuple(images.shape[2:])):
        raise ValueError(
            f"{METHODS[name].title} returned {tuple(maps.shape)}, not maps on the layer's grid"
        )
    return maps
