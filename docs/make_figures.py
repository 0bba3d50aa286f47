"""One small figure per method for docs/choosing.md, from the demo's trained network.

    PYTHONPATH=. python docs/make_figures.py        # writes docs/figures/*.png

The model is the one ``captum-contrast demo`` trains (loaded from the cache, or trained in
about a minute): a multi-label CNN on digit canvases, explained at its last conv block. Each
figure compares the method with Captum's ``LayerGradCam`` on the same rows, the digit's
ground-truth mask outlined in white. Seeded and single-threaded, so reruns give the same
pictures on the same machine.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's package

from captum_contrast.app.demo import pick_canvases  # noqa: E402
from captum_contrast.app.registry import METHODS, explain  # noqa: E402
from captum_contrast.data.canvases import MultiDigitCanvases  # noqa: E402
from captum_contrast.data.trained import single_thread, trained_model  # noqa: E402
from captum_contrast.viz import attribution_grid  # noqa: E402

FIGURES = Path(__file__).resolve().parent / "figures"

# figure name -> (digits per canvas shown, the methods beside Grad-CAM, signed columns)
PANELS = {
    "contrast_grad_cam": (2, ("contrast-grad-cam",), ()),
    "minmax_cam": (3, ("minmax-cam", "d-minmax-cam"), ()),
    "opti_cam": (2, ("opti-cam",), ()),
    "difference_salience": (2, ("difference-salience",), ("difference-salience",)),
}


def rows_of(test: MultiDigitCanvases, detected: Tensor, digits: int) -> tuple[Tensor, Tensor]:
    """The canvas index and the class of each row: one row per digit of one canvas."""
    canvas = pick_canvases(detected, test.labels)[digits - 1]
    classes = torch.nonzero(test.labels[canvas]).flatten()
    return torch.full_like(classes, canvas), classes


def figure(name: str, model: nn.Module, test: MultiDigitCanvases, detected: Tensor) -> Path:
    """Draw ``docs/figures/<name>.png``: Grad-CAM and the method, one row per digit."""
    digits, methods, signed = PANELS[name]
    index, classes = rows_of(test, detected, digits)
    images = test.images[index]
    maps = {
        METHODS[method].title: explain(method, model, model.features, images, classes)
        for method in ("grad-cam", *methods)
    }
    path = FIGURES / f"{name}.png"
    attribution_grid(
        images,
        maps,
        masks=test.masks[index, classes],
        row_titles=[f"digit {int(c)}" for c in classes],
        path=path,
        signs={METHODS[method].title: "all" for method in signed},
        panel_size=1.3,
    )
    return path


def main() -> int:
    """Write every figure; 0 on success."""
    torch.manual_seed(0)
    with single_thread():
        model, _, _ = trained_model(progress=False)
        test = MultiDigitCanvases(n=64, split="test", seed=1)
        with torch.no_grad():
            detected = torch.sigmoid(model(test.images)) > 0.5
        for name in PANELS:
            print(figure(name, model, test, detected))
    return 0


if __name__ == "__main__":
    sys.exit(main())
