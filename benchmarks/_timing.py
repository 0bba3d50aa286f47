"""Timing helpers shared by the benchmark scripts: interleaved repetitions, markdown tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch


@dataclass
class Section:
    """One table: rows of (name, median seconds, note), ratios taken to ``baseline``."""

    title: str
    baseline: str
    setup: str
    rows: list[tuple[str, float, str]] = field(default_factory=list)
    extra: str = ""

    def to_markdown(self) -> str:
        base = dict((name, seconds) for name, seconds, _ in self.rows)[self.baseline]
        lines = [
            f"### {self.title}",
            "",
            self.setup,
            "",
            f"| method | median time (ms) | ratio to {self.baseline} | note |",
            "|---|---:|---:|---|",
        ]
        for name, seconds, note in self.rows:
            lines.append(f"| {name} | {seconds * 1e3:.1f} | {seconds / base:.2f}x | {note} |")
        if self.extra:
            lines += ["", self.extra]
        return "\n".join(lines)


def time_interleaved(
    candidates: dict[str, Callable[[], object]], repeats: int, warmup: int = 1
) -> dict[str, float]:
    """Median wall-clock seconds of each candidate, run round-robin so drift hits all alike."""
    for _ in range(warmup):
        for run in candidates.values():
            run()
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, run in candidates.items():
            start = time.perf_counter()
            run()
            samples[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in samples.items()}


def environment() -> str:
    return f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads"
