"""The shared helpers: safe_ratio, and the layout of the metrics package's modules."""

from __future__ import annotations

import ast
import inspect
import warnings
from pathlib import Path

import numpy as np

from captum_contrast.metrics import _base
from captum_contrast.metrics._helpers import safe_ratio

METRICS_DIR = Path(_base.__file__).parent


def test_safe_ratio_is_zero_where_the_denominator_is_not_positive() -> None:
    numerator = np.array([1.0, 2.0, 3.0, 0.0, 5.0])
    denominator = np.array([4.0, 0.0, -1.0, 2.0, 1e-300])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no division warning either
        ratio = safe_ratio(numerator, denominator)
    np.testing.assert_allclose(ratio, [0.25, 0.0, 0.0, 0.0, 5e300], rtol=1e-12)
    assert safe_ratio(np.array(3.0), np.array(0.0)) == 0.0


def test_base_holds_only_the_base_class() -> None:
    defined = [
        name
        for name, value in vars(_base).items()
        if (inspect.isfunction(value) or inspect.isclass(value))
        and value.__module__ == _base.__name__
    ]
    assert defined == ["CAMMetric"]


def test_no_module_imports_a_private_name_from_a_sibling() -> None:
    for path in sorted(METRICS_DIR.glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                "captum_contrast.metrics"
            ):
                private = [a.name for a in node.names if a.name.startswith("_")]
                assert not private, f"{path.name} imports {private} from {node.module}"
