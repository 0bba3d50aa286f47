"""Average Drop + Gain + Increase: the batched Quantus metrics against a per-example loop.

Quantus has no Average Drop/Gain/Increase of its own, so the baseline is the obvious
implementation: two forwards (x and s*x) per example per metric. The metrics do one
batched forward per input variant per Quantus batch; the forward counts are in the notes.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from _timing import Section, environment, time_interleaved
from torch import nn

from captum_contrast.metrics import AverageDrop, AverageGain, AverageIncrease, masking_scores
from captum_contrast.normalization import normalize


def small_cnn(num_classes: int = 10) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 32, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(32, 64, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.Conv2d(64, 128, 3, padding=1, stride=2),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(128, num_classes),
    ).eval()


def _loop_scores(
    model: nn.Module, x: np.ndarray, y: np.ndarray, maps: np.ndarray
) -> list[np.ndarray]:
    """AD, AG, AI one example at a time, each metric on its own (two forwards each)."""
    results = []
    for metric in ("drop", "gain", "increase"):
        scores = np.empty(len(x))
        for i in range(len(x)):
            image = torch.from_numpy(x[i : i + 1])
            mask = F.interpolate(
                torch.from_numpy(maps[i : i + 1]).float(),
                size=image.shape[-2:],
                mode="bilinear",
                align_corners=False,
            )
            mask = normalize(mask, "range")
            with torch.no_grad():
                p = torch.softmax(model(image).double(), dim=1)[0, y[i]].item()
                o = torch.softmax(model(image * mask).double(), dim=1)[0, y[i]].item()
            if metric == "drop":
                scores[i] = 100 * max(p - o, 0.0) / p
            elif metric == "gain":
                scores[i] = 100 * max(o - p, 0.0) / (1 - p + 1e-8)
            else:
                scores[i] = 100.0 * (p < o)
        results.append(scores)
    return results


def _metric_scores(
    model: nn.Module, x: np.ndarray, y: np.ndarray, maps: np.ndarray, batch_size: int
) -> list[np.ndarray]:
    return [
        np.asarray(metric()(model, x, y, a_batch=maps, channel_first=True, batch_size=batch_size))
        for metric in (AverageDrop, AverageGain, AverageIncrease)
    ]


def _two_forwards(model: nn.Module, x: np.ndarray, maps: np.ndarray) -> None:
    """The floor: one batched forward of x and one of s*x, with the mask built as the metrics do."""
    image = torch.from_numpy(x)
    mask = F.interpolate(
        torch.from_numpy(maps).float(), size=image.shape[-2:], mode="bilinear", align_corners=False
    )
    with torch.no_grad():
        model(image)
        model(image * normalize(mask, "range"))


def _count_forwards(model: nn.Module, run) -> int:
    calls = [0]
    handle = model.register_forward_hook(lambda *args: calls.__setitem__(0, calls[0] + 1))
    try:
        run()
    finally:
        handle.remove()
    return calls[0]


def run(repeats: int, quick: bool) -> list[Section]:
    model = small_cnn()
    count, size = (8, 16) if quick else (256, 32)
    rng = np.random.default_rng(0)
    x = rng.random((count, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        y = model(torch.from_numpy(x)).argmax(dim=1).numpy()
    maps = rng.random((count, 1, size // 4, size // 4)).astype(np.float32)  # layer resolution

    batched, looped = _metric_scores(model, x, y, maps, count), _loop_scores(model, x, y, maps)
    for mine, reference in zip(batched, looped, strict=True):
        np.testing.assert_allclose(mine, reference, atol=1e-3)

    candidates = {
        "per-example loop": lambda: _loop_scores(model, x, y, maps),
        f"metrics, batch_size={count}": lambda: _metric_scores(model, x, y, maps, count),
        "metrics, batch_size=64 (Quantus default)": lambda: _metric_scores(model, x, y, maps, 64),
    }
    forwards = {name: _count_forwards(model, run) for name, run in candidates.items()}
    medians = time_interleaved(candidates, repeats)
    section = Section(
        title="Masking metrics: AverageDrop + AverageGain + AverageIncrease",
        baseline="per-example loop",
        setup=f"{count} examples, 3x{size}x{size}, small 3-conv CNN (10 classes), maps at "
        f"{size // 4}x{size // 4} upsampled bilinearly; CPU; {environment()}.",
        rows=[(name, medians[name], f"{forwards[name]} model forwards") for name in candidates],
        extra="Each metric does one batched forward of x and one of s*x per Quantus batch; "
        "scores agree with the loop to 1e-3 (percent).",
    )
    return [section, shared_section(model, x, y, maps, count, size, repeats)]


def shared_section(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    maps: np.ndarray,
    count: int,
    size: int,
    repeats: int,
) -> Section:
    """``masking_scores`` (two forwards per batch) against the classes and the bare forwards."""
    shared = masking_scores(model, x, y, maps, batch_size=count)
    for key, scores in zip(
        ("AD", "AG", "AI"), _metric_scores(model, x, y, maps, count), strict=True
    ):
        np.testing.assert_array_equal(shared[key], scores)
    candidates = {
        "2 batched forwards (x, s*x)": lambda: _two_forwards(model, x, maps),
        f"masking_scores, batch_size={count}": lambda: masking_scores(
            model, x, y, maps, batch_size=count
        ),
        f"3 metric classes, batch_size={count}": lambda: _metric_scores(model, x, y, maps, count),
    }
    forwards = {name: _count_forwards(model, run) for name, run in candidates.items()}
    medians = time_interleaved(candidates, repeats)
    return Section(
        title="Masking metrics from shared forwards: masking_scores (AD, AG, AI at once)",
        baseline="2 batched forwards (x, s*x)",
        setup=f"{count} examples, 3x{size}x{size}, the same CNN and maps; CPU, no GPU "
        f"available for this run; {environment()}; median of interleaved repetitions in one "
        "process (the machine was shared).",
        rows=[(name, medians[name], f"{forwards[name]} model forwards") for name in candidates],
        extra="`masking_scores` returns numbers equal to the three classes' (asserted above); "
        "the target is at most 1.3x the two bare forwards.",
    )
