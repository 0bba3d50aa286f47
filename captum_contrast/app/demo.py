"""``captum-contrast demo``: train a small CNN offline, explain it five ways, evaluate it.

The model is a multi-label sigmoid CNN on the digit canvases of
:mod:`captum_contrast.data.canvases` (1 to 3 handwritten digits per 32 px canvas, exact masks).
Every method explains the same model at the same layer (the last conv block, 8x8):

* Grad-CAM (Captum's ``LayerGradCam``) and ContrastGradCAM (CASE; contrast: the runner-up
  class) and OptiCAM work on any classifier;
* MinMaxCAM needs multi-label outputs: it subtracts the other detected digits;
* DifferenceSalience explains a difference of two scores; on this ten-label model it is the
  pairwise difference "this digit rather than the runner-up class" (signed: red for the
  digit, blue for the runner-up).

The trained weights come from :mod:`captum_contrast.data.trained`, cached on disk.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

from captum_contrast._targets import runner_up
from captum_contrast.app.evaluation import run_evaluation
from captum_contrast.app.registry import (
    METHODS,
    MULTI_LABEL_METRICS,
    explain,
    iteration_overrides,
    method_names,
)
from captum_contrast.data.canvases import MultiDigitCanvases
from captum_contrast.data.trained import DemoConfig, single_thread, trained_model
from captum_contrast.viz import attribution_grid

FIGURE_METHODS = method_names("figure")
TABLE_METHODS = method_names("canvases")
TABLE_METRICS = MULTI_LABEL_METRICS + ("mass-on-object",)


def pick_canvases(detected: Tensor, labels: Tensor) -> list[int]:
    """The first canvas with 1, 2 and 3 digits whose detections ``(n, 10)`` are its labels."""
    correct = (detected == labels.bool()).all(dim=1)
    counts = labels.sum(dim=1)
    chosen = []
    for count in (1, 2, 3):
        candidates = torch.nonzero((counts == count) & correct).flatten().tolist()
        fallback = torch.nonzero(counts == count).flatten().tolist()
        chosen += (candidates or fallback)[:1]
    return chosen


def figure_maps(
    model: nn.Module, images: Tensor, classes: Tensor, opti_iters: int, progress: bool
) -> dict[str, Tensor]:
    """Every figure method's maps for ``(images, classes)``, by method title.

    DifferenceSalience contrasts each digit with its runner-up class, chosen inside the
    method from the forward pass it explains.
    """
    return {
        METHODS[name].title: explain(
            name,
            model,
            model.features,
            images,
            classes,
            **METHODS[name].run_kwargs(opti_iters, progress),
        )
        for name in FIGURE_METHODS
    }


def run_demo(
    out_dir: str | Path = "./captum_contrast_demo",
    config: DemoConfig | None = None,
    *,
    eval_canvases: int = 64,
    opti_iters: int = 100,
    cache: str | Path | None = None,
    progress: bool = True,
) -> int:
    """Train (or load) the demo model, write ``demo.png`` and ``metrics.md``/``.csv``; 0 on success.

    Args:
        out_dir: Where the figure and the tables go.
        config: Training configuration; :class:`~captum_contrast.data.trained.DemoConfig` by default (``QUICK_CONFIG`` for
            a fast smoke run).
        eval_canvases: Test canvases scored in the metrics table (every detected digit of
            each is one explained example).
        opti_iters: OptiCAM's Adam steps.
        cache: Directory of cached weights; :func:`~captum_contrast.data.trained.cache_dir` by default.
        progress: Show progress bars.

    Example:
        >>> import contextlib, io, tempfile
        >>> from pathlib import Path
        >>> from captum_contrast.app.demo import run_demo
        >>> from captum_contrast.data.trained import QUICK_CONFIG
        >>> out = Path(tempfile.mkdtemp())
        >>> with contextlib.redirect_stdout(io.StringIO()):  # seconds: the tiny QUICK_CONFIG model
        ...     status = run_demo(out, QUICK_CONFIG, eval_canvases=16, opti_iters=2, cache=out, progress=False)
        >>> status, (out / "demo.png").is_file(), (out / "metrics.md").is_file()
        (0, True, True)
    """
    with single_thread():
        return _run_demo(
            Path(out_dir), config or DemoConfig(), eval_canvases, opti_iters, cache, progress
        )


def _run_demo(
    out: Path,
    config: DemoConfig,
    eval_canvases: int,
    opti_iters: int,
    cache: str | Path | None,
    progress: bool,
) -> int:
    model, weights, cached = trained_model(config, cache, progress)
    print(f"model: {'loaded from cache' if cached else 'trained and cached'} at {weights}")
    test = MultiDigitCanvases(n=max(eval_canvases, 64), split="test", size=config.size, seed=1)
    with torch.no_grad():
        detected = torch.sigmoid(model(test.images)) > 0.5
    accuracy = (detected == test.labels.bool()).float().mean().item()
    print(f"model: {100 * accuracy:.1f}% of the {len(test)} test canvases' digit labels right")
    chosen = pick_canvases(detected, test.labels)
    rows = [(i, c) for i in chosen for c in torch.nonzero(test.labels[i]).flatten().tolist()]
    index, classes = torch.tensor([r[0] for r in rows]), torch.tensor([r[1] for r in rows])
    images = test.images[index]
    maps = figure_maps(model, images, classes, opti_iters, progress)
    with torch.no_grad():
        logits = model(images)  # one forward for the titles: probabilities and runner-ups
    probs, contrasts = torch.sigmoid(logits), runner_up(logits, classes)
    titles = [
        f"canvas {i}: digit {c}\np={probs[row, c]:.2f}, runner-up {int(contrasts[row])}"
        for row, (i, c) in enumerate(rows)
    ]
    figure = out / "demo.png"
    attribution_grid(
        images,
        maps,
        masks=test.masks[index, classes],
        row_titles=titles,
        path=figure,
        signs={METHODS[name].title: "all" for name in FIGURE_METHODS if METHODS[name].signed},
        suptitle="What each method highlights for one digit (white outline: that digit)\n"
        "ContrastGradCAM and DifferenceSalience contrast it with its runner-up class; "
        "DifferenceSalience is signed: red for the digit, blue for the runner-up",
    )
    subset = torch.utils.data.Subset(test, range(eval_canvases))
    tables = run_evaluation(
        model,
        model.features,
        subset,
        TABLE_METHODS,
        TABLE_METRICS,
        out,
        targets="detections",
        batch_size=32,
        method_kwargs=iteration_overrides(opti_iters),
        progress=progress,
    )
    print(f"figure:  {figure.resolve()}")
    print(f"metrics: {tables[0].resolve()}")
    print(tables[0].read_text(encoding="utf-8"))
    return 0
