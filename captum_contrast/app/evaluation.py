"""The batch loop of ``captum-contrast evaluate``: explain, score, gather.

:func:`evaluate` runs chosen methods and metrics over a dataset batch by batch. Batch ``b``
belongs to rank ``b % world_size``; :func:`run_evaluation` gathers every rank's per-example
records on rank 0, sorts them by dataset index and writes the tables, so the table is the
one a single process writes: the batches, hence every number, are the same.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_contrast._model import model_device
from captum_contrast.app.distributed import Session
from captum_contrast.app.registry import METRICS, check_names, explain, explain_func
from captum_contrast.app.tables import Record, summarise, write_tables
from captum_contrast.metrics import masking_scores
from captum_contrast.metrics.shared import MULTI_LABEL, SINGLE_LABEL


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
    check_names(methods, metrics)
    device = model_device(model)
    starts = range(rank * batch_size, len(dataset), world_size * batch_size)
    needing_masks = [m for m in metrics if METRICS[m].needs_object_masks]
    if needing_masks and len(dataset) and len(dataset[0]) < 3:
        # Checked before the first batch so a long run does not fail after its first explanation.
        raise ValueError(
            f"metrics {needing_masks} need a dataset whose items carry object masks "
            f"(image, label, masks); this dataset's items have {len(dataset[0])} fields"
        )
    records: list[Record] = []
    for start in tqdm(starts, desc="evaluate", disable=not progress or rank != 0):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        images = torch.stack([item[0] for item in items]).to(device)
        labels = torch.as_tensor([int(item[1]) if np.ndim(item[1]) == 0 else -1 for item in items])
        rows, classes = batch_targets(model, images, labels, targets)
        if len(rows) == 0:
            continue
        object_masks = _object_masks(items, rows, classes, bool(needing_masks))
        x_batch, y_batch = images[rows.to(device)], classes.to(device)
        # The metrics read numpy arrays: converted once per batch, not per metric and method.
        x_numpy, y_numpy = x_batch.detach().cpu().numpy(), classes.numpy()
        device_name = str(x_batch.device)
        for name in methods:
            kwargs = dict((method_kwargs or {}).get(name, {}))
            maps = explain(name, model, layer, x_batch, y_batch, **kwargs).numpy()
            scores = _shared_scores(metrics, model, x_numpy, y_numpy, maps, device_name)
            for metric in metrics:
                if metric not in scores:
                    scores[metric] = _score(
                        metric,
                        model,
                        x_numpy,
                        y_numpy,
                        maps,
                        object_masks,
                        explain_func(name, model, layer, **kwargs),
                        device_name,
                    )
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
        raise ValueError("every dataset item must carry object masks: (image, label, masks)")
    masks = torch.stack([torch.as_tensor(item[2]) for item in items])  # (B, 1 or C, H, W)
    return masks[rows, 0] if masks.shape[1] == 1 else masks[rows, classes]


def _shared_scores(
    metrics: Sequence[str],
    model: nn.Module,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    maps: np.ndarray,
    device: str,
) -> dict[str, Any]:
    """The masking metrics asked for, two or more of a family, from shared forwards.

    :func:`captum_contrast.metrics.masking_scores` gives the metric classes' own numbers,
    from one forward per input variant instead of two per metric.
    """
    scores: dict[str, Any] = {}
    for multilabel, family in ((False, SINGLE_LABEL), (True, MULTI_LABEL)):
        names = {cls.cli_name: cls.short_name for cls in family}
        asked = [metric for metric in metrics if metric in names]
        if len(asked) < 2:
            continue  # one metric alone costs the same through its class
        shared = masking_scores(
            model,
            x_batch,
            y_batch,
            maps,
            multilabel=multilabel,
            device=device,
            batch_size=len(x_batch),
        )
        scores.update({metric: shared[names[metric]] for metric in asked})
    return scores


def _score(
    metric: str,
    model: nn.Module,
    x_batch: np.ndarray,
    y_batch: np.ndarray,
    maps: np.ndarray,
    object_masks: Tensor | None,
    explain_func: Callable[..., np.ndarray],
    device: str,
) -> list[float]:
    metric_class = METRICS[metric]
    return metric_class(disable_warnings=True)(
        model=model,
        x_batch=x_batch,
        y_batch=y_batch,
        a_batch=maps,
        s_batch=None if object_masks is None else object_masks[:, None].numpy(),
        explain_func=explain_func if metric_class.needs_explain_func else None,
        device=device,
        batch_size=len(x_batch),
    )


def gather_records(records: list[Record], session: Session) -> list[Record]:
    """Every rank's records on every rank, sorted by example."""
    shards = session.all_gather(records)
    return sorted(
        (record for shard in shards for record in shard), key=lambda r: (r.index, r.label)
    )


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
    session: Session | None = None,
) -> list[Path]:
    """:func:`evaluate` on this rank's batches, then the tables written by rank 0.

    ``session`` (from :func:`captum_contrast.app.distributed.session`) says which batches
    are this rank's; ``None`` runs single-process on the model's device. Returns the paths
    written (``[]`` on other ranks).
    """
    session = session or Session(device=model_device(model) or torch.device("cpu"))
    model = model.to(session.device).eval()
    records = evaluate(
        model,
        layer,
        dataset,
        methods,
        metrics,
        targets=targets,
        batch_size=batch_size,
        method_kwargs=method_kwargs,
        rank=session.rank,
        world_size=session.world_size,
        progress=progress,
    )
    records = gather_records(records, session)
    if not session.is_main:
        return []
    header, rows = summarise(records, methods, metrics)
    return write_tables(header, rows, out_dir, records=records)
