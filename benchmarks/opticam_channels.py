"""OptiCAM against ScoreCAM as the number of feature maps grows (resnet18: 512, resnet50: 2048).

ScoreCAM runs one masked forward per channel and image; an OptiCAM iteration is one forward
and one backward to the input whatever the number of channels. So their ratio depends on
the architecture. This script measures it on resnet18 and resnet50 at batch 2 (to keep the
ScoreCAM runs to minutes on a 2-core CPU) and writes ``results/opticam_channels.md``.
"""

from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

import torch
from _timing import environment, time_interleaved
from torchvision.models import resnet18, resnet50

from captum_contrast import OptiCAM

HERE = Path(__file__).resolve().parent


def measure(arch, batch: int, size: int, n_iter: int) -> tuple[float, float, int]:
    from pytorch_grad_cam import ScoreCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    torch.manual_seed(0)
    model = arch(weights=None).eval()
    images = torch.rand(batch, 3, size, size)
    with torch.no_grad():
        targets = model(images).argmax(dim=1)
    cam = OptiCAM(model, model.layer4)

    def score_cam() -> None:
        with ScoreCAM(model=model, target_layers=[model.layer4[-1]]) as score:
            score.batch_size = 64
            with contextlib.redirect_stderr(io.StringIO()):  # its per-image tqdm bars
                score(
                    input_tensor=images, targets=[ClassifierOutputTarget(int(t)) for t in targets]
                )

    medians = time_interleaved(
        {
            "opticam": lambda: cam.attribute(
                images, target=targets, n_iter=n_iter, early_stop=None
            ),
            "scorecam": score_cam,
        },
        repeats=1,
        warmup=0,
    )
    channels = model.layer4[-1].conv1.in_channels
    return medians["opticam"], medians["scorecam"], channels


def main() -> int:
    quick = "--quick" in sys.argv
    batch, size, n_iter = (1, 64, 5) if quick else (2, 224, 100)
    lines = [
        "# OptiCAM vs ScoreCAM by number of channels",
        "",
        f"Batch {batch}, {size}x{size}, CPU, `layer4`; OptiCAM {n_iter} iterations "
        f"(`early_stop=None`), pytorch-grad-cam ScoreCAM with batch_size 64; one run each; "
        f"{environment()}.",
        "",
        "| model | channels | OptiCAM (s) | ScoreCAM (s) | ScoreCAM / OptiCAM |",
        "|---|---:|---:|---:|---:|",
    ]
    for name, arch in (("resnet18", resnet18), ("resnet50", resnet50)):
        opticam, scorecam, channels = measure(arch, batch, size, n_iter)
        lines.append(
            f"| {name} | {channels} | {opticam:.1f} | {scorecam:.1f} | {scorecam / opticam:.2f}x |"
        )
        print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    print(text)
    if not quick:
        (HERE / "results" / "opticam_channels.md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
