"""Offline data and small models: digit canvases with exact masks, and a small CNN."""

from captum_contrast.data.canvases import DigitCanvases, MultiDigitCanvases, SalienceDigits
from captum_contrast.data.models import fit_classifier, small_cnn

__all__ = ["DigitCanvases", "MultiDigitCanvases", "SalienceDigits", "fit_classifier", "small_cnn"]
