"""Execute every tutorial notebook in place with pinned settings, and stamp it.

The committed notebooks carry their outputs and figures, so they read on the repository page
and on the docs site without running anything. This script is the one way they are produced:

    python tutorials/execute.py                # every tutorials/*.ipynb
    python tutorials/execute.py tutorials/02_minmax_cam.ipynb

Each notebook runs top to bottom in a fresh ``python3`` kernel that imports this checkout of
the package (``PYTHONPATH``), with a fixed environment (one thread, hash seed, Agg backend, no GPU),
seeded ``random``/``numpy``/``torch`` and deterministic torch algorithms, in a scratch
working directory, with a fresh model cache (so the figures come from the current code, not
from weights a previous version cached). The notebook's metadata is then stamped with
:func:`settings_digest` and :func:`sources_digest`; ``tests/test_tutorials.py`` fails on a
notebook without outputs, run by hand or under other settings, or whose code changed since.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError
from nbformat import NotebookNode

TUTORIALS = Path(__file__).resolve().parent
ROOT = TUTORIALS.parent
SCRIPT = "tutorials/execute.py"
STAMP_KEY = "captum_contrast"
KERNEL_NAME = "python3"
TIMEOUT_S = 600
SEED = 0
ENVIRONMENT = {
    "PYTHONHASHSEED": str(SEED),
    "MPLBACKEND": "Agg",  # the notebooks' `%matplotlib inline` still shows figures inline
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "CUDA_VISIBLE_DEVICES": "",  # the tutorials are CPU tutorials; a GPU would change digits
    "CUBLAS_WORKSPACE_CONFIG": ":4096:8",
    "TZ": "UTC",
    "LC_ALL": "C.UTF-8",
}
# Run before the first cell (and removed from the saved notebook): seeds and determinism.
SETUP_CODE = f"""\
import random
import warnings
import numpy
import torch
warnings.filterwarnings("ignore", message="IProgress not found")  # tqdm without ipywidgets
random.seed({SEED})
numpy.random.seed({SEED})
torch.manual_seed({SEED})
torch.use_deterministic_algorithms(True)
"""


def settings_digest() -> str:
    """A short hash of every pinned setting; a notebook's stamp must equal it.

    Example:
        >>> len(settings_digest())
        16
    """
    settings = {
        "kernel_name": KERNEL_NAME,
        "environment": ENVIRONMENT,
        "setup": SETUP_CODE,
        "seed": SEED,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def notebooks(paths: Sequence[str | Path] = ()) -> list[Path]:
    """The given notebooks, or every ``tutorials/*.ipynb`` in name order.

    Example:
        >>> [path.suffix for path in notebooks()][:1]
        ['.ipynb']
    """
    found = [Path(p).resolve() for p in paths] or sorted(TUTORIALS.glob("*.ipynb"))
    missing = [str(path) for path in found if not path.is_file()]
    if missing:
        raise FileNotFoundError(f"`paths`: no such notebook: {', '.join(missing)}")
    return found


def execute(notebook: NotebookNode, cache: Path, workdir: Path) -> NotebookNode:
    """Run ``notebook`` in place under the pinned settings; return it, stamped.

    Args:
        notebook: A version-4 notebook; its outputs are replaced.
        cache: The model cache the kernel sees (``$XDG_CACHE_HOME``).
        workdir: The kernel's working directory (files a notebook writes land there).

    Raises:
        nbclient.exceptions.CellExecutionError: A cell raised; the error names the cell.
    """
    setup = nbformat.v4.new_code_cell(SETUP_CODE)
    notebook.cells.insert(0, setup)
    notebook.metadata["kernelspec"] = {
        "display_name": "Python 3",
        "language": "python",
        "name": KERNEL_NAME,
    }
    environment = {**os.environ, **ENVIRONMENT, "XDG_CACHE_HOME": str(cache)}
    # The kernel must import this checkout of the package, wherever it was installed from.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])
    )
    client = NotebookClient(
        notebook, timeout=TIMEOUT_S, kernel_name=KERNEL_NAME, record_timing=False
    )
    try:
        client.execute(cwd=str(workdir), env=environment)
    finally:
        notebook.cells.remove(setup)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            if cell.execution_count is not None:
                cell.execution_count -= 1  # the setup cell took execution count 1
            tidy_streams(cell)
    notebook.metadata[STAMP_KEY] = stamp(notebook)
    return notebook


def tidy_streams(cell: NotebookNode) -> None:
    """Merge a cell's consecutive stream outputs and apply their carriage returns.

    A progress bar redraws itself with ``\\r``; a terminal shows the last state, but the
    notebook file would keep every redraw (hundreds of outputs).

    Example:
        >>> cell = nbformat.v4.new_code_cell(outputs=[
        ...     nbformat.v4.new_output("stream", name="stderr", text="\\r 0%"),
        ...     nbformat.v4.new_output("stream", name="stderr", text="\\r100%"),
        ...     nbformat.v4.new_output("stream", name="stderr", text="\\ndone\\n"),
        ... ])
        >>> tidy_streams(cell)
        >>> [output.text for output in cell.outputs]
        ['100%\\ndone\\n']
    """
    merged: list[NotebookNode] = []
    for output in cell.get("outputs", []):
        previous = merged[-1] if merged else None
        if (
            output.output_type == "stream"
            and previous is not None
            and previous.output_type == "stream"
            and previous.name == output.name
        ):
            previous.text += output.text
        else:
            merged.append(output)
    for output in merged:
        if output.output_type == "stream":
            output.text = "\n".join(line.rsplit("\r", 1)[-1] for line in output.text.split("\n"))
    cell.outputs = merged


def sources_digest(notebook: NotebookNode) -> str:
    """A short hash of the code cells' sources: editing code after execution changes it.

    Example:
        >>> notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        >>> edited = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 2")])
        >>> sources_digest(notebook) == sources_digest(edited)
        False
    """
    code = [cell.source for cell in notebook.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(code).encode()).hexdigest()[:16]


def stamp(notebook: NotebookNode) -> dict[str, str]:
    """The metadata an executed notebook carries: the script, its settings, its code, versions."""
    return {
        "executed_by": SCRIPT,
        "settings": settings_digest(),
        "sources": sources_digest(notebook),
        "torch": version("torch"),
        "captum": version("captum"),
        "quantus": version("quantus"),
    }


def problems(notebook: NotebookNode) -> list[str]:
    """Why ``notebook`` is not one this script produced from start to end; empty if it is.

    Example:
        >>> empty = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1")])
        >>> problems(empty)  # doctest: +NORMALIZE_WHITESPACE
        ['code cell 1 was not executed', 'no figure in the outputs',
         'no stamp from tutorials/execute.py in the metadata']
    """
    found = []
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    counts = [cell.get("execution_count") for cell in code]
    for number, (cell, count) in enumerate(zip(code, counts, strict=True), start=1):
        if count != number:
            found.append(f"code cell {number} was not executed")
        if any(output.get("output_type") == "error" for output in cell.get("outputs", [])):
            found.append(f"code cell {number} raised")
    outputs = [output for cell in code for output in cell.get("outputs", [])]
    if not any("image/png" in output.get("data", {}) for output in outputs):
        found.append("no figure in the outputs")
    mark = notebook.metadata.get(STAMP_KEY, {})
    if mark.get("executed_by") != SCRIPT:
        found.append(f"no stamp from {SCRIPT} in the metadata")
    elif mark.get("settings") != settings_digest():
        found.append(
            f"stamped with settings {mark.get('settings')}, not the current {settings_digest()}"
        )
    elif mark.get("sources") != sources_digest(notebook):
        found.append("code edited after execution: run tutorials/execute.py")
    elif notebook.metadata.get("kernelspec", {}).get("name") != KERNEL_NAME:
        found.append(f"kernel is not {KERNEL_NAME}")
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Execute and save the notebooks; 0 when every one ran and is stamped."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="*", help="notebooks (default: tutorials/*.ipynb)")
    parser.add_argument(
        "--cache", type=Path, help="model cache to reuse (default: a fresh temporary one)"
    )
    args = parser.parse_args(argv)
    failed = []
    with tempfile.TemporaryDirectory(prefix="captum_contrast_tutorials_") as scratch:
        cache = args.cache or Path(scratch) / "cache"
        for path in notebooks(args.paths):
            print(f"executing {path.name}", flush=True)
            workdir = Path(scratch) / path.stem
            workdir.mkdir()
            try:
                notebook = execute(nbformat.read(path, as_version=4), cache, workdir)
            except CellExecutionError as error:  # keep the committed file; run the others
                print(f"{path.name}: not saved, a cell raised:\n{error}", file=sys.stderr)
                failed.append(path.name)
                continue
            nbformat.validate(notebook)
            left = problems(notebook)
            if left:
                print(f"{path.name}: not saved: {'; '.join(left)}", file=sys.stderr)
                failed.append(path.name)
                continue
            nbformat.write(notebook, path)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
