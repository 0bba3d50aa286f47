"""Contrastive CAM explanations for Captum, evaluated with Quantus.

The top level holds what a user of the methods imports: the four methods, contrast sets,
``normalize`` and the layer transforms. The rest is reached through its subpackage:
``captum_contrast.metrics`` (Quantus metrics, registered in ``quantus.AVAILABLE_METRICS``
when that subpackage is imported), ``captum_contrast.training`` (salience-guided losses),
``captum_contrast.data`` (offline datasets and small models), ``captum_contrast.viz``
(figures) and ``captum_contrast.methods`` (the methods' building blocks).
"""

from __future__ import annotations

import importlib
from types import ModuleType

from captum_contrast import methods, training
from captum_contrast.methods import (
    ContrastGradCAM,
    ContrastSet,
    DifferenceSalience,
    FinerCAM,
    LayerContrastAttribution,
    MinMaxCAM,
    OptiCAM,
    confusion_matrix,
)
from captum_contrast.normalization import normalize
from captum_contrast.transforms import (
    channels_last_transform,
    tokens_transform,
    vit_reshape_transform,
)

__version__ = "0.1.0"  # the one version source: pyproject.toml reads it

_LAZY_SUBPACKAGES = ("metrics", "data", "viz", "app")


def __getattr__(name: str) -> ModuleType:
    # metrics imports Quantus (with pandas, OpenCV, scikit-image: about a third of the import
    # time) and registers its metrics there; data, viz and app import matplotlib,
    # scikit-learn and argparse machinery. A user of the methods needs none of them: they
    # load on first access.
    if name in _LAZY_SUBPACKAGES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ContrastGradCAM",
    "ContrastSet",
    "DifferenceSalience",
    "FinerCAM",
    "LayerContrastAttribution",
    "MinMaxCAM",
    "OptiCAM",
    "confusion_matrix",
    "methods",
    "metrics",
    "normalize",
    "channels_last_transform",
    "tokens_transform",
    "training",
    "vit_reshape_transform",
]
