"""The tutorials run top to bottom offline on the CPU, and say what they claim to show."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

TUTORIALS = Path(__file__).resolve().parent.parent / "tutorials"
NAMES = [
    "01_contrast_grad_cam",
    "02_minmax_cam",
    "03_opti_cam",
    "04_salience_training",
    "05_real_photos",
]
# A line each notebook prints when its check holds (a False would mean the check failed).
EXPECTED = {
    "01_contrast_grad_cam": "same as above: True",
    "02_minmax_cam": "CAM form == 64 x gradient form: True",
    "03_opti_cam": "they sum to 1: True",
    "04_salience_training": "AUROC test",
    "05_real_photos": "DifferenceSalience == Grad-CAM(happy) - Grad-CAM(surprise): True",
}


@pytest.fixture(scope="module")
def model_cache(tmp_path_factory) -> Path:
    """One cache for the module, so the tutorials that share a model train it once."""
    return tmp_path_factory.mktemp("model_cache")


def test_the_tutorials_are_stored_without_outputs() -> None:
    assert sorted(path.stem for path in TUTORIALS.glob("*.ipynb")) == NAMES
    for name in NAMES:
        notebook = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
        nbformat.validate(notebook)
        code = [cell for cell in notebook.cells if cell.cell_type == "code"]
        assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


@pytest.mark.parametrize("name", NAMES)
def test_tutorial_runs(name: str, model_cache: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(model_cache))  # never the user's cache
    notebook = nbformat.read(TUTORIALS / f"{name}.ipynb", as_version=4)
    client = NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [output for cell in notebook.cells for output in cell.get("outputs", [])]
    assert not [output for output in outputs if output.output_type == "error"]
    text = "".join(output.get("text", "") for output in outputs)
    assert EXPECTED[name] in text
    figures = [output for output in outputs if "image/png" in output.get("data", {})]
    assert figures, "the tutorial shows no figure"
