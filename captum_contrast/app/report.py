"""``report.html``: one self-contained page a person reads after ``captum-contrast evaluate``.

Settings, versions and timing; the table with its intervals and paired tests; the
insertion/deletion curves; for each method a gallery of its best and worst examples by one
metric (image, overlay, target, scores); a cost line per method. Every picture is a PNG
inlined as base64 and there is no script and no external resource, so the file opens
anywhere, offline, and can be mailed or archived as it is.
"""

from __future__ import annotations

import base64
import html
import io
import platform
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

GALLERY_SIZE = 3
THUMBNAIL = 112  # pixels per panel


@dataclass
class ReportData:
    """What the report shows; built by :func:`captum_contrast.app.outputs.write_outputs`."""

    settings: Mapping[str, Any]
    timing: Mapping[str, Any]
    table: list[str]
    """The markdown lines of ``metrics.md`` (table, then the tests)."""
    curves_png: bytes | None
    galleries: Mapping[str, Sequence[tuple[str, list[dict[str, Any]]]]]
    """Per method title: ``[("best", examples), ("worst", examples)]``; an example is a dict
    with ``image`` (C, H, W), ``map`` (h, w), ``index``, ``target``, ``scores``."""
    gallery_metric: str
    costs: Mapping[str, str]
    """Per method title, its cost line."""


def versions() -> dict[str, str]:
    """The versions that produced the numbers."""
    import captum
    import quantus
    import torchvision

    from captum_contrast import __version__

    return {
        "captum-contrast": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "captum": captum.__version__,
        "quantus": quantus.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
    }


def png(array: np.ndarray) -> bytes:
    """PNG bytes of an ``(H, W, 3)`` uint8 array."""
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _img(data: bytes, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    encoded = base64.b64encode(data).decode("ascii")
    return f'<img src="data:image/png;base64,{encoded}" alt="{html.escape(alt)}"{size}>'


def _display(image: np.ndarray | torch.Tensor) -> np.ndarray:
    """``(C, H, W)`` float image as ``(H, W, 3)`` uint8, scaled to [0, 1] if it leaves it."""
    pixels = torch.as_tensor(image, dtype=torch.float32)
    pixels = pixels[:3] if pixels.shape[0] >= 3 else pixels[:1].expand(3, -1, -1)
    low, high = float(pixels.min()), float(pixels.max())
    if low < 0 or high > 1:
        pixels = (pixels - low) / max(high - low, 1e-12)
    return (pixels.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)


def overlay(image: np.ndarray | torch.Tensor, saliency: np.ndarray) -> np.ndarray:
    """The image under its map (upsampled bilinearly, scaled to [0, 1], jet at 50%).

    Example:
        >>> import numpy as np
        >>> from captum_contrast.app.report import overlay
        >>> overlay(np.zeros((1, 8, 8), np.float32), np.eye(2)).shape
        (8, 8, 3)
    """
    from matplotlib import colormaps

    base = _display(image)
    values = torch.as_tensor(np.asarray(saliency, dtype=np.float32))[None, None]
    values = F.interpolate(values, size=base.shape[:2], mode="bilinear", align_corners=False)[0, 0]
    values = values.nan_to_num(0.0)
    span = float(values.max() - values.min())
    values = (values - values.min()) / span if span > 0 else torch.zeros_like(values)
    heat = colormaps["jet"](values.numpy())[..., :3] * 255
    return (0.5 * base + 0.5 * heat).round().astype(np.uint8)


def _upscaled(array: np.ndarray) -> np.ndarray:
    factor = max(1, THUMBNAIL // array.shape[0])
    return np.kron(array, np.ones((factor, factor, 1), dtype=np.uint8)) if factor > 1 else array


def _gallery(title: str, groups: Sequence[tuple[str, list[dict[str, Any]]]], metric: str) -> str:
    parts = [f"<h3>{html.escape(title)}</h3>"]
    for kind, examples in groups:
        cells = []
        for example in examples:
            image = _display(example["image"])
            picture = _img(png(_upscaled(image)), f"example {example['index']}")
            heat = _img(png(_upscaled(overlay(example["image"], example["map"]))), "overlay")
            scores = "<br>".join(
                f"{html.escape(name)}: {value:.3f}" for name, value in example["scores"].items()
            )
            cells.append(
                f"<figure>{picture}{heat}<figcaption>example {example['index']}, class "
                f"{example['target']}<br>{scores}</figcaption></figure>"
            )
        parts.append(
            f"<p>{kind} by {html.escape(metric)}</p><div class=row>{''.join(cells) or 'none'}</div>"
        )
    return "\n".join(parts)


def _markdown_tables(lines: Sequence[str]) -> str:
    """The markdown of ``metrics.md`` (pipe tables and paragraphs) as HTML."""
    out, table = [], []
    for line in [*lines, ""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                table.append([cell.strip() for cell in line.strip("|").split("|")])
            continue
        if table:
            head = "".join(f"<th>{html.escape(c)}</th>" for c in table[0])
            body = "".join(
                "<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>"
                for row in table[1:]
            )
            out.append(f"<table><tr>{head}</tr>{body}</table>")
            table = []
        if line.strip():
            out.append(f"<p>{html.escape(line)}</p>")
    return "\n".join(out)


def _pairs(values: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(str(k))}</th><td>{html.escape(str(v))}</td></tr>"
        for k, v in values.items()
    )
    return f"<table class=pairs>{rows}</table>"


STYLE = """
body{font-family:system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px}
th{background:#f3f3f3;text-align:left}.row{display:flex;flex-wrap:wrap;gap:12px}
figure{margin:0;font-size:12px}figure img{margin-right:2px;image-rendering:pixelated}
"""


def write_report(data: ReportData, path: str | Path) -> Path:
    """Write the report to ``path`` and return it.

    Example:
        >>> import tempfile, numpy as np
        >>> from pathlib import Path
        >>> from captum_contrast.app.report import ReportData, write_report
        >>> example = {"image": np.zeros((1, 4, 4), np.float32), "map": np.eye(2),
        ...            "index": 0, "target": 3, "scores": {"AD ↓": 1.0}}
        >>> data = ReportData({"methods": "grad-cam"}, {"seconds": 1.0}, ["| a |", "|---|", "| 1 |"],
        ...                   None, {"Grad-CAM": [("best", [example]), ("worst", [])]}, "AD ↓",
        ...                   {"Grad-CAM": "0.1 s per image"})
        >>> text = write_report(data, Path(tempfile.mkdtemp()) / "report.html").read_text()
        >>> text.count("data:image/png;base64,"), "http" in text
        (2, False)
    """
    sections = [
        "<h2>Results</h2>",
        _markdown_tables(data.table),
    ]
    if data.curves_png is not None:
        sections += [
            "<h2>Insertion and deletion curves</h2>",
            _img(data.curves_png, "mean curves with 95% bootstrap intervals", 900),
        ]
    sections.append(f"<h2>Best and worst examples by {html.escape(data.gallery_metric)}</h2>")
    sections += [_gallery(t, g, data.gallery_metric) for t, g in data.galleries.items()]
    sections += [
        "<h2>Cost per method</h2>",
        "<ul>"
        + "".join(f"<li>{html.escape(t)}: {html.escape(c)}</li>" for t, c in data.costs.items())
        + "</ul>",
        "<h2>Settings</h2>",
        _pairs(data.settings),
        "<h2>Timing</h2>",
        _pairs(data.timing),
        "<h2>Versions</h2>",
        _pairs(versions()),
    ]
    page = (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        "<title>captum-contrast evaluation</title>"
        f"<style>{STYLE}</style></head><body><h1>captum-contrast evaluation</h1>\n"
        + "\n".join(sections)
        + "\n</body></html>\n"
    )
    path = Path(path)
    path.write_text(page, encoding="utf-8")
    return path
