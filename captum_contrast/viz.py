"""Figures: attribution overlays and grids, drawn with ``captum.attr.visualization``.

Everything here is headless: each figure gets its own Agg canvas (pyplot's global backend
is left alone, so notebooks still show figures inline) and ``plt.show`` is never called.
Images may be grayscale or RGB, tensors or arrays; maps given at layer resolution are
upsampled bilinearly to the image. Every map is normalised per example (``"range"`` by
default, as the papers scale their CAMs), so one colour scale, 0 to 1, holds for every panel.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeAlias

import numpy as np
import torch
import torch.nn.functional as F
from captum.attr import visualization as captum_viz
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.cm import ScalarMappable
from matplotlib.colors import LinearSegmentedColormap, Normalize
from matplotlib.figure import Figure
from torch import Tensor

from captum_contrast.normalization import Normalization, normalize

ArrayLike: TypeAlias = Tensor | np.ndarray
DEFAULT_CMAP = "jet"
SIGNED_CMAP = LinearSegmentedColormap.from_list("BlueWhiteRed", ["blue", "white", "red"])
SIGNS = ("positive", "all")


def to_display_image(image: ArrayLike) -> np.ndarray:
    """One image as an ``(H, W, C)`` float array in [0, 1], ``C`` 1 or 3.

    Accepts ``(C, H, W)`` tensors (torch layout), ``(H, W, C)`` arrays (PIL/numpy layout) and
    ``(H, W)`` grayscale; values in [0, 255] are rescaled, anything else is clipped to [0, 1].

    Example:
        >>> import numpy as np
        >>> import torch
        >>> from captum_contrast.viz import to_display_image
        >>> to_display_image(torch.zeros(3, 4, 5)).shape  # torch layout -> (H, W, C)
        (4, 5, 3)
        >>> float(to_display_image(np.full((2, 2), 255)).max())  # 0-255 values rescaled
        1.0
    """
    array = image.detach().cpu().float().numpy() if isinstance(image, Tensor) else np.asarray(image)
    array = array.astype(np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    elif array.ndim == 3 and isinstance(image, Tensor) and array.shape[0] in (1, 3):
        array = array.transpose(1, 2, 0)
    if array.ndim != 3 or array.shape[2] not in (1, 3):
        raise ValueError(
            "`image` must be (C, H, W) with C in (1, 3) as a tensor, (H, W, C) as an array, or "
            f"(H, W); got shape {tuple(np.shape(image))}"
        )
    if array.max(initial=0.0) > 1.0:
        array = array / 255.0
    return np.clip(array, 0.0, 1.0)


def display_maps(
    attributions: ArrayLike,
    size: tuple[int, int],
    sign: str = "positive",
    normalization: Normalization | None = "range",
) -> Tensor:
    """``(B, 1, h, w)`` maps (or ``(B, h, w)``) upsampled to ``size`` and scaled for display.

    ``sign="positive"``: each map normalised with :func:`captum_contrast.normalize`
    (``normalization``, default ``"range"``; ``None`` keeps the values) into [0, 1].
    ``sign="all"``: signed maps divided by their largest absolute value, into [-1, 1].

    Example:
        >>> import torch
        >>> from captum_contrast.viz import display_maps
        >>> maps = torch.tensor([[[[-4.0, -2.0], [0.0, 4.0]]]])
        >>> display_maps(maps, (2, 2)).flatten().tolist()  # "range": min -> 0, max -> 1
        [0.0, 0.25, 0.5, 1.0]
        >>> display_maps(maps, (2, 2), sign="all").flatten().tolist()  # / max |value|
        [-1.0, -0.5, 0.0, 1.0]
        >>> display_maps(maps, (8, 8)).shape
        torch.Size([1, 1, 8, 8])
    """
    if sign not in SIGNS:
        raise ValueError(f"`sign` must be one of {SIGNS}, got {sign!r}")
    maps = torch.as_tensor(attributions).detach().cpu().float()
    if maps.dim() == 3:
        maps = maps.unsqueeze(1)
    if maps.dim() != 4 or maps.shape[1] != 1:
        raise ValueError(
            f"attribution maps must be (B, 1, h, w) or (B, h, w), got {tuple(maps.shape)}"
        )
    if tuple(maps.shape[-2:]) != tuple(size):
        maps = F.interpolate(maps, size=size, mode="bilinear", align_corners=False)
    if sign == "all":
        scale = maps.abs().flatten(1).amax(dim=1).clamp(min=1e-12).reshape(-1, 1, 1, 1)
        return maps / scale
    return maps if normalization is None else normalize(maps, normalization)


def overlay(
    image: ArrayLike,
    attribution: ArrayLike,
    ax: Axes | None = None,
    *,
    title: str | None = None,
    mask: ArrayLike | None = None,
    sign: str = "positive",
    normalization: Normalization | None = "range",
    cmap: str | LinearSegmentedColormap | None = None,
    alpha: float = 0.5,
) -> tuple[Figure, Axes]:
    """Draw one attribution map blended over the grayscale image (Captum's ``blended_heat_map``).

    Args:
        image: ``(C, H, W)`` tensor, ``(H, W, C)`` array or ``(H, W)``; grayscale or RGB.
        attribution: ``(1, h, w)``, ``(h, w)`` or ``(1, 1, h, w)``, at any resolution.
        ax: Axes to draw on; a new figure (Agg canvas) when ``None``.
        title: Axes title.
        mask: Optional ``(H, W)`` bool ground-truth mask, outlined in white.
        sign: ``"positive"`` (colour scale 0 to 1) or ``"all"`` (signed, -1 to 1).
        normalization: Per-map scaling for ``sign="positive"``, see :func:`display_maps`.
        cmap: Colour map; ``"jet"`` (positive) or blue-white-red (signed) by default.
        alpha: Opacity of the heat map.

    Returns:
        ``(figure, axes)``, as Captum's ``visualize_image_attr``.

    Example:
        >>> import torch
        >>> from captum_contrast.viz import overlay
        >>> fig, ax = overlay(torch.rand(3, 32, 32), torch.rand(1, 4, 4), title="map")
        >>> ax.get_title()
        'map'
    """
    picture = to_display_image(image)
    heat = (
        torch.as_tensor(attribution)
        .detach()
        .cpu()
        .float()
        .reshape(1, 1, *np.shape(attribution)[-2:])
    )
    heat = display_maps(heat, picture.shape[:2], sign, normalization)[0, 0].numpy()
    if ax is None:
        ax = _agg_figure((3, 3)).subplots()
    cmap = cmap if cmap is not None else (SIGNED_CMAP if sign == "all" else DEFAULT_CMAP)
    if np.abs(heat).max() > 0:
        # Maps are already scaled, so Captum's outlier clipping is off (outlier_perc=0).
        captum_viz.visualize_image_attr(
            heat[:, :, None],
            picture,
            method="blended_heat_map",
            sign=sign,
            plt_fig_axis=(ax.figure, ax),
            outlier_perc=0,
            cmap=cmap,
            alpha_overlay=alpha,
            use_pyplot=False,
        )
    else:  # Captum cannot scale an all-zero map; draw the same blend by hand.
        ax.imshow(picture.mean(axis=2), cmap="gray")
        ax.imshow(heat, cmap=cmap, vmin=-1 if sign == "all" else 0, vmax=1, alpha=alpha)
    if mask is not None:
        captum_viz.draw_mask_border(ax, _as_mask(mask), border_color="white")
    _clean_axes(ax)
    if title:
        ax.set_title(title, fontsize=9)
    return ax.figure, ax


def attribution_grid(
    images: ArrayLike,
    maps: Mapping[str, ArrayLike],
    masks: ArrayLike | None = None,
    row_titles: Sequence[str] | None = None,
    path: str | Path | None = None,
    *,
    signs: Mapping[str, str] | None = None,
    cmap: str | None = None,
    alpha: float = 0.5,
    panel_size: float = 1.6,
    suptitle: str | None = None,
    mask_title: str = "ground truth",
) -> Figure:
    """A grid with one row per example: the image, its ground-truth mask, one overlay per map.

    Args:
        images: ``(R, C, H, W)`` images (grayscale or RGB), one per row; repeat an image to
            show several of its classes.
        maps: Column title -> ``(R, 1, h, w)`` maps, at layer or input resolution.
        masks: Optional ``(R, H, W)`` or ``(R, 1, H, W)`` bool ground-truth masks: drawn as a
            column and outlined on every overlay.
        row_titles: One label per row, written left of the image.
        path: Where to save the PNG; not saved when ``None``.
        signs: Column title -> ``"positive"`` or ``"all"``; ``"positive"`` by default. Signed
            columns get their own blue-white-red colour bar.
        cmap: Colour map of the positive maps (``"jet"``).
        alpha: Opacity of the heat maps.
        panel_size: Side of one panel in inches.
        suptitle: Figure title.
        mask_title: Title of the mask column.

    Returns:
        The matplotlib ``Figure`` (Agg canvas).

    Example:
        >>> import torch
        >>> from captum_contrast.viz import attribution_grid
        >>> maps = {"Grad-CAM": torch.rand(2, 1, 4, 4), "CASE": torch.rand(2, 1, 4, 4)}
        >>> figure = attribution_grid(torch.rand(2, 1, 32, 32), maps, row_titles=["a", "b"])
        >>> [axis.get_title() for axis in figure.axes[:3]]  # 2 rows x 3 panels, and a colour bar
        ['image', 'Grad-CAM', 'CASE']
        >>> len(figure.axes)
        7
    """
    rows = len(images)
    signs = dict(signs or {})
    for name, value in maps.items():
        if len(value) != rows:
            raise ValueError(f"maps[{name!r}] has {len(value)} maps for {rows} images")
    if row_titles is not None and len(row_titles) != rows:
        raise ValueError(f"`row_titles` has {len(row_titles)} entries for {rows} images")
    if masks is not None and len(masks) != rows:
        raise ValueError(f"`masks` has {len(masks)} masks for {rows} images")
    if rows == 0:
        raise ValueError("`images` is empty")
    columns = ["image"] + ([mask_title] if masks is not None else []) + list(maps)
    header = 0.3 + (0.22 * (suptitle.count("\n") + 1) if suptitle else 0.0)  # inches
    height = panel_size * rows + header + 0.1
    figure = _agg_figure((panel_size * len(columns) + 0.9, height))
    axes = np.asarray(figure.subplots(rows, len(columns), squeeze=False))
    for row in range(rows):
        picture = to_display_image(images[row])
        mask = None if masks is None else _as_mask(masks[row])
        axes[row, 0].imshow(
            picture.squeeze(2) if picture.shape[2] == 1 else picture, cmap="gray", vmin=0, vmax=1
        )
        if mask is not None:
            axes[row, 1].imshow(mask, cmap="gray", vmin=0, vmax=1)
        for column, name in enumerate(maps, start=len(columns) - len(maps)):
            overlay(
                picture,
                maps[name][row],
                axes[row, column],
                mask=mask,
                sign=signs.get(name, "positive"),
                cmap=cmap,
                alpha=alpha,
            )
        for column in range(len(columns)):
            _clean_axes(axes[row, column])
        if row_titles is not None:
            axes[row, 0].set_ylabel(row_titles[row], fontsize=9)
    for column, name in enumerate(columns):
        axes[0, column].set_title(name, fontsize=9)
    figure.subplots_adjust(
        left=0.06,
        right=0.88,
        top=1 - header / height,
        bottom=0.1 / height,
        wspace=0.05,
        hspace=0.08,
    )
    kinds = {signs.get(name, "positive") for name in maps}
    _colour_bars(figure, cmap or DEFAULT_CMAP, "all" in kinds, positive="positive" in kinds)
    if suptitle:
        figure.suptitle(suptitle, fontsize=10, y=1 - 0.05 / height, va="top")
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(path, dpi=100)
    return figure


def save_overlay(
    image: ArrayLike,
    attribution: ArrayLike,
    path: str | Path,
    title: str | None = None,
    **overlay_kwargs: object,
) -> Path:
    """Write one overlay (with a 0-1 colour bar) to ``path`` as a PNG; returns the path.

    Example:
        >>> import tempfile
        >>> from pathlib import Path
        >>> import torch
        >>> from captum_contrast.viz import save_overlay
        >>> target = Path(tempfile.mkdtemp()) / "map.png"
        >>> path = save_overlay(torch.rand(1, 32, 32), torch.rand(1, 8, 8), target, title="CASE")
        >>> path == target, path.stat().st_size > 0
        (True, True)
    """
    figure = _agg_figure((4.8, 4))
    ax = figure.subplots()
    overlay(image, attribution, ax, title=title, **overlay_kwargs)  # type: ignore[arg-type]
    figure.subplots_adjust(left=0.02, right=0.78, top=0.88, bottom=0.02)
    signed = overlay_kwargs.get("sign") == "all"
    _colour_bars(
        figure,
        overlay_kwargs.get("cmap") or DEFAULT_CMAP,
        signed,  # type: ignore[arg-type]
        positive=not signed,
        left=0.8,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    return path


def _colour_bars(
    figure: Figure, cmap: object, signed: bool, positive: bool = True, left: float = 0.9
) -> None:
    bars = [(cmap, 0.0, "attribution (per-map scaled)")] if positive else []
    if signed:
        bars.append((SIGNED_CMAP, -1.0, "signed attribution"))
    height = 0.8 / max(len(bars), 1)
    for index, (colours, low, label) in enumerate(bars):
        bar_axes = figure.add_axes((left, 0.1 + index * height, 0.025, height * 0.85))
        mappable = ScalarMappable(Normalize(low, 1.0), colours)  # type: ignore[arg-type]
        figure.colorbar(mappable, cax=bar_axes).set_label(label, fontsize=8)


def _agg_figure(size: tuple[float, float]) -> Figure:
    figure = Figure(figsize=size)
    FigureCanvasAgg(figure)  # attaches itself: rendering never touches a GUI backend
    return figure


def _as_mask(mask: ArrayLike) -> np.ndarray:
    array = mask.detach().cpu().numpy() if isinstance(mask, Tensor) else np.asarray(mask)
    array = np.squeeze(array)
    if array.ndim != 2:
        raise ValueError(f"a mask must be (H, W) (or (1, H, W)), got shape {np.shape(mask)}")
    return array.astype(bool)


def _clean_axes(ax: Axes) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
