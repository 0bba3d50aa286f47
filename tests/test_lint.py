"""ruff (lint and format) and mypy are clean, with the configuration in pyproject.toml."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(command: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)


def ruff() -> str:
    found = shutil.which("ruff", path=str(Path(sys.executable).parent)) or shutil.which("ruff")
    assert found, "ruff is not installed (pip install -e '.[dev]')"
    return found


def test_ruff_check_is_clean() -> None:
    result = run([ruff(), "check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_ruff_format_leaves_every_file_as_it_is() -> None:
    result = run([ruff(), "format", "--check", "--no-cache", "."])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]


def test_mypy_is_clean_on_the_package(tmp_path: Path) -> None:
    result = run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path)])
    assert result.returncode == 0, result.stdout[-5000:] + result.stderr[-2000:]
    assert re.search(r"Success: no issues found in \d+ source files", result.stdout)


def test_mypy_reports_an_error_it_is_given(tmp_path: Path) -> None:
    # the configuration checks something: a wrong return type in a package-like module fails
    bad = tmp_path / "bad.py"
    bad.write_text("def f(x: int) -> str:\n    return x\n")
    result = run([sys.executable, "-m", "mypy", "--cache-dir", str(tmp_path / "cache"), str(bad)])
    assert result.returncode == 1 and "Incompatible return value type" in result.stdout


def test_pre_commit_runs_the_ruff_of_the_dev_extra() -> None:
    pinned = re.search(r'^    "ruff==([^"]+)"', (ROOT / "pyproject.toml").read_text(), re.M)
    assert pinned, "pin ruff in [dev] to the version .pre-commit-config.yaml runs"
    config = (ROOT / ".pre-commit-config.yaml").read_text()
    assert f"rev: v{pinned.group(1)}\n" in config
    assert "id: ruff-check" in config and "id: ruff-format" in config
