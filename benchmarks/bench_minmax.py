"""MinMaxCAM against one Captum LayerGradCam call per detected label; peak memory per label count."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from _timing import Section, environment, time_interleaved
from captum.attr import LayerGradCam
from torch import nn
from torch.profiler import ProfilerActivity, profile
from torchvision.models import resnet18, resnet50

from captum_contrast.methods.minmax_cam import MinMaxCAM

DETECTED = 3


def _setup(num_labels: int, detected: int, quick: bool) -> tuple[nn.Module, torch.Tensor]:
    """A sigmoid multi-label resnet whose fc bias makes exactly ``detected`` labels fire."""
    torch.manual_seed(0)
    model = (resnet18 if quick else resnet50)(weights=None)
    model.fc = nn.Linear(model.fc.in_features, num_labels)
    model.eval()  # after the new head, which a module starts in training mode
    batch, size = (2, 64) if quick else (8, 224)
    images = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        # Small weights keep every logit near its bias: +6 for the detected labels, -6 otherwise.
        model.fc.weight.mul_(0.01)
        model.fc.bias.fill_(-6.0)
        model.fc.bias[torch.randperm(num_labels)[:detected]] = 6.0
        counts = (torch.sigmoid(model(images)) > 0.5).sum(dim=1)
    if not bool((counts == detected).all()):
        raise RuntimeError(f"expected {detected} detections per image, got {counts.tolist()}")
    return model, images


def _naive_minmax(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """MinMax-Grad the obvious way: one LayerGradCam call per detected label, maps combined."""
    grad_cam = LayerGradCam(model, model.layer4)
    with torch.no_grad():
        logits = model(images)
    detections = torch.sigmoid(logits) > 0.5
    targets = logits.argmax(dim=1)
    maps = {
        int(label): grad_cam.attribute(images, target=int(label))
        for label in detections.any(0).nonzero()
    }
    others = torch.zeros_like(maps[int(targets[0])])
    for label, label_map in maps.items():
        is_other = (detections[:, label] & (targets != label)).float().view(-1, 1, 1, 1)
        others += is_other * label_map
    divisor = (detections.sum(dim=1) - 1).clamp(min=1).view(-1, 1, 1, 1)
    target_maps = torch.cat([maps[int(t)][row : row + 1] for row, t in enumerate(targets)])
    return torch.relu(target_maps - others / divisor)


def _peak_memory_mib(run: Callable[[], object]) -> float:
    """Peak of the memory torch allocates during ``run`` on top of what was live before."""
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        run()
    events = sorted(
        (event.start_ns(), event.nbytes())
        for event in prof.profiler.kineto_results.events()
        if event.name() == "[memory]"
    )
    live = peak = 0
    for _, nbytes in events:  # allocations are positive, frees negative
        live += nbytes
        peak = max(peak, live)
    return peak / 2**20


def _memory_table(quick: bool) -> str:
    rows = ["| method | labels | detected | peak added memory (MiB) |", "|---|---:|---:|---:|"]
    for num_labels, detected in ((20, DETECTED), (80, DETECTED), (80, 80)):
        model, images = _setup(num_labels, detected, quick)
        grad_cam, minmax = LayerGradCam(model, model.layer4), MinMaxCAM(model, model.layer4)
        peaks = {
            "Captum LayerGradCam": _peak_memory_mib(partial(grad_cam.attribute, images, target=0)),
            "MinMaxCAM minmax": _peak_memory_mib(partial(minmax.attribute, images)),
            "MinMaxCAM d-minmax": _peak_memory_mib(
                partial(minmax.attribute, images, variant="d-minmax")
            ),
        }
        for name, peak in peaks.items():
            rows.append(f"| {name} | {num_labels} | {detected} | {peak:.1f} |")
    return "\n".join(rows)


def run(repeats: int, quick: bool) -> list[Section]:
    model, images = _setup(20, DETECTED, quick)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    captum_cam = LayerGradCam(model, model.layer4)
    gradient_form = MinMaxCAM(model, model.layer4)
    cam_form = MinMaxCAM(model, model.layer4, classifier=model.fc)
    # The naive baseline must compute the same maps, or the comparison means nothing.
    torch.testing.assert_close(
        gradient_form.attribute(images), _naive_minmax(model, images), atol=1e-7, rtol=1e-4
    )

    def forward_only() -> None:
        with torch.no_grad():
            model(images)

    candidates = {
        "forward alone (no_grad)": forward_only,
        "Captum LayerGradCam": lambda: captum_cam.attribute(images, target=targets),
        "MinMaxCAM minmax": lambda: gradient_form.attribute(images),
        "MinMaxCAM d-minmax": lambda: gradient_form.attribute(images, variant="d-minmax"),
        "MinMaxCAM minmax, CAM form": lambda: cam_form.attribute(images),
        f"naive MinMax-Grad ({DETECTED} LayerGradCam calls)": lambda: _naive_minmax(model, images),
    }
    medians = time_interleaved(candidates, repeats)
    notes = {
        "MinMaxCAM minmax": "target: <= 1.25x LayerGradCam",
        "MinMaxCAM d-minmax": "target: <= 1.25x LayerGradCam",
    }
    arch = "resnet18" if quick else "resnet50"
    batch, size = images.shape[0], images.shape[-1]

    extra = (
        "Peak memory torch allocates during one attribute call (torch.profiler memory "
        "events; target: flat in the number of labels and of detections).\n\n"
        + _memory_table(quick)
    )
    section = Section(
        title="MinMaxCAM (multi-label)",
        baseline="Captum LayerGradCam",
        setup=f"torchvision {arch}(weights=None) with fc = Linear(*, 20) and sigmoid detections, "
        f"{DETECTED} detected labels per image, layer4, batch {batch}, {size}x{size}, CPU; "
        f"{environment()}.",
        rows=[(name, medians[name], notes.get(name, "")) for name in candidates],
        extra=extra,
    )
    return [section]
