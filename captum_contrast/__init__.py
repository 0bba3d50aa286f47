"""Contrastive CAM explanations for Captum, evaluated with Quantus.

Importing the package registers its metrics with Quantus.
"""

from captum_contrast._base import LayerContrastAttribution, vit_reshape_transform
from captum_contrast._layer import LayerGradients, layer_gradients
from captum_contrast.contrast_grad_cam import ContrastGradCAM
from captum_contrast.contrast_sets import ContrastSet, confusion_matrix
from captum_contrast.difference_salience import DifferenceSalience
from captum_contrast.metrics import (
    AverageDrop,
    AverageDropOfOthers,
    AverageGain,
    AverageIncrease,
    AverageRetention,
    AverageRetentionOfOthers,
    ClassSensitivity,
    ConfidenceDrop,
    Deletion,
    Insertion,
    MultiLabelAverageDrop,
    MultiLabelIncreaseInConfidence,
    explainer,
    fake_cam,
    multilabel_macro_scores,
    paired_ttest,
    register_with_quantus,
    wilcoxon_below,
)
from captum_contrast.minmax_cam import MinMaxCAM, minmax_weights
from captum_contrast.normalize import normalize
from captum_contrast.opti_cam import OptiCAM

__version__ = "0.1.0"

register_with_quantus()

__all__ = [
    "AverageDrop",
    "AverageDropOfOthers",
    "AverageGain",
    "AverageIncrease",
    "AverageRetention",
    "AverageRetentionOfOthers",
    "ClassSensitivity",
    "ConfidenceDrop",
    "ContrastGradCAM",
    "ContrastSet",
    "Deletion",
    "DifferenceSalience",
    "Insertion",
    "LayerContrastAttribution",
    "LayerGradients",
    "MinMaxCAM",
    "OptiCAM",
    "MultiLabelAverageDrop",
    "MultiLabelIncreaseInConfidence",
    "confusion_matrix",
    "explainer",
    "fake_cam",
    "layer_gradients",
    "minmax_weights",
    "multilabel_macro_scores",
    "normalize",
    "paired_ttest",
    "register_with_quantus",
    "vit_reshape_transform",
    "wilcoxon_below",
]
