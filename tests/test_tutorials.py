"""The tutorials are committed executed by tutorials/execute.py, and still run offline on the CPU."""

from __future__ import annotations

import copy
import importlib.util
from pathlib import Path

import nbformat
import pytest

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NAMES = sorted(path.stem for path in TUTORIALS.glob("*.ipynb"))
# A line each notebook prints when its check holds (a False would mean the check failed).
EXPECTED = {
    "01_contrast_grad_cam": "same as above: True",
    "02_minmax_cam": "CAM form == 64 x gradient form: True",
    "03_opti_cam": "they sum to 1: True",
    "04_salience_training": "AUROC test",
    "05_real_photos": "DifferenceSalience == Grad-CAM(happy) - Grad-CAM(surprise): True",
    "06_beyond_classification": "DifferenceSalience at the step == the two Grad-CAMs' difference: True",
}


def _load_execute_script():
    spec = importlib.util.spec_from_file_location("tutorials_execute", TUTORIALS / "execute.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


execute = _load_execute_script()


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """One cache for the module, so the tutorials that share a model train it once."""
    return tmp_path_factory.mktemp("model_cache")


def read(name: str) -> nbformat.NotebookNode:
    return nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)


def test_every_tutorial_says_what_it_checks() -> None:
    assert "01_contrast_grad_cam" in NAMES and set(NAMES) <= set(EXPECTED)


@pytest.mark.parametrize("name", NAMES)
def test_the_tutorial_is_stored_as_tutorials_execute_py_ran_it(name: str) -> None:
    notebook = read(name)
    nbformat.validate(notebook)
    assert execute.problems(notebook) == []
    text = "".join(
        output.get("text", "") for cell in notebook.cells for output in cell.get("outputs", [])
    )
    assert EXPECTED[name] in text  # the committed outputs show the check holding


def test_a_notebook_without_outputs_or_without_the_stamp_is_refused() -> None:
    executed = read(NAMES[0])
    code_cells = sum(cell.cell_type == "code" for cell in executed.cells)

    cleared = copy.deepcopy(executed)
    for cell in cleared.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    assert execute.problems(cleared) == [
        *(f"code cell {number} was not executed" for number in range(1, code_cells + 1)),
        "no figure in the outputs",
    ]

    unstamped = copy.deepcopy(executed)
    del unstamped.metadata[execute.STAMP_KEY]
    assert execute.problems(unstamped) == ["no stamp from tutorials/execute.py in the metadata"]

    other_settings = copy.deepcopy(executed)
    other_settings.metadata[execute.STAMP_KEY]["settings"] = "0" * 16
    assert execute.problems(other_settings) == [
        f"stamped with settings {'0' * 16}, not the current {execute.settings_digest()}"
    ]

    edited = copy.deepcopy(executed)  # code changed after the outputs were made
    next(cell for cell in edited.cells if cell.cell_type == "code").source += "\n# edited"
    assert execute.problems(edited) == ["code edited after execution: run tutorials/execute.py"]

    out_of_order = copy.deepcopy(executed)  # a cell re-run by hand
    first = next(cell for cell in out_of_order.cells if cell.cell_type == "code")
    first.execution_count = 7
    assert execute.problems(out_of_order) == ["code cell 1 was not executed"]


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs(name: str, model_cache: Path, tmp_path: Path) -> None:
    notebook = read(name)
    for cell in notebook.cells:  # run from the sources alone
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    execute.execute(notebook, cache=model_cache, workdir=tmp_path)  # the script's settings
    assert execute.problems(notebook) == []
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    text = "".join(output.get("text", "") for output in outputs)
    assert EXPECTED[name] in text
