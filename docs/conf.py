"""Sphinx configuration of the captum-contrast site.

Build it offline, warnings as errors (``tests/test_docs.py`` does the same)::

    sphinx-build -W -b html docs docs/_build/html

Nothing is executed but the package's import: the tutorials are rendered from the committed
notebooks (``python tutorials/execute.py`` produces them), the benchmark pages from
``benchmarks/results/``. Both are copied into ``docs/`` at configuration time (git ignores the
copies), because Sphinx reads sources only under its source directory.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))  # document this checkout, wherever the package is installed from

import captum_contrast  # noqa: E402

project = "captum-contrast"
author = "captum-contrast developers"
copyright = "2026, captum-contrast developers"
release = version = captum_contrast.__version__

extensions = [
    "myst_nb",  # MyST Markdown pages and notebooks (brings myst_parser)
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]
exclude_patterns = ["_build", "_generated", "**.ipynb_checkpoints"]  # _generated: included
templates_path = ["_templates"]

html_theme = "furo"
html_title = f"captum-contrast {release}"
html_static_path: list[str] = []

# Notebooks are rendered as committed, never executed by the build.
nb_execution_mode = "off"
nb_merge_streams = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3  # links to tutorial sections: notebook.ipynb#section-title

autosummary_generate = True
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_inherit_docstrings = False  # Quantus's NumPy-style docstrings are not ours to render
napoleon_google_docstring = True
# Every cross-reference must resolve (a broken one fails the -W build), except to the
# libraries below, whose inventories would need the network, and to private names.
nitpicky = True
nitpick_ignore_regex = [
    ("py:.*", r"(torch|numpy|np|nn|collections|pathlib|typing|matplotlib|quantus|captum)\..*"),
    ("py:.*", r"captum_contrast(\.\w+)*\._\w+(\.\w+)*"),  # private modules, bases, aliases
    ("py:class", r"captum_contrast\.data\.canvases\.CanvasDataset"),  # the datasets' shared base
    (
        "py:.*",
        r"Tensor|Normalization|ReshapeTransform|Substrate|ArrayLike|Probability|ScoresLike",
    ),  # type aliases
]
napoleon_numpy_docstring = False


# --- Sources copied or generated before Sphinx reads the source directory -------------------


def copy_tutorials() -> None:
    """``tutorials/*.ipynb`` -> ``docs/tutorials/``, as committed (outputs included)."""
    target = DOCS / "tutorials"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for notebook in sorted((ROOT / "tutorials").glob("*.ipynb")):
        shutil.copy2(notebook, target / notebook.name)


def relevel_headings(text: str) -> str:
    """Renumber Markdown heading levels so they run 1, 2, 3 without gaps.

    The result files are written for the README, where they sit under other headings.
    """
    fence = False
    levels: list[int] = []
    for line in text.splitlines():
        fence ^= line.startswith("```")
        match = re.match(r"(#+) ", line)
        if match and not fence:
            levels.append(len(match.group(1)))
    rank = {level: index + 1 for index, level in enumerate(sorted(set(levels)))}
    lines, fence = [], False
    for line in text.splitlines():
        fence ^= line.startswith("```")
        match = re.match(r"(#+) ", line)
        if match and not fence:
            line = "#" * rank[len(match.group(1))] + line[len(match.group(1)) :]
        lines.append(line)
    return "\n".join(lines) + "\n"


def copy_benchmarks() -> None:
    """One page per ``benchmarks/results/*.md``, with the plots named after it.

    ``results/speed.md`` becomes ``docs/benchmarks/speed.md``; ``results/speed*.png`` (and
    ``.svg``) are shown under its tables.
    """
    results = ROOT / "benchmarks" / "results"
    target = DOCS / "benchmarks"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir()
    for table in sorted(results.glob("*.md")):
        text = relevel_headings(table.read_text())
        if not text.startswith("# "):
            text = f"# {table.stem.replace('_', ' ').capitalize()}\n\n{text}"
        plots = sorted(p for p in results.glob(f"{table.stem}*") if p.suffix in (".png", ".svg"))
        for plot in plots:
            shutil.copy2(plot, target / plot.name)
            text += f"\n![{plot.stem}]({plot.name})\n"
        (target / table.name).write_text(text)


def write_cli_help() -> None:
    """``docs/_generated/cli_help.md``: the ``--help`` of the command and each subcommand."""
    from captum_contrast.app.cli import build_parser

    os.environ["COLUMNS"] = "100"  # argparse wraps help at the terminal width
    parser = build_parser()
    parser.prog = "captum-contrast"
    sections = [("captum-contrast", parser)]
    for action in parser._actions:  # argparse keeps subcommands only on this private list
        if isinstance(action, argparse._SubParsersAction):
            sections += [(f"captum-contrast {name}", sub) for name, sub in action.choices.items()]
    target = DOCS / "_generated"
    target.mkdir(exist_ok=True)
    text = "".join(
        f"# `{title}`\n\n```text\n{sub.format_help().rstrip()}\n```\n\n" for title, sub in sections
    )
    (target / "cli_help.md").write_text(text)


copy_tutorials()
copy_benchmarks()
write_cli_help()


# --- Links written for the repository page, resolved for the site ---------------------------

# The pages link to ../tutorials/*.ipynb and ../benchmarks/results/*.md so that they work on
# the repository page; on the site those are the copies above.
REPOSITORY_LINKS = {"](../tutorials/": "](tutorials/", "](../benchmarks/results/": "](benchmarks/"}


def repository_links_to_site(app, docname: str, source: list[str]) -> None:
    """Rewrite the top-level pages' repository-relative links to the site's copies."""
    if "/" in docname:
        return
    for before, after in REPOSITORY_LINKS.items():
        source[0] = source[0].replace(before, after)


def setup(app) -> None:
    app.connect("source-read", repository_links_to_site)
