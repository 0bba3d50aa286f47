"""Contrastive CAM explanations for Captum, evaluated with Quantus.

Importing the package registers its metrics with Quantus.
"""

from captum_contrast._base import LayerContrastAttribution, vit_reshape_transform
from captum_contrast._layer import LayerGradients, layer_gradients
from captum_contrast.analysis import active_channels
from captum_contrast.contrast_grad_cam import ContrastGradCAM
from captum_contrast.contrast_sets import ContrastSet, confusion_matrix
from captum_contrast.datasets import DigitCanvases, MultiDigitCanvases, SalienceDigits
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
from captum_contrast.models import fit_classifier, small_cnn
from captum_contrast.normalize import normalize
from captum_contrast.opti_cam import OptiCAM
from captum_contrast.training import (
    ContrastSalienceLoss,
    CYBORGLoss,
    DifferenceSalienceLoss,
    KernelUsageRegularizedLinear,
    PerClassSalienceLoss,
    class_activation_maps,
)

__version__ = "0.1.0"

register_with_quantus()

__all__ = [
    "AverageDrop",
    "AverageDropOfOthers",
    "AverageGain",
    "AverageIncrease",
    "AverageRetention",
    "AverageRetentionOfOthers",
    "CYBORGLoss",
    "ClassSensitivity",
    "ConfidenceDrop",
    "ContrastGradCAM",
    "ContrastSalienceLoss",
    "ContrastSet",
    "Deletion",
    "DifferenceSalience",
    "DifferenceSalienceLoss",
    "DigitCanvases",
    "Insertion",
    "KernelUsageRegularizedLinear",
    "LayerContrastAttribution",
    "LayerGradients",
    "MinMaxCAM",
    "MultiDigitCanvases",
    "MultiLabelAverageDrop",
    "MultiLabelIncreaseInConfidence",
    "OptiCAM",
    "PerClassSalienceLoss",
    "SalienceDigits",
    "active_channels",
    "class_activation_maps",
    "confusion_matrix",
    "explainer",
    "fake_cam",
    "fit_classifier",
    "layer_gradients",
    "minmax_weights",
    "multilabel_macro_scores",
    "normalize",
    "paired_ttest",
    "register_with_quantus",
    "small_cnn",
    "vit_reshape_transform",
    "wilcoxon_below",
]
