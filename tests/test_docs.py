"""The docs site builds offline with no warning, and documents every public name with an example."""

from __future__ import annotations

import importlib
import inspect
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import captum_contrast
from captum_contrast import data, methods, metrics, training, viz

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def documented_names() -> list[str]:
    """Every ``module.name`` listed in an ``autosummary`` of the API pages."""
    names = []
    for page in sorted((DOCS / "api").glob("*.md")):
        module, listing = None, False
        for line in page.read_text().splitlines():
            if match := re.match(r"\.\. currentmodule:: (\S+)", line):
                module = match.group(1)
            elif line.startswith(".. autosummary::"):
                listing = True
            elif listing and (match := re.match(r"   ([A-Za-z_][\w.]*)$", line)):
                names.append(f"{module}.{match.group(1)}")
            elif listing and line and not line.startswith("   "):
                listing = False
    return names


def resolve(dotted: str) -> object:
    """The object a dotted name of the API pages refers to."""
    parts = dotted.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            target = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        for part in parts[split:]:
            target = getattr(target, part)
        return target
    raise ImportError(dotted)


def public_objects() -> dict[str, object]:
    """The public classes and functions: the packages' ``__all__`` and ``viz``'s functions."""
    found = {}
    for module in (captum_contrast, methods, metrics, training, data):
        for name in module.__all__:
            value = getattr(module, name)
            if inspect.isclass(value) or inspect.isfunction(value):
                found.setdefault(id(value), f"{module.__name__}.{name}")
    for name, value in vars(viz).items():
        if (
            inspect.isfunction(value)
            and not name.startswith("_")
            and value.__module__ == viz.__name__
        ):
            found.setdefault(id(value), f"viz.{name}")
    return {label: object_id for object_id, label in found.items()}


def has_example(value: object) -> bool:
    doc = inspect.getdoc(value) or ""
    return bool(re.search(r"^Examples?:\s*$", doc, re.M)) and ">>>" in doc


def test_every_public_name_is_in_the_api_reference() -> None:
    documented = {id(resolve(name)) for name in documented_names()}
    missing = [
        label for label, object_id in public_objects().items() if object_id not in documented
    ]
    assert not missing, f"public names missing from docs/api/*.md: {missing}"


def test_every_documented_name_has_a_docstring_with_an_example() -> None:
    names = documented_names()
    assert len(names) >= 50  # the parser found the listings
    lacking = [name for name in names if not has_example(resolve(name))]
    assert not lacking, f"no docstring with an `Example:` and a doctest: {lacking}"


def test_the_example_check_refuses_a_docstring_without_one() -> None:
    def documented() -> None:
        """Says what it does.

        Example:
            >>> documented()
        """

    def undocumented() -> None:
        """Says what it does, with no example."""

    assert has_example(documented) and not has_example(undocumented)


@pytest.mark.skipif(sys.platform == "win32", reason="the build copies files with POSIX paths")
def test_the_site_builds_offline_without_warnings(tmp_path: Path) -> None:
    environment = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "MPLBACKEND": "Agg",
        # no network: a proxy that refuses every connection
        "HTTP_PROXY": "http://127.0.0.1:9",
        "HTTPS_PROXY": "http://127.0.0.1:9",
    }
    command = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html"]
    command += ["-d", str(tmp_path / "doctrees"), str(DOCS), str(tmp_path / "html")]
    result = subprocess.run(command, capture_output=True, text=True, env=environment, timeout=300)
    assert result.returncode == 0, result.stderr[-5000:]
    html = tmp_path / "html"
    for page in ("index", "choosing", "installation", "cli", "architecture", "api/metrics"):
        assert (html / f"{page}.html").is_file(), page
    tutorials = sorted((ROOT / "tutorials").glob("*.ipynb"))
    for notebook in tutorials:  # rendered with their figures
        page = (html / "tutorials" / f"{notebook.stem}.html").read_text()
        assert "<img" in page, notebook.stem
    for plot in (ROOT / "benchmarks" / "results").glob("*.png"):  # each plot under its table
        table = next(p for p in plot.parent.glob("*.md") if plot.stem.startswith(p.stem))
        assert plot.name in (html / "benchmarks" / f"{table.stem}.html").read_text()
    chooser = (html / "choosing.html").read_text()
    for figure in ("contrast_grad_cam", "minmax_cam", "opti_cam", "difference_salience"):
        assert f"{figure}.png" in chooser
    assert "tutorials/01_contrast_grad_cam.html#maps-of-the-top-1-and-the-top-2-class" in chooser
    for page, anchor in re.findall(r'href="(tutorials/[\w.]+\.html)#([\w-]+)"', chooser):
        assert f'id="{anchor}"' in (html / page).read_text(), f"{page}#{anchor}"
    cli = (html / "cli.html").read_text()
    assert all(
        f"usage: captum-contrast {command}" in cli for command in ("demo", "explain", "evaluate")
    )
    assert "api/generated/captum_contrast.ContrastGradCAM.html" in chooser
    # The pages that hold what the README links to (tests/test_readme.py checks the links).
    for page in ("methods", "metrics", "training", "real_models", "imagenet", "compatibility"):
        assert (html / f"{page}.html").is_file(), page
    assert "[Unreleased]" in (html / "changelog.html").read_text()
    metrics_page = (html / "metrics.html").read_text()
    for metric in metrics.METRICS:  # each metric of the guide links to its reference
        assert f"api/generated/captum_contrast.metrics.{metric.__name__}.html" in metrics_page
