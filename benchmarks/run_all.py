"""Regenerate every table of ``benchmarks/results/`` and say how long each script took.

``python benchmarks/run_all.py`` runs every script in full (hours on 2 CPU cores; each writes
its own ``results/<stem>.md``) and then writes ``results/run_all.md``, the time each took.
``--quick`` runs the smoke mode of the head-to-head only (``contrastive.py --quick``: one
network, three maps, nothing written), which is what the test suite runs; ``--all-quick``
runs every script's smoke mode; ``--only NAME ...`` picks scripts.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent

# script -> the result table(s) it writes. The head-to-head answers what the per-network
# scripts used to ask (CASE's class sensitivity, Opti-CAM's AD / AG / AI); analyses.py keeps
# what it does not run (CASE's projection cosine, the binary networks, torchcam cross-check).
SCRIPTS = {
    # before the head-to-head, whose report ends with its summary (the multi-label row)
    "ocr_minmax.py": "ocr_minmax.md, ocr_minmax.png",
    "contrastive.py": "contrastive.md, contrastive.png",
    "analyses.py": "analyses.md",
    "speed.py": "speed.md",
    "model_zoo.py": "model_zoo.md",
    "opticam_channels.py": "opticam_channels.md, opticam_channels.png",
    "opticam_convergence.py": "opticam_convergence.md, opticam_convergence.png",
    "salience_training.py": "salience_training.md",
}
QUICK = ("contrastive.py",)


def run(script: str, quick: bool) -> tuple[int, float]:
    """Run one script in a subprocess with this checkout on the path; (exit code, seconds)."""
    env = {**os.environ, "PYTHONPATH": str(HERE.parent), "MPLBACKEND": "Agg"}
    command = [sys.executable, str(HERE / script)]
    if quick:
        command.append("--quick")
    start = time.perf_counter()
    code = subprocess.run(command, env=env, check=False).returncode
    return code, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="the head-to-head's smoke run")
    parser.add_argument("--all-quick", action="store_true", help="every script's smoke run")
    parser.add_argument("--only", nargs="*", choices=sorted(SCRIPTS), help="these scripts")
    args = parser.parse_args(argv)
    scripts = args.only or (list(QUICK) if args.quick else list(SCRIPTS))
    quick = args.quick or args.all_quick
    lines = ["| script | writes | exit | seconds |", "|---|---|---:|---:|"]
    failed = 0
    for script in scripts:
        print(f"== {script}", flush=True)
        code, seconds = run(script, quick)
        failed += code != 0
        lines.append(f"| `{script}` | {SCRIPTS[script]} | {code} | {seconds:.0f} |")
        print(f"== {script}: exit {code}, {seconds:.0f} s", flush=True)
    report = "\n".join(lines)
    print(report)
    if not quick and not args.only:
        (HERE / "results" / "run_all.md").write_text(
            "# How long each benchmark takes\n\nWritten by `python benchmarks/run_all.py` on "
            "2 CPU cores shared with other jobs.\n\n" + report + "\n",
            encoding="utf-8",
        )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
