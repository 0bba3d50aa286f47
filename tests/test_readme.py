"""The README is the front door: CI runs its two commands, it is short, and its links resolve.

Every relative link of README.md and of the documentation pages (docs/*.md) names a file of
the repository, so each can be followed on the repository page today. The address of the
published site appears in one place only, the project metadata.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
MAX_README_LINES = 200
SITE = "readthedocs.io"

# [text](target) and ![alt](target); the target ends at a space (a title) or ")"
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")


def markdown_pages() -> list[Path]:
    return [README, *sorted((ROOT / "docs").glob("*.md"))]


def relative_links(page: Path) -> list[str]:
    """The link targets of a Markdown page that point into the repository, outside code."""
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)  # fenced code
    text = re.sub(r"`[^`\n]*`", "", text)  # inline code
    targets = [target for target in LINK.findall(text)]
    return [t for t in targets if not re.match(r"[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_ci_runs_the_readme_commands() -> None:
    readme = README.read_text()
    ci_lines = [
        line.strip()
        for line in (ROOT / ".ci" / "run").read_text().splitlines()
        if line.strip().startswith(("pip install", "python -m pytest"))
    ]
    assert len(ci_lines) == 2
    install, test = ci_lines
    assert f"{install} && {test}" in readme
    assert f"{install} && captum-contrast demo" in readme


def test_the_readme_is_a_front_door() -> None:
    readme = README.read_text()
    assert len(readme.splitlines()) <= MAX_README_LINES
    assert "![" in readme and "docs/demo.png" in readme
    for heading in ("## Quickstart", "## With Captum", "## With Quantus", "## Guarantees"):
        assert heading in readme
    for method in ("ContrastGradCAM", "FinerCAM", "MinMaxCAM", "OptiCAM", "DifferenceSalience"):
        assert f"| `{method}`" in readme, method
    assert "sphinx-build -W -b html docs docs/_build/html" in readme  # the local site


@pytest.mark.parametrize("page", markdown_pages(), ids=lambda page: page.name)
def test_every_relative_link_names_a_file_of_the_repository(page: Path) -> None:
    links = relative_links(page)
    broken = [link for link in links if not (page.parent / link.split("#")[0]).resolve().is_file()]
    assert not broken, f"{page.relative_to(ROOT)}: links to missing files {broken}"


def test_the_link_check_finds_links_and_refuses_a_missing_file(tmp_path: Path) -> None:
    readme_links = relative_links(README)
    assert {"docs/choosing.md#why-this-class-and-not-that-one", "docs/demo.png"} <= set(
        readme_links
    )
    assert "LICENSE" in readme_links and len(readme_links) >= 20
    page = tmp_path / "page.md"
    page.write_text("[a](missing.md) ![b](there.png) `[c](code.md)` [d](https://x.org/y.md)\n")
    (tmp_path / "there.png").write_bytes(b"")
    assert relative_links(page) == ["missing.md", "there.png"]


def test_the_site_address_is_named_only_in_the_project_metadata() -> None:
    assert (ROOT / "pyproject.toml").read_text().count(SITE) == 1
    naming = [
        str(path.relative_to(ROOT))
        for path in [*markdown_pages(), *(ROOT / "docs").rglob("*.py"), ROOT / "CHANGELOG.md"]
        if SITE in path.read_text()
    ]
    assert naming == []
