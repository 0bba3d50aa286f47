"""OptiCAM against pytorch-grad-cam ScoreCAM and a plain re-implementation of its loop."""

from __future__ import annotations

import contextlib
import io

import torch
import torch.nn.functional as F
from _timing import Section, environment, time_interleaved
from torchvision.models import resnet18

from captum_contrast.methods.opti_cam import OptiCAM


def _plain_opticam(
    model: torch.nn.Module,
    layer: torch.nn.Module,
    images: torch.Tensor,
    targets: torch.Tensor,
    n_iter: int,
    lr: float = 0.1,
) -> torch.Tensor:
    """The reference loop written the obvious way: parameters keep requiring grad, and each
    iteration re-runs the hooked forward for A and y_c(x) before the masked forward."""
    captured: dict[str, torch.Tensor] = {}

    def hooked_forward() -> torch.Tensor:
        handle = layer.register_forward_hook(lambda m, i, o: captured.__setitem__("A", o.detach()))
        try:
            return model(images)
        finally:
            handle.remove()

    index = targets[:, None]
    hooked_forward()
    u = torch.full(captured["A"].shape[:2], 0.5, requires_grad=True)
    optimizer = torch.optim.Adam([u], lr=lr)
    for _ in range(n_iter):
        original = hooked_forward().gather(1, index)
        saliency = torch.einsum("bk,bkhw->bhw", torch.softmax(u, 1), captured["A"])[:, None]
        up = F.interpolate(saliency, images.shape[-2:], mode="bilinear", align_corners=False)
        # max(dim) rather than amax: at tied pixels amax splits the (sub)gradient, which
        # Adam's sign-like first steps would turn into different maps.
        flat = up.flatten(1)
        low = flat.min(1).values[:, None, None, None]
        mask = (up - low) / (flat.max(1).values[:, None, None, None] - low)
        loss = (original - model(images * mask).gather(1, index)).sum()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    hooked_forward()
    model.zero_grad(set_to_none=True)
    with torch.no_grad():
        return torch.einsum("bk,bkhw->bhw", torch.softmax(u, 1), captured["A"])[:, None]


def run(repeats: int, quick: bool) -> list[Section]:
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    model = resnet18(weights=None).eval()
    batch, size = (1, 64) if quick else (8, 224)
    short, long = (2, 4) if quick else (50, 100)
    images = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)

    cam = OptiCAM(model, model.layer4)
    pgc_targets = [ClassifierOutputTarget(int(t)) for t in targets]
    score_batch = 64

    def opticam(n_iter: int) -> torch.Tensor:
        return cam.attribute(images, target=targets, n_iter=n_iter, early_stop=None)

    def score_cam() -> None:
        with ScoreCAM(model=model, target_layers=[model.layer4[-1]]) as score:
            score.batch_size = score_batch
            with contextlib.redirect_stderr(io.StringIO()):  # its per-image tqdm bars
                score(input_tensor=images, targets=pgc_targets)

    maps: dict[str, torch.Tensor] = {}

    def keep(name: str, compute) -> None:  # the timed runs also give the maps to compare
        maps[name] = compute()

    fast_label, plain_label = f"OptiCAM n_iter={long}", f"plain reference loop n_iter={long}"
    # Each run takes tens of seconds at full size: few repetitions, no warm-up.
    fast_repeats, slow_repeats = (repeats, repeats) if quick else (min(repeats, 3), 1)
    warmup = 1 if quick else 0
    medians = time_interleaved(
        {
            fast_label: lambda: keep(fast_label, lambda: opticam(long)),
            f"OptiCAM n_iter={short}": lambda: opticam(short),
        },
        fast_repeats,
        warmup,
    )
    medians.update(
        time_interleaved(
            {
                plain_label: lambda: keep(
                    plain_label, lambda: _plain_opticam(model, model.layer4, images, targets, long)
                ),
                "pytorch-grad-cam ScoreCAM": score_cam,
            },
            slow_repeats,
            warmup,
        )
    )
    max_diff = float((maps[fast_label] - maps[plain_label]).abs().max())
    notes = {
        f"plain reference loop n_iter={long}": f"target: >= 1.5x; max |map diff| = {max_diff:.2e}",
        "pytorch-grad-cam ScoreCAM": f"target: >= 5x; batch_size={score_batch}",
    }
    return [
        Section(
            title="OptiCAM",
            baseline=f"OptiCAM n_iter={long}",
            setup=f"torchvision resnet18(weights=None), layer4, batch {batch}, {size}x{size}, CPU; "
            f"objective mask, normalization range, lr 0.1, early_stop=None (every method runs all "
            f"its iterations); {environment()}.",
            rows=[(name, seconds, notes.get(name, "")) for name, seconds in medians.items()],
            extra=f"OptiCAM: median of {fast_repeats} interleaved runs; the plain loop and "
            f"ScoreCAM ({batch}x512 masked forwards): median of {slow_repeats}; warm-up runs: "
            f"{warmup}. The plain loop keeps the parameters requiring grad (so "
            "every backward builds weight gradients) and re-runs the hooked forward for A and "
            f"y_c(x) each iteration; its maps equal OptiCAM's to {max_diff:.2e} (max abs diff).",
        )
    ]
