"""Contrastive CAM explanations for Captum, evaluated with Quantus.

Importing the package registers its metrics with Quantus.
"""

from captum_contrast._base import LayerContrastAttribution, vit_reshape_transform
from captum_contrast._layer import LayerGradients, layer_gradients
from captum_contrast.contrast_grad_cam import ContrastGradCAM
from captum_contrast.contrast_sets import ContrastSet, confusion_matrix
from captum_contrast.difference_salience import DifferenceSalience
from captum_contrast.minmax_cam import MinMaxCAM, minmax_weights
from captum_contrast.normalize import normalize

__version__ = "0.1.0"

__all__ = [
    "ContrastGradCAM",
    "ContrastSet",
    "DifferenceSalience",
    "LayerContrastAttribution",
    "LayerGradients",
    "MinMaxCAM",
    "confusion_matrix",
    "layer_gradients",
    "minmax_weights",
    "normalize",
    "vit_reshape_transform",
]
