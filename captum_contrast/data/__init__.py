"""Offline data and small models: digit canvases with exact masks, and a small CNN."""

from captum_contrast.data.canvases import DigitCanvases, MultiDigitCanvases
from captum_contrast.data.models import fit_classifier, small_cnn
from captum_contrast.data.salience import SalienceDigits

__all__ = ["DigitCanvases", "MultiDigitCanvases", "SalienceDigits", "fit_classifier", "small_cnn"]
