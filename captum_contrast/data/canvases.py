"""Offline digit canvases with exact masks, built from scikit-learn's real handwritten digits.

Nothing is downloaded: every dataset is rendered from ``sklearn.datasets.load_digits()``
(1797 8x8 digits, bundled with scikit-learn). Each 8x8 digit is upscaled bilinearly to a
``digit_size`` glyph (default ``3 * size // 8``: 12 px on a 32 px canvas, 24 px on 64 px),
intensities below :data:`INK_THRESHOLD` are set to 0 so that a digit's mask is exactly its
non-zero pixels, and glyphs are pasted on a black canvas.

Splits. The 1797 source digits are partitioned once, stratified by class and independent of
any ``seed``, into ``"train"`` (50%), ``"val"`` (15%), ``"test"`` (20%) and ``"ood"`` (15%)
pools (:func:`source_indices`). A dataset of a split only uses digits of that pool, so no
handwritten digit appears in two splits, whatever the seeds.

Placement. Multi-digit canvases are cut into a 2x2 grid of cells; each digit gets its own cell
at a random offset inside it, so digits never overlap and each pixel belongs to at most one
digit (:attr:`segmentation`).

Three datasets, each a ``torch.utils.data.Dataset`` whose whole tensors are also available
through attributes and :meth:`tensors`:

- :class:`DigitCanvases`: one digit per canvas; items ``(image, label, mask)``.
- :class:`MultiDigitCanvases`: 1-3 digits of distinct classes; items
  ``(image, labels, masks)`` with multi-hot labels and one mask per class.
- :class:`~captum_contrast.data.salience.SalienceDigits` (in :mod:`captum_contrast.data.salience`): the binary task "does the canvas contain a ``positive_class``?"
  with human-salience maps and an out-of-distribution split; items
  ``(image, label, human_map)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import Dataset

NUM_CLASSES = 10
SPLITS: tuple[str, ...] = ("train", "val", "test", "ood")
SPLIT_FRACTIONS: dict[str, float] = {"train": 0.5, "val": 0.15, "test": 0.2, "ood": 0.15}
INK_THRESHOLD = 0.1
"""Upscaled intensities (in [0, 1]) below this become 0, so masks are exactly the ink."""

# Fixed: the partition of source digits must not move with a dataset's seed, or two splits
# built with different seeds could share a handwritten digit.
_PARTITION_SEED = 1797
_KIND_IDS = {"single": 0, "multi": 1, "salience": 2}


@lru_cache(maxsize=1)
def _digits() -> tuple[Tensor, np.ndarray]:
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = torch.as_tensor(digits.images, dtype=torch.float32) / 16.0
    return images, np.asarray(digits.target, dtype=np.int64)


@lru_cache(maxsize=1)
def _partition() -> dict[str, np.ndarray]:
    _, targets = _digits()
    rng = np.random.default_rng(_PARTITION_SEED)
    pools: dict[str, list[np.ndarray]] = {split: [] for split in SPLITS}
    for digit_class in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(targets == digit_class))
        bounds = np.cumsum([0] + [round(SPLIT_FRACTIONS[s] * len(members)) for s in SPLITS])
        bounds[-1] = len(members)
        for split, start, stop in zip(SPLITS, bounds[:-1], bounds[1:], strict=True):
            pools[split].append(members[start:stop])
    return {split: np.sort(np.concatenate(parts)) for split, parts in pools.items()}


def source_indices(split: str) -> Tensor:
    """Indices into ``sklearn.datasets.load_digits()`` of the digits reserved for ``split``.

    The four pools are disjoint, cover all 1797 digits and hold every class.

    Example:
        >>> from captum_contrast.data.canvases import source_indices
        >>> sum(len(source_indices(s)) for s in ("train", "val", "test", "ood"))
        1797
    """
    check_split(split, SPLITS)
    return torch.as_tensor(_partition()[split])


@lru_cache(maxsize=8)
def _glyphs(digit_size: int) -> Tensor:
    images, _ = _digits()
    upscaled = F.interpolate(
        images.unsqueeze(1), size=(digit_size, digit_size), mode="bilinear", align_corners=False
    ).squeeze(1)
    return torch.where(upscaled >= INK_THRESHOLD, upscaled.clamp(max=1.0), 0.0)


def check_split(split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ValueError(f"`split` must be one of {tuple(allowed)}, got {split!r}")


def check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}, got {value}")
    return int(value)


def check_fraction(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")
    return float(value)


def seeded_rng(seed: int, kind: str, split: str) -> np.random.Generator:
    return np.random.default_rng([check_int(seed, "seed", 0), _KIND_IDS[kind], SPLITS.index(split)])


def draw_sources(rng: np.random.Generator, classes: np.ndarray, split: str) -> np.ndarray:
    """A random source digit of the given class from the split's pool; -1 stays -1."""
    _, targets = _digits()
    pool = _partition()[split]
    sources = np.full(classes.shape, -1, dtype=np.int64)
    for digit_class in range(NUM_CLASSES):
        where = classes == digit_class
        members = pool[targets[pool] == digit_class]
        sources[where] = members[rng.integers(0, len(members), size=int(where.sum()))]
    return sources


def distinct_classes(
    rng: np.random.Generator, pool: Sequence[int], n: int, slots: int
) -> np.ndarray:
    """``(n, slots)`` classes drawn from ``pool`` without repetition within a row."""
    order = np.argsort(rng.random((n, len(pool))), axis=1)[:, :slots]
    return np.asarray(pool, dtype=np.int64)[order]


def cell_positions(
    rng: np.random.Generator, n: int, slots: int, size: int, digit_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left corners in distinct cells of a 2x2 grid, and each canvas's cell order."""
    cell = size // 2
    cells = np.argsort(rng.random((n, 4)), axis=1)
    jitter = rng.integers(0, cell - digit_size + 1, size=(2, n, slots))
    tops = (cells[:, :slots] // 2) * cell + jitter[0]
    lefts = (cells[:, :slots] % 2) * cell + jitter[1]
    return tops, lefts, cells


def render(
    sources: np.ndarray, tops: np.ndarray, lefts: np.ndarray, size: int, digit_size: int
) -> tuple[Tensor, Tensor]:
    """Paste glyphs: ink ``(N, H, W)`` in [0, 1] and the class of each pixel (-1: none)."""
    _, targets = _digits()
    glyphs = _glyphs(digit_size)
    n, slots = sources.shape
    ink = torch.zeros(n, size, size)
    segmentation = torch.full((n, size, size), -1, dtype=torch.int8)
    offsets = torch.arange(digit_size)
    for slot in range(slots):
        present = np.flatnonzero(sources[:, slot] >= 0)
        if len(present) == 0:
            continue
        glyph = glyphs[torch.as_tensor(sources[present, slot])]
        rows = torch.as_tensor(tops[present, slot]).unsqueeze(1) + offsets
        cols = torch.as_tensor(lefts[present, slot]).unsqueeze(1) + offsets
        index = (torch.as_tensor(present)[:, None, None], rows[:, :, None], cols[:, None, :])
        ink[index] = torch.maximum(ink[index], glyph)
        digit_class = torch.as_tensor(targets[sources[present, slot]], dtype=torch.int8)
        segmentation[index] = torch.where(
            glyph > 0, digit_class[:, None, None], segmentation[index]
        )
    return ink, segmentation


class CanvasDataset(Dataset):
    """Shared storage: whole tensors built once, items are views into them."""

    images: Tensor
    segmentation: Tensor
    digit_classes: Tensor
    source_index: Tensor

    def __init__(self, n: int, split: str, size: int, seed: int, digit_size: int | None) -> None:
        self.n = check_int(n, "n", 1)
        self.split = split
        self.size = check_int(size, "size", 16)
        self.seed = check_int(seed, "seed", 0)
        default_size = 3 * self.size // 8
        self.digit_size = check_int(
            default_size if digit_size is None else digit_size, "digit_size", 8, self.size // 2
        )

    def _store(self, sources: np.ndarray, ink: Tensor, segmentation: Tensor) -> None:
        _, targets = _digits()
        classes = np.where(sources >= 0, targets[np.maximum(sources, 0)], -1)
        self.images = ink.unsqueeze(1)
        self.segmentation = segmentation
        self.digit_classes = torch.as_tensor(classes)
        self.source_index = torch.as_tensor(sources)

    def __len__(self) -> int:
        return self.n


class DigitCanvases(CanvasDataset):
    """One handwritten digit at a random position on a black ``size`` x ``size`` canvas.

    Items are ``(image, label, mask)``: ``image`` a float32 ``(1, H, W)`` tensor in [0, 1],
    ``label`` the digit's class as an int, ``mask`` a bool ``(1, H, W)`` tensor that is True
    exactly on the digit's pixels (``mask == (image > 0)``).

    Args:
        n: Number of canvases.
        split: ``"train"``, ``"val"`` or ``"test"``: which pool of source digits to draw from
            (see ``source_indices``).
        size: Canvas side in pixels (32 and 64 are the intended sizes).
        seed: Canvases are a deterministic function of ``(seed, split, n, size, digit_size)``.
        digit_size: Side of the upscaled digit; default ``3 * size // 8``.

    Attributes:
        images: ``(n, 1, H, W)`` float32. labels: ``(n,)`` int64. masks: ``(n, 1, H, W)`` bool.
        segmentation: ``(n, H, W)`` int8, the digit class on its pixels and -1 elsewhere.
        source_index: ``(n, 1)`` index of each canvas's digit in ``load_digits()``.

    Example:
        >>> from torch.utils.data import DataLoader
        >>> from captum_contrast.data.canvases import DigitCanvases
        >>> data = DigitCanvases(n=100, split="train", size=32, seed=0)
        >>> image, label, mask = data[0]
        >>> image.shape, mask.dtype, bool(((image > 0) == mask).all())
        (torch.Size([1, 32, 32]), torch.bool, True)
        >>> images, labels, masks = next(iter(DataLoader(data, batch_size=8)))
        >>> labels.shape
        torch.Size([8])
    """

    def __init__(
        self,
        n: int = 1000,
        split: str = "train",
        size: int = 32,
        seed: int = 0,
        digit_size: int | None = None,
    ) -> None:
        check_split(split, SPLITS[:3])
        super().__init__(n, split, size, seed, digit_size)
        rng = seeded_rng(self.seed, "single", split)
        classes = rng.integers(0, NUM_CLASSES, size=(self.n, 1))
        sources = draw_sources(rng, classes, split)
        corners = rng.integers(0, self.size - self.digit_size + 1, size=(2, self.n, 1))
        ink, segmentation = render(sources, corners[0], corners[1], self.size, self.digit_size)
        self._store(sources, ink, segmentation)
        self.labels = self.digit_classes[:, 0].clone()
        self.masks = (segmentation >= 0).unsqueeze(1)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n,1,H,W) float32, labels (n,) int64, masks (n,1,H,W) bool)``."""
        return self.images, self.labels, self.masks

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        return self.images[index], int(self.labels[index]), self.masks[index]


class MultiDigitCanvases(CanvasDataset):
    """1 to 3 digits of distinct classes per canvas, never overlapping, with per-class masks.

    Items are ``(image, labels, masks)``: ``image`` float32 ``(1, H, W)`` in [0, 1];
    ``labels`` float32 multi-hot ``(10,)``; ``masks`` bool ``(10, H, W)``, True exactly on the
    pixels of the digit of that class and all False for absent classes. The union of the masks
    is ``image > 0``.

    Args:
        n: Number of canvases.
        split: ``"train"``, ``"val"`` or ``"test"`` (see ``source_indices``).
        size: Canvas side in pixels (32 or 64). The canvas is cut into a 2x2 grid and each
            digit lies inside its own cell, so ``digit_size <= size // 2``.
        seed: Canvases are a deterministic function of the arguments.
        min_digits: Fewest digits per canvas (the count is uniform in
            ``[min_digits, max_digits]``).
        max_digits: Most digits per canvas, at most 4.
        digit_size: Side of the upscaled digit; default ``3 * size // 8``.

    Attributes:
        images: ``(n, 1, H, W)`` float32.
        labels: ``(n, 10)`` float32 multi-hot.
        segmentation: ``(n, H, W)`` int8 class per pixel (-1 background); :attr:`masks`
            expands it to ``(n, 10, H, W)``.
        digit_classes: ``(n, max_digits)`` int64, -1 for empty slots.
        source_index: ``(n, max_digits)`` int64, -1 for empty slots.

    Example:
        >>> from captum_contrast.data.canvases import MultiDigitCanvases
        >>> data = MultiDigitCanvases(n=50, size=64, seed=1)
        >>> image, labels, masks = data[0]
        >>> image.shape, labels.shape, masks.shape
        (torch.Size([1, 64, 64]), torch.Size([10]), torch.Size([10, 64, 64]))
        >>> bool((masks.flatten(1).any(1) == labels.bool()).all())
        True
    """

    def __init__(
        self,
        n: int = 1000,
        split: str = "train",
        size: int = 32,
        seed: int = 0,
        min_digits: int = 1,
        max_digits: int = 3,
        digit_size: int | None = None,
    ) -> None:
        check_split(split, SPLITS[:3])
        super().__init__(n, split, size, seed, digit_size)
        max_digits = check_int(max_digits, "max_digits", 1, 4)
        min_digits = check_int(min_digits, "min_digits", 1, max_digits)
        rng = seeded_rng(self.seed, "multi", split)
        counts = rng.integers(min_digits, max_digits + 1, size=self.n)
        classes = distinct_classes(rng, range(NUM_CLASSES), self.n, max_digits)
        classes[np.arange(max_digits)[None, :] >= counts[:, None]] = -1
        sources = draw_sources(rng, classes, split)
        tops, lefts, _ = cell_positions(rng, self.n, max_digits, self.size, self.digit_size)
        ink, segmentation = render(sources, tops, lefts, self.size, self.digit_size)
        self._store(sources, ink, segmentation)
        self.labels = torch.zeros(self.n, NUM_CLASSES)
        present = self.digit_classes >= 0
        self.labels[torch.nonzero(present)[:, 0], self.digit_classes[present]] = 1.0

    @property
    def masks(self) -> Tensor:
        """``(n, 10, H, W)`` bool per-class masks (computed from :attr:`segmentation`)."""
        return class_masks(self.segmentation)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n,1,H,W) float32, labels (n,10) float32, masks (n,10,H,W) bool)``."""
        return self.images, self.labels, self.masks

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.labels[index], class_masks(self.segmentation[index])


def class_masks(segmentation: Tensor) -> Tensor:
    classes = torch.arange(NUM_CLASSES, dtype=segmentation.dtype).reshape(-1, 1, 1)
    return segmentation.unsqueeze(-3) == classes


def __getattr__(name: str) -> object:
    # SalienceDigits moved to captum_contrast.data.salience (which imports this module);
    # read lazily so that ``from captum_contrast.data.canvases import SalienceDigits`` works.
    if name == "SalienceDigits":
        from captum_contrast.data.salience import SalienceDigits

        return SalienceDigits
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
