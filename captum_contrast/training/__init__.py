"""Training side: differentiable CAMs, salience-guided losses, kernel usage regularisation."""

from captum_contrast.training.cam import class_activation_maps, head_weight
from captum_contrast.training.kur import KernelUsageRegularizedLinear
from captum_contrast.training.losses import (
    ContrastSalienceLoss,
    CYBORGLoss,
    DifferenceSalienceLoss,
    PerClassSalienceLoss,
    SalienceLoss,
)

__all__ = [
    "CYBORGLoss",
    "ContrastSalienceLoss",
    "DifferenceSalienceLoss",
    "KernelUsageRegularizedLinear",
    "PerClassSalienceLoss",
    "SalienceLoss",
    "class_activation_maps",
    "head_weight",
]
