"""What the property-based suite draws, and the promise it checks every outcome against.

The promise (the package's, see docs/guarantees.md): a call returns the right result
(equal to a reference where one exists), or NaN with a warning, or raises an error of this
package that names the argument at fault in backticks; and the model is bit-identical
afterwards.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch
from hypothesis import strategies as st
from torch import Tensor, nn

from captum_contrast import channels_last_transform, tokens_transform

DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
LAYOUTS = ["channels-first", "channels-last", "tokens", "tuple-block"]
OUTPUTS = ["tensor", "logits", "dict"]


class Block(nn.Module):
    """Returns ``(h,)``, Hugging Face style; ``inner`` sees the same tensor, for Captum."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)
        self.inner = nn.Identity()

    def forward(self, hidden: Tensor) -> tuple[Tensor]:
        return (self.inner(torch.relu(self.conv(hidden))),)


class Net(nn.Module):
    """A conv stem then ``layer`` in one of :data:`LAYOUTS`, BatchNorm, dropout, a head."""

    def __init__(self, layout: str, channels: int, stride: int, classes: int, output: str):
        super().__init__()
        self.layout, self.output = layout, output
        self.stem = nn.Conv2d(3, channels, 3, stride=stride, padding=1)
        self.norm = nn.BatchNorm2d(channels)
        self.prefix = nn.Parameter(torch.randn(1, 1, channels))
        self.layer: nn.Module = {
            "channels-first": nn.Conv2d(channels, channels, 1),
            "channels-last": nn.LayerNorm(channels),
            "tokens": nn.Linear(channels, channels),
            "tuple-block": Block(channels),
        }[layout]
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(channels, classes)

    def forward(self, x: Tensor) -> Any:
        maps = self.norm(self.stem(x))
        if self.layout == "channels-first":
            pooled = self.layer(maps).mean(dim=(2, 3))
        elif self.layout == "channels-last":
            pooled = self.layer(maps.permute(0, 2, 3, 1)).mean(dim=(1, 2))
        elif self.layout == "tokens":
            tokens = maps.flatten(2).transpose(1, 2)
            tokens = torch.cat([self.prefix.expand(len(x), -1, -1).to(tokens.dtype), tokens], 1)
            pooled = self.layer(tokens).mean(dim=1)
        else:
            pooled = (maps + self.layer(maps)[0]).mean(dim=(2, 3))
        logits = self.head(self.dropout(torch.relu(pooled)))
        if self.output == "logits":
            return SimpleNamespace(logits=logits)
        if self.output == "dict":
            return {"scores": logits}
        return logits


@dataclass
class Case:
    model: Net
    images: Tensor
    classes: int
    grid: tuple[int, int]

    @property
    def transform(self) -> Callable[[Tensor], Tensor] | None:
        """The explicit ``reshape_transform`` of the layout: the reference for the automatic one."""
        if self.model.layout == "channels-last":
            return channels_last_transform
        if self.model.layout == "tokens":
            return partial(
                tokens_transform, prefix_tokens=1, height=self.grid[0], width=self.grid[1]
            )
        return lambda maps: maps

    @property
    def reference(self) -> tuple[Callable[[Tensor], Tensor], nn.Module] | None:
        """A forward and a channels-first layer reading the same tensor, for Captum."""
        if self.model.output == "dict":
            return None
        forward = (lambda x: self.model(x).logits) if self.model.output == "logits" else self.model
        if self.model.layout == "channels-first":
            return forward, self.model.layer
        if self.model.layout == "tuple-block":
            return forward, self.model.layer.inner
        return None


@st.composite
def cases(draw: st.DrawFn, output: bool = True) -> Case:
    """A random model (layout, dtype, train or eval mode, output structure) and inputs."""
    layout = draw(st.sampled_from(LAYOUTS))
    channels, stride = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    classes, batch = draw(st.integers(2, 5)), draw(st.integers(1, 3))
    height, width = draw(st.integers(3, 13)), draw(st.integers(3, 13))
    seed = draw(st.integers(0, 2**16))
    torch.manual_seed(seed)
    kind = draw(st.sampled_from(OUTPUTS)) if output else "tensor"
    model = Net(layout, channels, stride, classes, kind)
    dtype = draw(st.sampled_from(DTYPES))
    model = model.to(dtype).train(draw(st.booleans()))
    images = torch.rand(batch, 3, height, width, generator=torch.Generator().manual_seed(seed))
    if draw(st.integers(0, 9)) == 0:
        images[0, 0, 0, 0] = draw(st.sampled_from([float("nan"), float("inf")]))
    grid = ((height - 1) // stride + 1, (width - 1) // stride + 1)
    return Case(model, images.to(dtype), classes, grid)


@st.composite
def class_indices(draw: st.DrawFn, batch: int, classes: int) -> tuple[Any, list[int] | None]:
    """A target in any form a user might pass, and the class per example when it is valid."""
    valid = draw(st.lists(st.integers(0, classes - 1), min_size=batch, max_size=batch))
    form = draw(
        st.sampled_from(
            ["int", "list", "tensor", "array", "float", "floats", "bool", "bools", "nan",
             "out of range", "negative", "wrong length", "float tensor", "string"]
        )
    )  # fmt: skip
    if form == "int":
        return valid[0], [valid[0]] * batch
    if form == "list":
        return valid, valid
    if form == "tensor":
        return torch.tensor(valid), valid
    if form == "array":
        return np.array(valid), valid
    invalid: dict[str, Any] = {
        "float": valid[0] + 0.5,
        "floats": [v + 0.25 for v in valid],
        "bool": True,
        "bools": [bool(v % 2) for v in valid],
        "nan": float("nan"),
        "out of range": [classes] * batch,
        "negative": [-1] * batch,
        "wrong length": valid + [0],
        "float tensor": torch.tensor(valid, dtype=torch.float32),
        "string": "1",
    }
    return invalid[form], None


@dataclass
class Outcome:
    value: Any = None
    error: BaseException | None = None
    warned: bool = False


def run(call: Callable[[], Any]) -> Outcome:
    """The call's value or error, and whether it warned."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            value = call()
        except Exception as error:  # noqa: BLE001 - judged by assert_clear_error
            return Outcome(error=error, warned=bool(caught))
    return Outcome(value=value, warned=bool(caught))


def assert_clear_error(error: BaseException) -> None:
    """Raised by this package (its last frame is in captum_contrast) and naming an argument."""
    frames = traceback.extract_tb(error.__traceback__)
    where = frames[-1].filename if frames else "?"
    message = str(error)
    assert "captum_contrast" in where, f"obscure error from {where}: {error!r}"
    assert isinstance(error, (ValueError, TypeError, RuntimeError)), repr(error)
    named = "`" in message or "--" in message
    assert named, f"the error names no argument: {message}"
