"""Speed benchmark: every method against its peers, measured in one run on this machine.

Run ``python benchmarks/speed.py`` (``--quick`` for a smoke run with tiny settings). Each
section prints a markdown table of median times and ratios to the section's baseline; the
whole report is written to ``benchmarks/results/speed.md``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from _timing import environment  # noqa: E402

# One module per area; each exposes run(repeats: int, quick: bool) -> list[Section].
SECTION_MODULES = [
    "bench_contrast",
    "bench_minmax",
    "bench_opticam",
    "bench_metrics",
    "bench_scores",
]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="tiny settings, for a smoke test")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--only", nargs="*", help="run only these section modules")
    parser.add_argument("--out", type=Path, default=HERE / "results" / "speed.md")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    repeats = 2 if args.quick else args.repeats
    blocks = [f"# Speed ({environment()}, median of {repeats} interleaved repetitions)"]
    for name in args.only or SECTION_MODULES:
        module = importlib.import_module(name)
        for section in module.run(repeats=repeats, quick=args.quick):
            table = section.to_markdown()
            print(table + "\n", flush=True)
            blocks.append(table)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text("\n\n".join(blocks) + "\n")
        print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
