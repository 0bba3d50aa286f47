"""Everything rank 0 writes from the gathered batches: tables, curves, maps, report.

``metrics.md`` / ``metrics.csv`` (aggregates with 95% bootstrap intervals, paired tests
against the baseline method), ``metrics_per_example.csv``, ``metrics_tests.csv``;
``curves.csv`` and ``curves.png`` when insertion or deletion ran; ``maps.npz`` with
``--save-maps``; ``report.html`` always.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from captum_contrast.app.checkpoint import BatchResult
from captum_contrast.app.registry import METHODS
from captum_contrast.app.report import GALLERY_SIZE, ReportData, write_report
from captum_contrast.app.tables import (
    intervals,
    metric_column,
    paired_tests,
    summarise,
    write_curves,
    write_tables,
)
from captum_contrast.metrics import fake_cam
from captum_contrast.metrics.stats import bootstrap_mean_curve

MAPS_FILE = "maps.npz"


def write_outputs(
    results: Sequence[BatchResult],
    methods: Sequence[str],
    metrics: Sequence[str],
    out_dir: str | Path,
    *,
    dataset: Any,
    baseline: str | None = None,
    save_maps: bool = False,
    gallery_metric: str | None = None,
    settings: Mapping[str, Any] | None = None,
    timing: Mapping[str, Any] | None = None,
) -> list[Path]:
    """Write every output file of a run from its batches (sorted by batch); the paths."""
    out = Path(out_dir)
    records = sorted(
        (record for result in results for record in result.records),
        key=lambda r: (r.index, r.label),
    )
    header, rows = summarise(records, methods, metrics)
    bounds = intervals(records, methods, metrics)
    baseline = baseline or methods[0]
    tests = None
    if len(methods) > 1:
        test_header, test_rows = paired_tests(records, methods, metrics, baseline)
        tests = (test_header, test_rows, METHODS[baseline].title)
    paths = write_tables(header, rows, out, records=records, bounds=bounds, tests=tests)
    curves = mean_curves(results, methods)
    curves_png = None
    if curves:
        paths.append(write_curves(curves, out))
        curves_png = plot_curves(curves)
        paths.append(out / "curves.png")
        paths[-1].write_bytes(curves_png)
    if save_maps:
        paths.append(save_maps_file(results, methods, out / MAPS_FILE))
    metric = gallery_metric or metrics[0]
    report = ReportData(
        settings=dict(settings or {}),
        timing=dict(timing or {}),
        table=paths[0].read_text(encoding="utf-8").splitlines(),
        curves_png=curves_png,
        galleries=galleries(results, methods, metrics, metric, dataset),
        gallery_metric=metric_column(metric),
        costs=costs(results, methods),
    )
    paths.append(write_report(report, out / "report.html"))
    return paths


def mean_curves(
    results: Sequence[BatchResult], methods: Sequence[str]
) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per (method title, metric) the fractions, mean curve and its bootstrap interval."""
    found: dict[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
    metrics = sorted({m for r in results for (name, m) in r.curves if name == "fractions"})
    for metric in metrics:
        fractions = next(r.curves[("fractions", metric)][0] for r in results if r.curves)
        for method in methods:
            parts = [r.curves[(method, metric)] for r in results if (method, metric) in r.curves]
            if parts:
                mean, low, high = bootstrap_mean_curve(np.concatenate(parts))
                found[(METHODS[method].title, metric)] = (fractions, mean, low, high)
    return found


def plot_curves(
    curves: Mapping[tuple[str, str], tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]],
) -> bytes:
    """One panel per metric: every method's mean curve over a shaded 95% interval; PNG."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    metrics = sorted({metric for _, metric in curves})
    figure, axes = plt.subplots(1, len(metrics), figsize=(5.5 * len(metrics), 4), squeeze=False)
    for axis, metric in zip(axes[0], metrics, strict=True):
        for (title, name), (fractions, mean, low, high) in curves.items():
            if name != metric:
                continue
            (line,) = axis.plot(fractions, mean, label=title)
            axis.fill_between(fractions, low, high, color=line.get_color(), alpha=0.2)
        axis.set(title=metric, xlabel="fraction of pixels switched", ylabel="class probability")
        axis.legend(fontsize=8)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=90)
    plt.close(figure)
    return buffer.getvalue()


def save_maps_file(results: Sequence[BatchResult], methods: Sequence[str], path: Path) -> Path:
    """``maps.npz``: every method's maps at layer resolution, one row per explained example.

    Arrays: ``index`` (N,) dataset index, ``target`` (N,) explained class, ``methods`` the
    method names, and one ``(N, h, w)`` float32 array per method under its name (Fake-CAM,
    whose map is fixed, is not stored). Row ``i`` of every array is the same example.
    Compressed; plain NumPy, no pickle: ``numpy.load(path)`` reads it.
    """
    kept = [m for m in methods if any(m in r.maps for r in results)]
    first = [r.records[: len(r.records) // max(1, len(methods))] for r in results]
    arrays: dict[str, np.ndarray] = {
        "index": np.array([x.index for rows in first for x in rows], dtype=np.int64),
        "target": np.array([x.label for rows in first for x in rows], dtype=np.int64),
        "methods": np.array(kept, dtype=str),
    }
    for method in kept:
        arrays[method] = np.concatenate([r.maps[method] for r in results if method in r.maps])
    with path.open("wb") as handle:
        np.savez_compressed(handle, **arrays)
    return path


def galleries(
    results: Sequence[BatchResult],
    methods: Sequence[str],
    metrics: Sequence[str],
    metric: str,
    dataset: Any,
) -> dict[str, list[tuple[str, list[dict[str, Any]]]]]:
    """Per method, its ``GALLERY_SIZE`` best and worst examples by ``metric``."""
    higher = metric_column(metric).endswith("↑")
    out = {}
    for method in methods:
        rows = [
            (result, position, record)
            for result in results
            for position, record in enumerate(r for r in result.records if r.method == method)
        ]
        rows = [row for row in rows if not np.isnan(row[2].scores[metric])]
        rows.sort(key=lambda row: row[2].scores[metric], reverse=higher)
        groups = []
        for kind, chosen in (("best", rows[:GALLERY_SIZE]), ("worst", rows[::-1][:GALLERY_SIZE])):
            examples = []
            for result, position, record in chosen:
                image = np.asarray(dataset[record.index][0], dtype=np.float32)
                saliency = (
                    result.maps[method][position]
                    if method in result.maps
                    else fake_cam(None, image[None])[0, 0]
                )
                examples.append(
                    {
                        "image": image,
                        "map": saliency,
                        "index": record.index,
                        "target": record.label,
                        "scores": {metric_column(m): record.scores[m] for m in metrics},
                    }
                )
            groups.append((kind, examples))
        out[METHODS[method].title] = groups
    return out


def costs(results: Sequence[BatchResult], methods: Sequence[str]) -> dict[str, str]:
    """Per method: seconds per image of its own stage, beside the shared forward/backward."""
    computed = [r for r in results if not r.loaded]
    images = sum(r.images for r in computed)
    if not images:
        return {METHODS[m].title: "all batches read from the checkpoint" for m in methods}
    shared = sum(r.seconds.get("shared", 0.0) for r in computed) / images
    return {
        METHODS[m].title: (
            f"{1000 * sum(r.seconds.get(m, 0.0) for r in computed) / images:.1f} ms per image "
            f"(its maps if not from the shared pass, and its scoring), plus the shared forward "
            f"and backward of every gradient method: {1000 * shared:.1f} ms per image"
        )
        for m in methods
    }
