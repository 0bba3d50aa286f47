"""ContrastGradCAM and FinerCAM against Captum, pytorch-grad-cam and torchcam on resnet50."""

from __future__ import annotations

import torch
from _timing import Section, environment, time_interleaved
from captum.attr import LayerGradCam
from torchvision.models import resnet18, resnet50

from captum_contrast.app.registry import METHODS


def _naive_case(model: torch.nn.Module, images: torch.Tensor, k: int) -> torch.Tensor:
    """CASE the obvious way: one LayerGradCam call per class (target and k contrasts)."""
    grad_cam = LayerGradCam(model, model.layer4)
    with torch.no_grad():
        logits = model(images)
    classes = logits.topk(k + 1, dim=1).indices
    for column in range(k + 1):
        grad_cam.attribute(images, target=classes[:, column])
    return classes


def run(repeats: int, quick: bool) -> list[Section]:
    from pytorch_grad_cam import GradCAM as PGCGradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from torchcam.methods import GradCAM as TorchcamGradCAM

    model = (resnet18 if quick else resnet50)(weights=None).eval()
    batch, size = (2, 64) if quick else (8, 224)
    images = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)

    captum_cam = LayerGradCam(model, model.layer4)
    contrast_cam = METHODS["contrast-grad-cam"].cls(model, model.layer4)
    finer_cam = METHODS["finer-cam"].cls(model, model.layer4)
    pgc_targets = [ClassifierOutputTarget(int(t)) for t in targets]

    def pgc_gradcam() -> None:
        with PGCGradCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
            cam(input_tensor=images, targets=pgc_targets)

    def torchcam_gradcam() -> None:
        extractor = TorchcamGradCAM(model, target_layer=model.layer4)
        try:
            extractor(targets.tolist(), model(images))
        finally:
            extractor.remove_hooks()

    def torchcam_finercam() -> None:
        from torchcam.methods import FinerCAM as TorchcamFinerCAM

        extractor = TorchcamFinerCAM(model, target_layer=model.layer4)
        try:
            extractor(targets.tolist(), model(images))
        finally:
            extractor.remove_hooks()

    def pgc_finercam() -> None:
        from pytorch_grad_cam import FinerCAM as PGCFinerCAM

        with PGCFinerCAM(model=model, target_layers=[model.layer4[-1]]) as cam:
            cam(input_tensor=images)  # its own references: classes 1-3 by logit distance

    def forward_only() -> None:
        with torch.no_grad():
            model(images)

    candidates = {
        "forward alone (no_grad)": forward_only,
        "Captum LayerGradCam": lambda: captum_cam.attribute(images, target=targets),
        "ContrastGradCAM k=1": lambda: contrast_cam.attribute(images, target=targets, k=1),
        "ContrastGradCAM k=3": lambda: contrast_cam.attribute(images, target=targets, k=3),
        "naive CASE k=3 (4 LayerGradCam calls)": lambda: _naive_case(model, images, 3),
        "FinerCAM k=3": lambda: finer_cam.attribute(images, target=targets, k=3),
        "torchcam FinerCAM": torchcam_finercam,
        "pytorch-grad-cam FinerCAM": pgc_finercam,
        "pytorch-grad-cam GradCAM": pgc_gradcam,
        "torchcam GradCAM": torchcam_gradcam,
    }
    medians = time_interleaved(candidates, repeats)
    notes = {
        "ContrastGradCAM k=3": "target: <= 1.25x LayerGradCam",
        "FinerCAM k=3": "target: <= 1.05x LayerGradCam",
        "pytorch-grad-cam GradCAM": "upsamples to input and min-max scales, on numpy",
    }
    arch = "resnet18" if quick else "resnet50"
    section = Section(
        title="ContrastGradCAM (CASE) and FinerCAM",
        baseline="Captum LayerGradCam",
        setup=f"torchvision {arch}(weights=None), layer4, batch {batch}, {size}x{size}, CPU; "
        f"{environment()}.",
        rows=[(name, medians[name], notes.get(name, "")) for name in candidates],
    )
    return [section]
