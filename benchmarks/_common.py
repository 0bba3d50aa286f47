"""What the benchmark scripts share: the networks with their data, the peer baselines,
statistics and result writing. Methods are called through the package's registry
(:data:`captum_contrast.app.registry.METHODS`)."""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from contextlib import redirect_stderr
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from captum_contrast._model import resolve_layer
from captum_contrast.scores import RegionScores

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
ExplainFunc = Callable[..., np.ndarray]


@dataclass
class Network:
    """A network with the real images it is explained on."""

    name: str
    model: torch.nn.Module
    layer: str  # dotted name: Quantus's randomisation tests explain copies of the model
    images: torch.Tensor
    note: str
    # Constructor extras for the package's methods (registry ``init_kwargs``), e.g. a
    # reshape_transform where the automatic layout refuses the layer.
    init_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def layer_module(self) -> torch.nn.Module:
        return resolve_layer(self.model, self.layer)

    def logits(self, images: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad():
            return self.model(self.images if images is None else images)


def _spread(n_total: int, n: int) -> np.ndarray:
    return np.linspace(0, n_total - 1, min(n, n_total)).round().astype(int)


def digit_networks(n: int) -> list[Network]:
    """The two digit CNNs of :mod:`captum_contrast.data.trained` (cached after one training)."""
    from captum_contrast.data.canvases import DigitCanvases, MultiDigitCanvases
    from captum_contrast.data.trained import SINGLE_LABEL_CONFIG, DemoConfig, trained_model

    single, _, _ = trained_model(SINGLE_LABEL_CONFIG, progress=False)
    multi, _, _ = trained_model(DemoConfig(), progress=False)
    single_images = DigitCanvases(n=n, split="test", seed=1).tensors()[0]
    multi_images = MultiDigitCanvases(n=n, split="test", size=32, seed=1).images
    return [
        Network(
            "digit CNN (softmax, 10 digits)",
            single.eval(),
            "features",
            single_images,
            f"`trained_model(SINGLE_LABEL_CONFIG)`, {n} held-out 32x32 digit canvases, layer "
            "`features` (8x8)",
        ),
        Network(
            "digit-canvas CNN (sigmoid, multi-label)",
            multi.eval(),
            "features",
            multi_images,
            f"`trained_model(DemoConfig())` (the demo), {n} held-out canvases of 1-3 digits, "
            "layer `features` (8x8); logits are read as class scores",
        ),
    ]


def pretrained_networks(n: int) -> list[Network]:
    """Every real pretrained network of :mod:`captum_contrast.data.pretrained` on real photos."""
    from skimage import data

    from captum_contrast.data.pretrained import (
        astronaut_face,
        emotion_model,
        face_model,
        page_line,
        text_direction_model,
    )

    found = []
    emotion = emotion_model()
    faces = [*data.lfw_subset()[:100], astronaut_face()]
    found.append(
        Network(
            "fer mini-Xception (7 emotions)",
            emotion.model,
            emotion.layer,
            torch.stack([emotion.preprocess(faces[i]) for i in _spread(len(faces), n)]),
            f"{min(n, len(faces))} of the 100 `lfw_subset` faces and the astronaut's face, "
            f"64x64 grey, layer `{emotion.layer}` (4x4)",
        )
    )
    face = face_model()
    crops = data.lfw_subset()  # 100 faces, then 100 non-faces
    found.append(
        Network(
            "MTCNN ONet (face / non-face)",
            face.model,
            face.layer,
            torch.stack([face.preprocess(crops[i]) for i in _spread(len(crops), n)]),
            f"{min(n, len(crops))} `lfw_subset` crops (half faces), 48x48, layer `{face.layer}`",
        )
    )
    text = text_direction_model()
    lines = []
    # The first four printed lines (the head-to-head's windows: page_line now reaches seven),
    # in windows 4x as wide as high: 48x192 undistorted.
    for index in range(4):
        line = page_line(index)
        width = 4 * line.shape[0]
        lines += [line[:, x : x + width] for x in range(0, line.shape[1] - width + 1, 48)]
    lines += [np.ascontiguousarray(line[::-1, ::-1]) for line in lines]  # and upside down
    found.append(
        Network(
            "PP-OCR text direction (0 / 180)",
            text.model,
            text.layer,
            torch.stack([text.preprocess(lines[i]) for i in _spread(len(lines), n)]),
            f"{min(n, len(lines))} of {len(lines)} windows (4:1, 48x192) of the first four "
            "printed lines of scikit-image's `page()` scan (`page_line`), half of them rotated "
            f"180 degrees; layer `{text.layer}`, 200 channels on a 2x96 grid (strides 24 and 2), "
            "which the automatic layout refuses, so the package's methods get an identity "
            "`reshape_transform` (channels-first as it is; Captum's Grad-CAM and "
            "pytorch-grad-cam read it so without one)",
            init_kwargs={"reshape_transform": channels_first},
        )
    )
    found.append(detector_network(n))
    return found


# Text-detector windows: 64x256 (height as tutorial 06's crop, both sides multiples of 32).
WINDOW = (64, 256)
WINDOW_CENTRES = (128, 192, 256)  # columns of the windows' centres: they fit the 384-wide page
BLANK_ROWS = (140, 146, 152, 158)  # the blank band between the paragraph and the code line


def centre_region(height: int = WINDOW[0], width: int = WINDOW[1]) -> torch.Tensor:
    """The window's centre, 4 rows x a quarter of its width, as a boolean mask.

    Not the whole window: DB's text kernels are shrunk lines a few pixels tall and its
    logits reach -60 between them, so a whole window's mean logit is about -30 whether or
    not it holds a line. 4 rows fit inside a centred line's kernel; 64 columns span a word.
    """
    mask = torch.zeros(height, width, dtype=torch.bool)
    mask[height // 2 - 2 : height // 2 + 2, 3 * width // 8 : 5 * width // 8] = True
    return mask


class RegionLogits(torch.nn.Module):
    """A dense network ``(B, C, H, W)`` read as ``(B, C)`` logits over a fixed region.

    ``forward(x) == RegionScores(mask, "mean")(network(x))``, so explaining this module is
    explaining ``network`` through the scores object (a method given ``scores=`` computes
    the map of this very forward). The mask lives in the scores object, not as a buffer:
    Quantus's randomisation re-draws the network's weights and leaves it alone.

    Example:
        >>> mask = torch.tensor([[True, False]])
        >>> RegionLogits(torch.nn.Identity(), mask)(torch.arange(4.0).reshape(1, 2, 1, 2))
        tensor([[0., 2.]])
    """

    def __init__(self, network: torch.nn.Module, mask: torch.Tensor) -> None:
        super().__init__()
        self.network = network
        self.scores = RegionScores(mask, "mean")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scores(self.network(x))


def detector_windows() -> tuple[list[np.ndarray], np.ndarray]:
    """12 windows of ``page()`` centred on the paragraph's lines, then 12 on blank page,
    with their labels (1: text, 0: background). A text window's centre row is the darkest
    (most ink) row of its line within 16 px of its centre column, smoothed over 7 rows:
    found from the scan's pixels, not from the detector's output."""
    from scipy.ndimage import uniform_filter1d
    from skimage import data

    from captum_contrast.data.pretrained import PAGE_LINES

    page = data.page()
    half_h, half_w = WINDOW[0] // 2, WINDOW[1] // 2
    centres = []
    for top, bottom in PAGE_LINES[1:5]:
        for column in WINDOW_CENTRES:
            ink = uniform_filter1d(page[top:bottom, column - 16 : column + 16].mean(1), 7)
            centres.append((top + int(np.argmin(ink)), column))
    centres += [(row, column) for row in BLANK_ROWS for column in WINDOW_CENTRES]
    windows = [page[r - half_h : r + half_h, c - half_w : c + half_w] for r, c in centres]
    return windows, np.repeat([1, 0], len(centres) // 2)


def detector_network(n: int) -> Network:
    """PP-OCRv4's text detector read as "is the window's centre text" (background, text)."""
    from captum_contrast.data.pretrained import text_detection_model

    detector = text_detection_model()
    windows, _ = detector_windows()
    chosen = _spread(len(windows), n)
    return Network(
        "PP-OCRv4 text detector (centre region: background / text)",
        RegionLogits(detector.model, centre_region()).eval(),
        f"network.{detector.layer}",
        torch.stack([detector.preprocess(windows[i]) for i in chosen]),
        f"{len(chosen)} windows (64x256) of scikit-image's `page()` scan, half centred on the "
        "paragraph's printed lines (`detector_windows`), half on the blank band above the "
        "code line; the dense output `(B, 2, 64, 256)` is read as `RegionScores(mask)` over "
        "the window's centre (4 rows x 64 columns) by `RegionLogits`, the forward a method "
        "given `scores=` explains. Background's logit is DB's constant 0 (its maps are 0), "
        "so each window's top-2 contrast is text against that constant. Layer "
        f"`{detector.layer}`: the neck's 96 channels at stride 4 (16x64), the last map "
        "before the head",
    )


def channels_first(activations: torch.Tensor) -> torch.Tensor:
    """The identity ``reshape_transform``: the layer is ``(B, K, *grid)`` already."""
    return activations


# --- peers ----------------------------------------------------------------------------------


def pgc_explainer(kind: str, layer: str, **kwargs: object) -> ExplainFunc:
    """The one pytorch-grad-cam adapter: ``"ScoreCAM"`` or ``"FinerCAM"`` as an explain_func.

    FinerCAM's references are pytorch-grad-cam's own (classes 1-3 of the sort by distance
    to the target's logit) and its ``alpha`` is ``kwargs["alpha"]`` (default 1).
    """
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget, FinerWeightedTarget

    def explain(model, inputs, targets, **_: object) -> np.ndarray:
        images = torch.as_tensor(np.asarray(inputs))
        target_layers = [resolve_layer(model, layer)]
        targets = np.asarray(targets).reshape(-1)
        if kind == "FinerCAM":
            with torch.no_grad():
                scores = model(images).numpy()
            wanted = []
            for row, target in enumerate(targets):
                order = np.argsort(np.abs(scores[row] - scores[row, target]), kind="stable")
                references = [int(c) for c in order if c != target][:3]
                wanted.append(
                    FinerWeightedTarget(int(target), references, float(kwargs.get("alpha", 1.0)))
                )
        else:
            wanted = [ClassifierOutputTarget(int(t)) for t in targets]
        cam_class = getattr(pytorch_grad_cam, kind)
        with cam_class(model, target_layers) as cam, redirect_stderr(io.StringIO()):
            if hasattr(cam, "batch_size"):
                cam.batch_size = 64
            maps = cam(input_tensor=images, targets=wanted)
        return np.asarray(maps)[:, None].astype(np.float32)

    return explain


# --- statistics and timing ------------------------------------------------------------------


def bootstrap_ci(
    values: np.ndarray, statistic: Callable = np.nanmedian, resamples: int = 1000, seed: int = 0
) -> tuple[float, float, float]:
    """``(statistic, low, high)``: the value and its 95% percentile bootstrap interval."""
    values = np.asarray(values, dtype=np.float64)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, values.size, size=(resamples, values.size))
    stats = np.array([statistic(values[d]) for d in draws])
    return (
        float(statistic(values)),
        float(np.percentile(stats, 2.5)),
        float(np.percentile(stats, 97.5)),
    )


def with_ci(values: np.ndarray, digits: int = 1, statistic: Callable = np.nanmedian) -> str:
    value, low, high = bootstrap_ci(values, statistic)
    if not np.isfinite(value):
        return "n/a"
    return f"{value:.{digits}f} [{low:.{digits}f}, {high:.{digits}f}]"


def timed(call: Callable[[], np.ndarray]) -> tuple[np.ndarray, float]:
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def write_result(stem: str, text: str) -> Path:
    """Write ``benchmarks/results/<stem>.md`` and return its path."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{stem}.md"
    path.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
    return path
