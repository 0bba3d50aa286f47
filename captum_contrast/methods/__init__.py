"""The attribution methods, one file each, and their building blocks.

Each method file holds its class and the paper's math as small named functions
(``project_out``, ``gradient_cosine``, ``minmax_score_weights``, ``objective_loss``,
``difference_score_weights``).
"""

from captum_contrast.methods._base import GradientPlan, LayerContrastAttribution, run_plans
from captum_contrast.methods.analysis import active_channels
from captum_contrast.methods.contrast_grad_cam import (
    ContrastGradCAM,
    gradient_cosine,
    project_out,
    projection_coefficient,
)
from captum_contrast.methods.contrast_sets import ContrastSet, confusion_matrix
from captum_contrast.methods.difference_salience import (
    DifferenceSalience,
    difference_score_weights,
)
from captum_contrast.methods.finer_cam import FinerCAM, closest_classes, finer_score_weights
from captum_contrast.methods.minmax_cam import MinMaxCAM, minmax_score_weights, minmax_weights
from captum_contrast.methods.opti_cam import OptiCAM, objective_loss

__all__ = [
    "ContrastGradCAM",
    "ContrastSet",
    "DifferenceSalience",
    "FinerCAM",
    "GradientPlan",
    "LayerContrastAttribution",
    "MinMaxCAM",
    "OptiCAM",
    "active_channels",
    "closest_classes",
    "confusion_matrix",
    "difference_score_weights",
    "finer_score_weights",
    "gradient_cosine",
    "minmax_score_weights",
    "minmax_weights",
    "objective_loss",
    "project_out",
    "projection_coefficient",
    "run_plans",
]
