"""The batch loop of ``captum-contrast evaluate``: explain, score, save, gather.

:func:`evaluate_batches` runs chosen methods and metrics over a dataset batch by batch.
Batch ``b`` belongs to rank ``b % world_size``; each finished batch is written to the run's
checkpoint at once (:mod:`captum_contrast.app.checkpoint`), and a resumed run loads the
batches already there instead of computing them. :func:`run_evaluation` gathers every
rank's batches on rank 0, sorts them, and writes the tables, curves, maps and report, so
the files are the ones a single uninterrupted process writes.

Per batch, the model runs once on the images (:func:`captum_contrast.app.explaining.explain_batch`:
targets, unmasked scores and every gradient method's maps), then once per input variant
each metric needs.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from captum_contrast._model import model_device
from captum_contrast.app import quantus_metrics
from captum_contrast.app.checkpoint import BatchResult, Checkpoint
from captum_contrast.app.distributed import Session
from captum_contrast.app.explaining import explain_batch, select_targets
from captum_contrast.app.progress import ForwardCounter, Progress, closing_line
from captum_contrast.app.registry import METHODS, METRICS, check_names, explain_func
from captum_contrast.app.scoring import Batch, object_masks, score_method
from captum_contrast.app.tables import Record


def batch_targets(
    model: nn.Module, images: Tensor, labels: Tensor, mode: str
) -> tuple[Tensor, Tensor]:
    """``(rows, classes)``: which images of the batch are explained, for which class.

    ``"label"``: each image for its label; ``"predicted"``: for its top class;
    ``"detections"``: once per label with ``sigmoid > 0.5`` (the multi-label protocol).
    (The evaluation reads them from its one forward, :func:`explain_batch`.)
    """
    if mode == "label":
        return select_targets(torch.zeros(len(images), 0), labels, mode)
    with torch.no_grad():
        outputs = model(images)
    return select_targets(outputs, labels, mode)


def check_metrics(metrics: Sequence[str], dataset: Any) -> None:
    """Raise before any work for an unknown name or a metric the data cannot feed."""
    own = [m for m in metrics if not m.startswith(quantus_metrics.PREFIX)]
    check_names([], own)
    needing_masks = [m for m in own if METRICS[m].needs_object_masks]
    needing_masks += [
        m
        for m in metrics
        if m.startswith(quantus_metrics.PREFIX) and quantus_metrics.parse(m).needs_object_masks
    ]
    if needing_masks and len(dataset) and len(dataset[0]) < 3:
        raise ValueError(
            f"metrics {needing_masks} need a dataset whose items carry object masks "
            f"(image, label, masks); this dataset's items have {len(dataset[0])} fields"
        )


def evaluate_batches(
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
    checkpoint: Checkpoint | None = None,
) -> list[BatchResult]:
    """Every batch of this rank, computed or loaded from ``checkpoint``.

    Items are ``(image, label, ...)`` with ``image`` a ``(C, H, W)`` tensor in the space where
    0 means removed. Batch ``b`` holds items ``[b * batch_size, (b + 1) * batch_size)`` and
    belongs to rank ``b % world_size``, so batches never depend on the number of ranks.
    """
    check_names(methods, [])
    check_metrics(metrics, dataset)
    batches = range(rank, -(-len(dataset) // batch_size), world_size)
    size = {b: min(batch_size, len(dataset) - b * batch_size) for b in batches}
    done = {b: checkpoint.load(b) for b in batches} if checkpoint else {}  # None: to do
    results = [result for result in done.values() if result is not None]
    todo = [b for b in batches if done.get(b) is None]
    bar = Progress(sum(size.values()), sum(size[r.batch] for r in results), enabled=progress)
    with bar, ForwardCounter(model) as counter:
        for b in todo:
            start = b * batch_size
            items = [dataset[i] for i in range(start, start + size[b])]
            counter.count = 0
            result = _run_batch(
                model, layer, items, start, methods, metrics, targets, method_kwargs
            )
            result.batch, result.forwards = b, counter.count
            if checkpoint is not None:
                checkpoint.save(result)
            results.append(result)
            bar.update(size[b])
    return sorted(results, key=lambda r: r.batch)


def evaluate(
    model: nn.Module,
    layer: nn.Module,
    dataset: Any,
    methods: Sequence[str],
    metrics: Sequence[str],
    **options: Any,
) -> list[Record]:
    """The records of :func:`evaluate_batches`, in batch order (see its arguments)."""
    return [
        record
        for result in evaluate_batches(model, layer, dataset, methods, metrics, **options)
        for record in result.records
    ]


def _run_batch(
    model: nn.Module,
    layer: nn.Module,
    items: list[Any],
    start: int,
    methods: Sequence[str],
    metrics: Sequence[str],
    targets: str,
    method_kwargs: Mapping[str, Mapping[str, Any]] | None,
) -> BatchResult:
    device = model_device(model)
    images = torch.stack([item[0] for item in items]).to(device)
    labels = torch.as_tensor([int(item[1]) if np.ndim(item[1]) == 0 else -1 for item in items])
    explained = explain_batch(model, layer, images, labels, targets, methods, method_kwargs)
    rows, classes = explained.rows, explained.classes
    result = BatchResult(0, [], seconds=dict(explained.seconds), images=len(items))
    if len(rows) == 0:
        return result
    # The metrics read numpy arrays: converted once per batch, not per metric and method.
    batch = Batch(
        model=model,
        x=images[rows.to(device)].detach().cpu().numpy(),
        y=classes.numpy(),
        original_scores=explained.outputs[rows.to(explained.outputs.device)].cpu().numpy(),
        object_masks=object_masks(items, rows, classes),
        device=str(images.device),
        layer=layer,
        layer_name=next(name for name, module in model.named_modules() if module is layer),
    )
    index = (start + rows).tolist()
    for name in methods:
        began = time.perf_counter()
        maps = explained.maps[name].numpy()
        if METHODS[name].cls is not None:  # Fake-CAM's map is fixed: not kept
            result.maps[name] = maps[:, 0].astype(np.float32)
        kwargs = dict((method_kwargs or {}).get(name, {}))

        def explain(where: Any, name: str = name, kwargs: dict = kwargs) -> Callable:
            return explain_func(name, model, where, **kwargs)

        scores, curves = score_method(batch, maps, metrics, explain)
        for metric, (fractions, values) in curves.items():
            result.curves[(name, metric)] = values
            result.curves[("fractions", metric)] = fractions[None]  # not a method name
        result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - began
        for row, (i, label) in enumerate(zip(index, classes.tolist(), strict=True)):
            scores_of_row = {m: float(scores[m][row]) for m in metrics}
            result.records.append(Record(i, label, name, scores_of_row))
    return result


def gather(results: list[BatchResult], session: Session) -> list[BatchResult]:
    """Every rank's batch results on every rank, in batch order."""
    shards = session.all_gather(results)
    return sorted((r for shard in shards for r in shard), key=lambda r: r.batch)


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
    resume: bool = False,
    baseline: str | None = None,
    save_maps: bool = False,
    gallery_metric: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> list[Path]:
    """:func:`evaluate_batches` on this rank's batches, then every output written by rank 0.

    ``session`` (from :func:`captum_contrast.app.distributed.session`) says which batches
    are this rank's; ``None`` runs single-process on the model's device. Finished batches
    go to ``<out_dir>/checkpoint/`` as they complete; ``resume`` continues from them (the
    same settings required). ``settings`` (e.g. the command line's model and data) join
    the checkpoint's record of what the numbers depend on and the report. Returns the
    paths written, ``metrics.md`` first (``[]`` on other ranks).
    """
    session = session or Session(device=model_device(model) or torch.device("cpu"))
    check_names(methods, [])
    check_metrics(metrics, dataset)
    if baseline is not None and baseline not in methods:
        raise ValueError(f"--baseline {baseline!r} is not among the methods {list(methods)}")
    if gallery_metric is not None and gallery_metric not in metrics:
        raise ValueError(f"--gallery-metric {gallery_metric!r} is not among {list(metrics)}")
    model = model.to(session.device).eval()
    recorded = {
        "methods": list(methods),
        "metrics": list(metrics),
        "targets": targets,
        "batch_size": batch_size,
        "examples": len(dataset),
        "method_kwargs": {k: dict(v) for k, v in (method_kwargs or {}).items()},
        **dict(settings or {}),
    }
    Checkpoint.verify(out_dir, recorded, resume=resume)  # on every rank, before any waits
    if session.is_main:
        checkpoint = Checkpoint(out_dir, recorded, resume=resume)
    session.barrier()
    if not session.is_main:
        checkpoint = Checkpoint(out_dir, recorded, resume=resume, writer=False)
    began = time.perf_counter()
    results = evaluate_batches(
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
        progress=progress and session.is_main,
        checkpoint=checkpoint,
    )
    seconds = time.perf_counter() - began
    results = gather(results, session)
    if not session.is_main:
        return []
    from captum_contrast.app.outputs import write_outputs

    computed = [r for r in results if not r.loaded]
    images, new = sum(r.images for r in results), sum(r.images for r in computed)
    forwards = sum(r.forwards for r in computed)
    timing = {
        "wall seconds (this run, rank 0)": round(seconds, 2),
        "images": images,
        "images computed by this run": new,
        "images per second": round(new / seconds, 2) if seconds > 0 else "–",
        "image-forwards of the model": forwards,
        "ranks": session.world_size,
    }
    paths = write_outputs(
        results,
        methods,
        metrics,
        out_dir,
        dataset=dataset,
        baseline=baseline,
        save_maps=save_maps,
        gallery_metric=gallery_metric,
        settings=recorded,
        timing=timing,
    )
    print(closing_line(images, new, seconds, forwards, Path(out_dir)))
    return paths
