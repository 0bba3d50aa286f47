"""Progress of a run: one bar on rank 0 (images/s, ETA) and the model's forward count."""

from __future__ import annotations

from types import TracebackType
from typing import Any

from torch import nn
from tqdm.auto import tqdm


class Progress:
    """A tqdm bar over images, counting from those a resumed run already had.

    Example:
        >>> from captum_contrast.app.progress import Progress
        >>> with Progress(10, 4, enabled=False) as bar:
        ...     bar.update(6)
        >>> bar.done
        10
    """

    def __init__(self, total: int, done: int, *, enabled: bool) -> None:
        self.done = done
        self._bar = (
            tqdm(total=total, initial=done, unit="img", desc="evaluate", dynamic_ncols=True)
            if enabled
            else None
        )

    def update(self, images: int) -> None:
        self.done += images
        if self._bar is not None:
            self._bar.update(images)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._bar is not None:
            self._bar.close()


class ForwardCounter:
    """Counts the images the model runs (a forward hook on it, removed on exit).

    Example:
        >>> import torch
        >>> from captum_contrast.app.progress import ForwardCounter
        >>> model = torch.nn.Linear(2, 1)
        >>> with ForwardCounter(model) as counter:
        ...     _ = model(torch.zeros(3, 2)); _ = model(torch.zeros(5, 2))
        >>> counter.count, len(model._forward_hooks)
        (8, 0)
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.count = 0
        self._handle: Any = None

    def _hook(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        first: Any = args[0] if args else None
        self.count += int(first.shape[0]) if hasattr(first, "shape") and first.dim() else 1

    def __enter__(self) -> ForwardCounter:
        self._handle = self.model.register_forward_hook(self._hook)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._handle.remove()


def closing_line(images: int, new: int, seconds: float, forwards: int, out_dir: Any) -> str:
    """The line printed at the end of a run.

    Example:
        >>> from captum_contrast.app.progress import closing_line
        >>> closing_line(32, 32, 4.0, 160, "out")
        'evaluated 32 images in 4.0 s (8.0 images/s), 160 image-forwards of the model (5.00 per image); outputs in out'
    """
    rate = new / seconds if seconds > 0 else float("nan")
    resumed = f" ({images - new} from the checkpoint)" if new < images else ""
    per_image = forwards / new if new else float("nan")
    return (
        f"evaluated {images} images{resumed} in {seconds:.1f} s ({rate:.1f} images/s), "
        f"{forwards} image-forwards of the model ({per_image:.2f} per image); outputs in {out_dir}"
    )
