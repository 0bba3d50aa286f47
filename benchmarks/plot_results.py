"""Plots of the benchmark tables, for the docs site: benchmarks/results/<table>.png.

    python benchmarks/plot_results.py

Reads the first table of ``results/fidelity.md`` and ``results/opticam_channels.md`` (written
by ``fidelity.py`` and ``opticam_channels.py``); runs nothing. ``docs/conf.py`` shows each
``results/<stem>*.png`` under the table it is named after.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import ScalarFormatter

RESULTS = Path(__file__).resolve().parent / "results"


def first_table(path: Path) -> tuple[list[str], list[list[str]]]:
    """The header and the rows of the first Markdown table in ``path``.

    Example:
        >>> import tempfile
        >>> table = Path(tempfile.mkdtemp()) / "t.md"
        >>> _ = table.write_text("# T\\n\\n| a | b |\\n|---|---:|\\n| x | 1.5 |\\n\\ntext\\n")
        >>> first_table(table)
        (['a', 'b'], [['x', '1.5']])
    """
    lines = [line.strip() for line in path.read_text().splitlines()]
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append([cell.strip() for cell in line.strip("|").split("|")])
    return block[0], block[2:]  # block[1] is the alignment row


def fidelity(path: Path, out: Path) -> None:
    """Grouped bars of AD, AG and AI per method (Opti-CAM's Table 1 on digit canvases)."""
    header, rows = first_table(path)
    metrics = ["AD", "AG", "AI"]
    values = np.array([[float(row[header.index(m)]) for m in metrics] for row in rows])
    figure = Figure(figsize=(9, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    width = 0.8 / len(rows)
    for index, row in enumerate(rows):
        axes.bar(np.arange(3) + index * width, values[index], width, label=row[0])
    axes.set_xticks(np.arange(3) + 0.4 - width / 2, ["AD (lower)", "AG (higher)", "AI (higher)"])
    axes.set_ylabel("percent")
    axes.legend(fontsize=8, frameon=False, loc="upper left", bbox_to_anchor=(1, 1))
    axes.set_title(
        "Average Drop / Gain / Increase, 256 digit canvases (Fake-CAM: 0 on all three)", fontsize=10
    )
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def opticam_channels(path: Path, out: Path) -> None:
    """OptiCAM and ScoreCAM time per model, log scale (ScoreCAM grows with channels)."""
    header, rows = first_table(path)
    labels = [f"{row[0]}\n{row[1]} channels" for row in rows]
    figure = Figure(figsize=(5, 3.2))
    FigureCanvasAgg(figure)
    axes = figure.subplots()
    for offset, column in ((-0.2, "OptiCAM (s)"), (0.2, "ScoreCAM (s)")):
        seconds = [float(row[header.index(column)]) for row in rows]
        axes.bar(np.arange(len(rows)) + offset, seconds, 0.4, label=column.split()[0])
    axes.set_xticks(np.arange(len(rows)), labels)
    axes.set_yscale("log")
    axes.yaxis.set_major_formatter(ScalarFormatter())
    axes.set_ylabel("seconds (batch of 2, CPU)")
    axes.legend(fontsize=8, frameon=False)
    figure.tight_layout()
    figure.savefig(out, dpi=100)


def main() -> int:
    """Write every plot whose table exists; 0 on success."""
    for plot in (fidelity, opticam_channels):
        table = RESULTS / f"{plot.__name__}.md"
        if table.is_file():
            plot(table, table.with_suffix(".png"))
            print(table.with_suffix(".png"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
