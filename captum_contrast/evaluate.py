"""The methods and metrics by name, and the engine of ``captum-contrast evaluate``.

One registry of attribution methods (name -> class and default arguments) serves the demo,
``explain`` and ``evaluate``. :func:`evaluate` runs chosen methods and metrics over a dataset
batch by batch; under ``torchrun`` every rank takes every ``world_size``-th batch, and rank 0
gathers the per-example scores, sorts them by dataset index and aggregates them, so the table
is the one a single process writes: the batches, hence every number, are the same.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from captum.attr import LayerGradCam
from torch import Tensor, nn
from torchvision.models import VisionTransformer
from tqdm.auto import tqdm

from captum_contrast import metrics as cm
from captum_contrast._base import LayerContrastAttribution, vit_reshape_transform
from captum_contrast.contrast_grad_cam import ContrastGradCAM
from captum_contrast.difference_salience import DifferenceSalience
from captum_contrast.minmax_cam import MinMaxCAM
from captum_contrast.normalize import normalize
from captum_contrast.opti_cam import OptiCAM


@dataclass(frozen=True)
class Method:
    """An attribution method: its display title, class (``None``: Fake-CAM) and defaults."""

    title: str
    cls: type | None
    kwargs: Mapping[str, Any] = field(default_factory=dict)


METHODS: dict[str, Method] = {
    "grad-cam": Method("Grad-CAM (Captum)", LayerGradCam, {"relu_attributions": True}),
    "contrast-grad-cam": Method("ContrastGradCAM", ContrastGradCAM, {"k": 1}),
    "minmax-cam": Method("MinMaxCAM", MinMaxCAM, {"variant": "minmax"}),
    "d-minmax-cam": Method("D-MinMaxCAM", MinMaxCAM, {"variant": "d-minmax"}),
    "opti-cam": Method("OptiCAM", OptiCAM, {"n_iter": 100}),
    "difference-salience": Method("DifferenceSalience", DifferenceSalience),
    "fake-cam": Method("Fake-CAM", None),
}
"""CLI name -> method. Every map is ``(B, 1, h, w)``, explained for one class per example."""


def runner_up(outputs: Tensor, targets: Tensor) -> Tensor:
    """Each example's highest-scoring class other than its target, ``(B,)``."""
    return outputs.scatter(1, targets.unsqueeze(1), float("-inf")).argmax(dim=1)


def explain(
    name: str,
    model: nn.Module,
    layer: nn.Module,
    images: Tensor,
    targets: Tensor,
    **overrides: Any,
) -> Tensor:
    """The map of method ``name`` for ``targets`` ``(B,)``, detached on the CPU.

    ``overrides`` replace the method's default ``attribute`` arguments. DifferenceSalience
    on a model with more than two outputs contrasts each target with its runner-up class
    unless ``contrast`` is given. Fake-CAM returns its map at input resolution.
    """
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; choose from {sorted(METHODS)}")
    method = METHODS[name]
    if method.cls is None:
        return torch.as_tensor(cm.fake_cam(model, images))
    kwargs = {**method.kwargs, **overrides}
    if method.cls is DifferenceSalience:
        # On two outputs the runner-up is the other class, so this is right for any model.
        kwargs.setdefault("contrast", "runner-up")
    maps = method.cls(model, layer, **_init_kwargs(name, method, model)).attribute(
        images, target=targets, **kwargs
    )
    return maps.detach().float().cpu()


def _init_kwargs(name: str, method: Method, model: nn.Module) -> dict[str, Any]:
    """Constructor extras: a torchvision ViT's tokens are laid out on their patch grid."""
    if not any(isinstance(module, VisionTransformer) for module in model.modules()):
        return {}
    if not issubclass(method.cls, LayerContrastAttribution):
        raise ValueError(
            f"method {name!r} cannot read vision-transformer tokens (Captum's LayerGradCam "
            "has no reshape_transform); use contrast-grad-cam, minmax-cam, opti-cam or "
            "difference-salience, which lay the tokens on their patch grid"
        )
    return {"reshape_transform": vit_reshape_transform}


def quantus_explain_func(
    name: str, layer: nn.Module, **overrides: Any
) -> Callable[..., np.ndarray]:
    """:func:`explain` as a Quantus ``explain_func``: numpy in, maps at input size out."""

    def explain_func(model: nn.Module, inputs: Any, targets: Any, **kwargs: Any) -> np.ndarray:
        device = next(model.parameters()).device
        images = torch.as_tensor(np.asarray(inputs), device=device)
        classes = torch.as_tensor(np.asarray(targets), device=device).long().reshape(-1)
        maps = explain(name, model, layer, images, classes, **overrides)
        return F.interpolate(
            maps, size=images.shape[-2:], mode="bilinear", align_corners=False
        ).numpy()

    return explain_func


def mass_on_object(maps: np.ndarray, object_masks: Tensor) -> np.ndarray:
    """Percentage of each map's mass on its object, ``100 * sum(s * mask) / sum(s)``.

    ``s`` is the map as the masking metrics see it (range-normalised at input resolution),
    the relevance mass accuracy (Arras et al.) of that map; NaN for a constant map.
    """
    upsampled = F.interpolate(
        torch.as_tensor(maps, dtype=torch.float32),
        size=tuple(object_masks.shape[-2:]),
        mode="bilinear",
        align_corners=False,
    )
    saliency = normalize(upsampled, "range").flatten(1).double()
    inside = (saliency * object_masks.reshape(len(maps), -1).double()).sum(dim=1)
    total = saliency.sum(dim=1)
    return torch.where(total > 0, 100 * inside / total.clamp(min=1e-12), np.nan).numpy()


@dataclass(frozen=True)
class Metric:
    """A metric: table column, and either a :mod:`captum_contrast.metrics` class or a
    function of the maps and the ground-truth masks."""

    column: str
    factory: Callable[..., cm.CAMMetric] | None = None
    multilabel_key: str | None = None  # "AD", "ARO", ...: aggregated per class (MinMax-CAM)
    needs_explain_func: bool = False
    with_masks: Callable[[np.ndarray, Tensor], np.ndarray] | None = None


METRICS: dict[str, Metric] = {
    "average-drop": Metric("AD ↓", cm.AverageDrop),
    "average-gain": Metric("AG ↑", cm.AverageGain),
    "average-increase": Metric("AI ↑", cm.AverageIncrease),
    "deletion": Metric("Deletion ↓", cm.Deletion),
    "insertion": Metric("Insertion ↑", cm.Insertion),
    "confidence-drop": Metric("Conf. drop ↑", cm.ConfidenceDrop),
    "class-sensitivity": Metric("Agreement % ↓", cm.ClassSensitivity, needs_explain_func=True),
    "ml-increase": Metric("IC ↑", cm.MultiLabelIncreaseInConfidence, "IC"),
    "ml-drop": Metric("AD ↓", cm.MultiLabelAverageDrop, "AD"),
    "ml-drop-others": Metric("ADO ↑", cm.AverageDropOfOthers, "ADO"),
    "ml-retention": Metric("AR ↑", cm.AverageRetention, "AR"),
    "ml-retention-others": Metric("ARO ↓", cm.AverageRetentionOfOthers, "ARO"),
    "mass-on-object": Metric("Mass on object % ↑", with_masks=mass_on_object),
}
"""CLI name -> metric. ``ml-*`` are MinMax-CAM's multi-label metrics (sigmoid, detections)."""

SINGLE_LABEL_METRICS = ("average-drop", "average-gain", "average-increase", "deletion", "insertion")
MULTI_LABEL_METRICS = (
    "ml-increase",
    "ml-drop",
    "ml-drop-others",
    "ml-retention",
    "ml-retention-others",
)


@dataclass(frozen=True)
class Record:
    """One explained example: dataset index, explained class, method, score per metric."""

    index: int
    label: int
    method: str
    scores: dict[str, float]


def batch_targets(
    model: nn.Module, images: Tensor, labels: Tensor, mode: str
) -> tuple[Tensor, Tensor]:
    """``(rows, classes)``: which images of the batch are explained, for which class.

    ``"label"``: each image for its label; ``"predicted"``: for its top class;
    ``"detections"``: once per label with ``sigmoid > 0.5`` (the multi-label protocol).
    """
    if mode == "label":
        return torch.arange(len(images)), labels.long()
    with torch.no_grad():
        outputs = model(images).cpu()
    if mode == "predicted":
        return torch.arange(len(images)), outputs.argmax(dim=1)
    if mode == "detections":
        rows, classes = torch.nonzero(torch.sigmoid(outputs) > 0.5, as_tuple=True)
        return rows, classes
    raise ValueError(f"`targets` must be 'label', 'predicted' or 'detections', got {mode!r}")


def evaluate(
    model: nn.Module,
    layer: nn.Module,
    dataset: Sequence[tuple[Tensor, Any]] | torch.utils.data.Dataset,
    methods: Sequence[str],
    metrics: Sequence[str],
    *,
    targets: str = "label",
    batch_size: int = 16,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> list[Record]:
    """Score every method with every metric on this rank's batches of ``dataset``.

    Items are ``(image, label, ...)`` with ``image`` a ``(C, H, W)`` tensor in the space where
    0 means removed. Batch ``b`` holds items ``[b * batch_size, (b + 1) * batch_size)`` and
    belongs to rank ``b % world_size``, so batches never depend on the number of ranks.
    """
    unknown = [m for m in methods if m not in METHODS] + [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown methods or metrics {unknown}")
    device = next(model.parameters()).device
    starts = range(rank * batch_size, len(dataset), world_size * batch_size)
    needs_masks = any(METRICS[m].with_masks is not None for m in metrics)
    records: list[Record] = []
    for start in tqdm(starts, desc="evaluate", disable=not progress or rank != 0):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images = torch.stack([item[0] for item in items]).to(device)
        labels = torch.as_tensor([int(item[1]) if np.ndim(item[1]) == 0 else -1 for item in items])
        rows, classes = batch_targets(model, images, labels, targets)
        if len(rows) == 0:
            continue
        object_masks = _object_masks(items, rows, classes, needs_masks)
        x_batch, y_batch = images[rows.to(device)], classes.to(device)
        for name in methods:
            kwargs = dict((method_kwargs or {}).get(name, {}))
            maps = explain(name, model, layer, x_batch, y_batch, **kwargs).numpy()
            scores = {
                metric: _score(
                    metric,
                    model,
                    x_batch,
                    y_batch,
                    maps,
                    object_masks,
                    quantus_explain_func(name, layer, **kwargs),
                )
                for metric in metrics
            }
            for row, (index, label) in enumerate(zip(rows.tolist(), classes.tolist(), strict=True)):
                records.append(
                    Record(
                        start + index,
                        label,
                        name,
                        {metric: float(scores[metric][row]) for metric in metrics},
                    )
                )
    return records


def _object_masks(items: list[Any], rows: Tensor, classes: Tensor, needed: bool) -> Tensor | None:
    """The ground-truth mask of each explained (image, class): ``(N, H, W)`` bool."""
    if not needed:
        return None
    if any(len(item) < 3 for item in items):
        raise ValueError("metric 'mass-on-object' needs a dataset whose items carry masks")
    masks = torch.stack([torch.as_tensor(item[2]) for item in items])  # (B, 1 or C, H, W)
    return masks[rows, 0] if masks.shape[1] == 1 else masks[rows, classes]


def _score(
    metric: str,
    model: nn.Module,
    x_batch: Tensor,
    y_batch: Tensor,
    maps: np.ndarray,
    object_masks: Tensor | None,
    explain_func: Callable[..., np.ndarray],
) -> list[float] | np.ndarray:
    spec = METRICS[metric]
    if spec.with_masks is not None:
        return spec.with_masks(maps, object_masks)
    return spec.factory(disable_warnings=True)(
        model=model,
        x_batch=x_batch.detach().cpu().numpy(),
        y_batch=y_batch.cpu().numpy(),
        a_batch=maps,
        explain_func=explain_func if spec.needs_explain_func else None,
        device=str(x_batch.device),
        batch_size=len(x_batch),
    )


def gather_records(records: list[Record], world_size: int) -> list[Record]:
    """Every rank's records on every rank (``all_gather_object``), sorted by example."""
    if world_size > 1:
        shards: list[list[Record] | None] = [None] * world_size
        dist.all_gather_object(shards, records)
        records = [record for shard in shards for record in (shard or [])]
    return sorted(records, key=lambda r: (r.index, r.label))


def summarise(
    records: Sequence[Record], methods: Sequence[str], metrics: Sequence[str]
) -> tuple[list[str], list[list[Any]]]:
    """Per-method aggregates as ``(header, rows)``; records must be sorted by example.

    Each metric is aggregated as its paper does: the mean over examples (NaN left out),
    except the multi-label metrics, macro-averaged over classes with F1- = HM(AD, ARO) and
    F1+ = HM(AR, ADO) per class (:func:`captum_contrast.metrics.multilabel_macro_scores`).
    """
    keys = {METRICS[m].multilabel_key: m for m in metrics if METRICS[m].multilabel_key}
    f1 = [
        name
        for name, needs in (("F1- ↓", ("AD", "ARO")), ("F1+ ↑", ("AR", "ADO")))
        if all(key in keys for key in needs)
    ]
    header = ["method", "examples"] + [METRICS[m].column for m in metrics] + f1
    rows = []
    for name in methods:
        mine = [r for r in records if r.method == name]
        values = {m: np.array([r.scores[m] for r in mine], dtype=np.float64) for m in metrics}
        row: list[Any] = [METHODS[name].title, len(mine)]
        macro = (
            cm.multilabel_macro_scores(
                {key: values[m] for key, m in keys.items()}, np.array([r.label for r in mine], int)
            )
            if keys and mine
            else {}
        )
        for metric in metrics:
            key = METRICS[metric].multilabel_key
            finite = values[metric][~np.isnan(values[metric])]
            row.append(
                macro.get(key, np.nan)
                if key
                else (float(finite.mean()) if finite.size else float("nan"))
            )
        row += [macro.get(name.split()[0], np.nan) for name in f1]
        rows.append(row)
    return header, rows


def write_tables(
    header: list[str],
    rows: list[list[Any]],
    out_dir: str | Path,
    stem: str = "metrics",
    records: Sequence[Record] = (),
) -> list[Path]:
    """Write ``<stem>.md`` (3 decimals), ``<stem>.csv`` (full precision) and, with
    ``records``, ``<stem>_per_example.csv``; returns the paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells = [[f"{v:.3f}" if isinstance(v, float) else str(v) for v in row] for row in rows]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in cells]
    paths = [out / f"{stem}.md", out / f"{stem}.csv"]
    paths[0].write_text("\n".join(lines) + "\n", encoding="utf-8")
    with paths[1].open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows(
            [header] + [[repr(v) if isinstance(v, float) else v for v in row] for row in rows]
        )
    if records:
        paths.append(out / f"{stem}_per_example.csv")
        metric_names = list(records[0].scores)
        with paths[2].open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["index", "label", "method"] + metric_names)
            for r in records:
                writer.writerow(
                    [r.index, r.label, r.method] + [repr(r.scores[m]) for m in metric_names]
                )
    return paths


def distributed_setup() -> tuple[int, int, torch.device, bool]:
    """``(rank, world_size, device, initialised_here)`` from torchrun's environment.

    A process group is created only when ``WORLD_SIZE > 1``: NCCL with one GPU per local
    rank when CUDA is available, Gloo on the CPU otherwise.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local_rank}" if cuda else "cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world_size <= 1:
        return 0, 1, device, False
    initialised_here = not dist.is_initialized()
    if initialised_here:
        dist.init_process_group("nccl" if cuda else "gloo")
    return dist.get_rank(), dist.get_world_size(), device, initialised_here


def run_evaluation(
    model: nn.Module,
    layer: nn.Module,
    dataset: Any,
    methods: Sequence[str],
    metrics: Sequence[str],
    out_dir: str | Path,
    *,
    targets: str = "label",
    batch_size: int = 16,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None = None,
    progress: bool = True,
) -> list[Path]:
    """:func:`evaluate` on every rank, then the tables written by rank 0 (its paths; ``[]``
    on other ranks). Runs single-process unless launched by ``torchrun``."""
    rank, world_size, device, initialised_here = distributed_setup()
    try:
        model = model.to(device).eval()
        records = evaluate(
            model,
            layer,
            dataset,
            methods,
            metrics,
            targets=targets,
            batch_size=batch_size,
            method_kwargs=method_kwargs,
            rank=rank,
            world_size=world_size,
            progress=progress,
        )
        records = gather_records(records, world_size)
        if rank != 0:
            return []
        header, rows = summarise(records, methods, metrics)
        return write_tables(header, rows, out_dir, records=records)
    finally:
        if initialised_here:
            dist.barrier()
            dist.destroy_process_group()
