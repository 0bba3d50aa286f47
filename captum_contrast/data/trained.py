"""Small CNNs trained offline on the digit canvases, cached on disk by configuration.

The demo, ``captum-contrast evaluate`` on canvases and the tutorials explain these models.
Weights are cached under ``$XDG_CACHE_HOME/captum_contrast`` (default
``~/.cache/captum_contrast``), keyed by a hash of the training configuration; nothing is
downloaded.
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
from torch import nn
from tqdm.auto import tqdm

from captum_contrast.data.canvases import DigitCanvases, MultiDigitCanvases
from captum_contrast.data.models import small_cnn


@dataclass(frozen=True)
class DemoConfig:
    """Everything that determines the demo model; its hash names the cached weights.

    ``task="multi-label"``: :class:`~captum_contrast.data.MultiDigitCanvases`, ten sigmoid outputs, BCE (the
    demo). ``task="single-label"``: :class:`~captum_contrast.data.DigitCanvases`, softmax cross-entropy (the
    tutorials on CASE and Opti-CAM, whose metrics read softmax probabilities).

    Example:
        >>> from captum_contrast.data.trained import DemoConfig
        >>> DemoConfig().key() == DemoConfig(epochs=8).key()  # the same settings, the same weights
        True
        >>> DemoConfig(epochs=2).key() == DemoConfig().key()
        False
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
    """``$XDG_CACHE_HOME/captum_contrast``, or ``~/.cache/captum_contrast``.

    Example:
        >>> from captum_contrast.data.trained import cache_dir
        >>> cache_dir().name
        'captum_contrast'
    """
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "captum_contrast"


def demo_model(width: int = 16) -> nn.Module:
    """The demo's ten-label CNN: :func:`captum_contrast.data.models.small_cnn` with batch norm."""
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
    """The demo model, from the cache or trained and cached: ``(model, weights_path, cached)``.

    Example:
        >>> import tempfile
        >>> from captum_contrast.data.trained import QUICK_CONFIG, trained_model
        >>> cache = tempfile.mkdtemp()
        >>> model, path, cached = trained_model(QUICK_CONFIG, cache, progress=False)  # trains
        >>> cached, path.name.startswith("demo-")
        (False, True)
        >>> trained_model(QUICK_CONFIG, cache)[2]  # loaded from the cache
        True
    """
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
