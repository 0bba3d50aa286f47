"""``captum-contrast demo``: train a small CNN offline, explain it five ways, evaluate it.

The model is a multi-label sigmoid CNN on the digit canvases of
:mod:`captum_contrast.datasets` (1 to 3 handwritten digits per 32 px canvas, exact masks).
Every method explains the same model at the same layer (the last conv block, 8x8):

* Grad-CAM (Captum's ``LayerGradCam``) and ContrastGradCAM (CASE; contrast: the runner-up
  class) and OptiCAM work on any classifier;
* MinMaxCAM needs multi-label outputs: it subtracts the other detected digits;
* DifferenceSalience explains a difference of two scores; on this ten-label model it is the
  pairwise difference "this digit rather than the runner-up class" (signed: red for the
  digit, blue for the runner-up).

The trained weights are cached under ``$XDG_CACHE_HOME/captum_contrast`` (default
``~/.cache/captum_contrast``), keyed by a hash of the training configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from captum_contrast.datasets import DigitCanvases, MultiDigitCanvases
from captum_contrast.evaluate import (
    METHODS,
    MULTI_LABEL_METRICS,
    explain,
    run_evaluation,
    runner_up,
)
from captum_contrast.models import small_cnn
from captum_contrast.viz import attribution_grid

FIGURE_METHODS = ("grad-cam", "contrast-grad-cam", "minmax-cam", "opti-cam", "difference-salience")
TABLE_METHODS = FIGURE_METHODS + ("fake-cam",)
TABLE_METRICS = MULTI_LABEL_METRICS + ("mass-on-object",)


@dataclass(frozen=True)
class DemoConfig:
    """Everything that determines the demo model; its hash names the cached weights.

    ``task="multi-label"``: :class:`MultiDigitCanvases`, ten sigmoid outputs, BCE (the
    demo). ``task="single-label"``: :class:`DigitCanvases`, softmax cross-entropy (the
    tutorials on CASE and Opti-CAM, whose metrics read softmax probabilities).
    """

    task: str = "multi-label"
    size: int = 32
    train_canvases: int = 4000
    epochs: int = 8
    batch_size: int = 64
    lr: float = 1e-2
    width: int = 16
    pos_weight: float = 3.0  # BCE weight of present digits: 1-3 of 10 labels are positive
    seed: int = 0

    def key(self) -> str:
        text = json.dumps({"model": "small_cnn+bn/v1", **asdict(self)}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


QUICK_CONFIG = DemoConfig(train_canvases=512, epochs=2, width=8)
"""A few seconds of training, for tests: the pipeline runs, the maps mean little."""
SINGLE_LABEL_CONFIG = DemoConfig(task="single-label", train_canvases=3000, epochs=5)
"""The tutorials' softmax classifier of one digit per canvas."""


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/captum_contrast``, or ``~/.cache/captum_contrast``."""
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "captum_contrast"


def demo_model(width: int = 16) -> nn.Module:
    """The demo's ten-label CNN: :func:`captum_contrast.models.small_cnn` with batch norm."""
    return small_cnn(num_classes=10, in_channels=1, width=width, batch_norm=True)


def train(config: DemoConfig, progress: bool = True) -> nn.Module:
    """Train :func:`demo_model` as ``config`` says, on one thread; returns it in eval mode.

    One thread also makes the result independent of the machine's thread count, so every
    entry point (demo, evaluate, tutorials) caches the same weights for a configuration.
    """
    if config.task not in ("multi-label", "single-label"):
        raise ValueError(f"`task` must be 'multi-label' or 'single-label', got {config.task!r}")
    with single_thread():
        return _train(config, progress)


def _train(config: DemoConfig, progress: bool) -> nn.Module:
    torch.manual_seed(config.seed)
    dataset = MultiDigitCanvases if config.task == "multi-label" else DigitCanvases
    images, labels, _ = dataset(
        n=config.train_canvases, split="train", size=config.size, seed=config.seed
    ).tensors()
    model = demo_model(config.width).train()
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, nonlinearity="relu")
            nn.init.zeros_(module.bias)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr)
    steps_per_epoch = config.train_canvases // config.batch_size
    total = config.epochs * steps_per_epoch
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, config.lr, total_steps=total)
    pos_weight = torch.full((10,), config.pos_weight)
    generator = torch.Generator().manual_seed(config.seed)
    bar = tqdm(total=total, desc="training the demo CNN", disable=not progress)
    for _ in range(config.epochs):
        order = torch.randperm(config.train_canvases, generator=generator)
        for step in range(steps_per_epoch):
            batch = order[step * config.batch_size : (step + 1) * config.batch_size]
            logits = model(images[batch])
            loss = (
                F.cross_entropy(logits, labels[batch])
                if config.task == "single-label"
                else F.binary_cross_entropy_with_logits(
                    logits, labels[batch], pos_weight=pos_weight
                )
            )
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    return model.eval()


def trained_model(
    config: DemoConfig | None = None, cache: str | Path | None = None, progress: bool = True
) -> tuple[nn.Module, Path, bool]:
    """The demo model, from the cache or trained and cached: ``(model, weights_path, cached)``."""
    config = config or DemoConfig()
    path = Path(cache or cache_dir()) / f"demo-{config.key()}.pt"
    model = demo_model(config.width)
    if path.is_file():
        try:
            model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
            return model.eval(), path, True
        except Exception:  # torch.load raises KeyError, UnpicklingError, ... on a damaged file
            pass  # damaged, or written by an older model definition: train it again
    model = train(config, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    torch.save(model.state_dict(), partial)
    partial.replace(path)  # atomic: a concurrent demo never reads half a file
    return model, path, False


@contextmanager
def single_thread() -> Iterator[None]:
    """Run torch on one intra-op thread, then restore the setting.

    The demo's convolutions are tiny (32 px, 16-64 channels): a second thread saves little
    on an idle machine, and on a busy one the threads' spin-waiting made training 15x slower.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


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
) -> tuple[dict[str, Tensor], Tensor]:
    """Every figure method's maps for ``(images, classes)``, and the runner-up classes."""
    layer = model.features
    with torch.no_grad():
        contrasts = runner_up(model(images), classes)
    extra = {
        "opti-cam": {"n_iter": opti_iters, "show_progress": progress},
        "difference-salience": {"contrast": contrasts},
    }
    maps = {
        METHODS[name].title: explain(name, model, layer, images, classes, **extra.get(name, {}))
        for name in FIGURE_METHODS
    }
    return maps, contrasts


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
        config: Training configuration; :class:`DemoConfig` by default (``QUICK_CONFIG`` for
            a fast smoke run).
        eval_canvases: Test canvases scored in the metrics table (every detected digit of
            each is one explained example).
        opti_iters: OptiCAM's Adam steps.
        cache: Directory of cached weights; :func:`cache_dir` by default.
        progress: Show progress bars.
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
    maps, contrasts = figure_maps(model, images, classes, opti_iters, progress)
    with torch.no_grad():
        probs = torch.sigmoid(model(images))
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
        signs={METHODS["difference-salience"].title: "all"},
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
        method_kwargs={"opti-cam": {"n_iter": opti_iters}},
        progress=progress,
    )
    print(f"figure:  {figure.resolve()}")
    print(f"metrics: {tables[0].resolve()}")
    print(tables[0].read_text(encoding="utf-8"))
    return 0
