"""What reading another output costs: ``scores=`` against the classification call and a wrapper.

A ``RegionScores`` call on a torchvision segmentation network (FCN-ResNet50, dict output)
against the same call on the hand-written wrapped forward, Captum's ``LayerGradCam`` on that
wrapper, and the plain classification call of the same backbone (ResNet50): the selection
adds a masked mean to the forward, nothing else.
"""

from __future__ import annotations

import torch
from _timing import Section, environment, time_interleaved
from captum.attr import LayerGradCam
from torchvision.models import resnet18, resnet50
from torchvision.models.segmentation import fcn_resnet50

from captum_contrast import ContrastGradCAM
from captum_contrast.scores import ClassScores, RegionScores


def run(repeats: int, quick: bool) -> list[Section]:
    torch.manual_seed(0)
    batch, size = (2, 64) if quick else (4, 224)
    images = torch.rand(batch, 3, size, size)
    segmenter = fcn_resnet50(weights=None, weights_backbone=None, num_classes=21).eval()
    classifier = (resnet18 if quick else resnet50)(weights=None).eval()
    region = torch.zeros(size, size, dtype=torch.bool)
    region[size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = True
    scores = RegionScores(region)

    def wrapped(x: torch.Tensor) -> torch.Tensor:
        return scores(segmenter(x)["out"])

    seg_layer = segmenter.backbone.layer4
    arch = "resnet18" if quick else "resnet50"
    candidates = {
        f"classification: ContrastGradCAM ({arch})": lambda: ContrastGradCAM(
            classifier, classifier.layer4
        ).attribute(images, 1),
        "classification: ContrastGradCAM, scores=ClassScores()": lambda: ContrastGradCAM(
            classifier, classifier.layer4
        ).attribute(images, 1, scores=ClassScores()),
        "segmentation: ContrastGradCAM, scores=RegionScores": lambda: ContrastGradCAM(
            segmenter, seg_layer
        ).attribute(images, 1, scores=scores),
        "segmentation: ContrastGradCAM on a wrapped forward": lambda: ContrastGradCAM(
            wrapped, seg_layer
        ).attribute(images, 1),
        "segmentation: Captum LayerGradCam on a wrapped forward": lambda: LayerGradCam(
            wrapped, seg_layer
        ).attribute(images, 1),
    }
    medians = time_interleaved(candidates, repeats)
    return [
        Section(
            title="Any output: RegionScores on a segmentation network",
            baseline="segmentation: ContrastGradCAM on a wrapped forward",
            setup=f"fcn_resnet50(weights=None, 21 classes) and {arch}(weights=None), layer4, "
            f"batch {batch}, {size}x{size}, a centred square region; {environment()}.",
            rows=[(name, medians[name], "") for name in candidates],
            extra="The two classification rows compare `scores=ClassScores()` with the "
            "default (the same call); the segmentation rows compare `scores=RegionScores` "
            "with the wrapper a user would write. FCN's forward upsamples to the input, so "
            "it costs more than the classifier's whatever reads it.",
        )
    ]
