"""The README's Quickstart and CI run the same commands."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_ci_runs_the_readme_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith(("pip install", "python -m pytest"))
    ]
    assert len(ci_lines) == 2
    install, test = ci_lines
    assert f"{install} && {test}" in readme
    assert f"{install} && captum-contrast demo" in readme
