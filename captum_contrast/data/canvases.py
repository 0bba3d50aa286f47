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
- :class:`SalienceDigits`: the binary task "does the canvas contain a ``positive_class``?"
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
    _check_split(split, SPLITS)
    return torch.as_tensor(_partition()[split])


@lru_cache(maxsize=8)
def _glyphs(digit_size: int) -> Tensor:
    images, _ = _digits()
    upscaled = F.interpolate(
        images.unsqueeze(1), size=(digit_size, digit_size), mode="bilinear", align_corners=False
    ).squeeze(1)
    return torch.where(upscaled >= INK_THRESHOLD, upscaled.clamp(max=1.0), 0.0)


def _check_split(split: str, allowed: Sequence[str]) -> None:
    if split not in allowed:
        raise ValueError(f"`split` must be one of {tuple(allowed)}, got {split!r}")


def _check_int(value: object, name: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"`{name}` must be an int, got {type(value).__name__}")
    if value < low or (high is not None and value > high):
        bound = f"in [{low}, {high}]" if high is not None else f">= {low}"
        raise ValueError(f"`{name}` must be {bound}, got {value}")
    return int(value)


def _check_fraction(value: float, name: str) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
        raise ValueError(f"`{name}` must be a number in [0, 1], got {value!r}")
    return float(value)


def _rng(seed: int, kind: str, split: str) -> np.random.Generator:
    return np.random.default_rng(
        [_check_int(seed, "seed", 0), _KIND_IDS[kind], SPLITS.index(split)]
    )


def _draw_sources(rng: np.random.Generator, classes: np.ndarray, split: str) -> np.ndarray:
    """A random source digit of the given class from the split's pool; -1 stays -1."""
    _, targets = _digits()
    pool = _partition()[split]
    sources = np.full(classes.shape, -1, dtype=np.int64)
    for digit_class in range(NUM_CLASSES):
        where = classes == digit_class
        members = pool[targets[pool] == digit_class]
        sources[where] = members[rng.integers(0, len(members), size=int(where.sum()))]
    return sources


def _distinct_classes(
    rng: np.random.Generator, pool: Sequence[int], n: int, slots: int
) -> np.ndarray:
    """``(n, slots)`` classes drawn from ``pool`` without repetition within a row."""
    order = np.argsort(rng.random((n, len(pool))), axis=1)[:, :slots]
    return np.asarray(pool, dtype=np.int64)[order]


def _cell_positions(
    rng: np.random.Generator, n: int, slots: int, size: int, digit_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Top-left corners in distinct cells of a 2x2 grid, and each canvas's cell order."""
    cell = size // 2
    cells = np.argsort(rng.random((n, 4)), axis=1)
    jitter = rng.integers(0, cell - digit_size + 1, size=(2, n, slots))
    tops = (cells[:, :slots] // 2) * cell + jitter[0]
    lefts = (cells[:, :slots] % 2) * cell + jitter[1]
    return tops, lefts, cells


def _render(
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


class _Canvases(Dataset):
    """Shared storage: whole tensors built once, items are views into them."""

    images: Tensor
    segmentation: Tensor
    digit_classes: Tensor
    source_index: Tensor

    def __init__(self, n: int, split: str, size: int, seed: int, digit_size: int | None) -> None:
        self.n = _check_int(n, "n", 1)
        self.split = split
        self.size = _check_int(size, "size", 16)
        self.seed = _check_int(seed, "seed", 0)
        default_size = 3 * self.size // 8
        self.digit_size = _check_int(
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


class DigitCanvases(_Canvases):
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
        _check_split(split, SPLITS[:3])
        super().__init__(n, split, size, seed, digit_size)
        rng = _rng(self.seed, "single", split)
        classes = rng.integers(0, NUM_CLASSES, size=(self.n, 1))
        sources = _draw_sources(rng, classes, split)
        corners = rng.integers(0, self.size - self.digit_size + 1, size=(2, self.n, 1))
        ink, segmentation = _render(sources, corners[0], corners[1], self.size, self.digit_size)
        self._store(sources, ink, segmentation)
        self.labels = self.digit_classes[:, 0].clone()
        self.masks = (segmentation >= 0).unsqueeze(1)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n,1,H,W) float32, labels (n,) int64, masks (n,1,H,W) bool)``."""
        return self.images, self.labels, self.masks

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        return self.images[index], int(self.labels[index]), self.masks[index]


class MultiDigitCanvases(_Canvases):
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
        _check_split(split, SPLITS[:3])
        super().__init__(n, split, size, seed, digit_size)
        max_digits = _check_int(max_digits, "max_digits", 1, 4)
        min_digits = _check_int(min_digits, "min_digits", 1, max_digits)
        rng = _rng(self.seed, "multi", split)
        counts = rng.integers(min_digits, max_digits + 1, size=self.n)
        classes = _distinct_classes(rng, range(NUM_CLASSES), self.n, max_digits)
        classes[np.arange(max_digits)[None, :] >= counts[:, None]] = -1
        sources = _draw_sources(rng, classes, split)
        tops, lefts, _ = _cell_positions(rng, self.n, max_digits, self.size, self.digit_size)
        ink, segmentation = _render(sources, tops, lefts, self.size, self.digit_size)
        self._store(sources, ink, segmentation)
        self.labels = torch.zeros(self.n, NUM_CLASSES)
        present = self.digit_classes >= 0
        self.labels[torch.nonzero(present)[:, 0], self.digit_classes[present]] = 1.0

    @property
    def masks(self) -> Tensor:
        """``(n, 10, H, W)`` bool per-class masks (computed from :attr:`segmentation`)."""
        return _class_masks(self.segmentation)

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n,1,H,W) float32, labels (n,10) float32, masks (n,10,H,W) bool)``."""
        return self.images, self.labels, self.masks

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor, Tensor]:
        return self.images[index], self.labels[index], _class_masks(self.segmentation[index])


def _class_masks(segmentation: Tensor) -> Tensor:
    classes = torch.arange(NUM_CLASSES, dtype=segmentation.dtype).reshape(-1, 1, 1)
    return segmentation.unsqueeze(-3) == classes


class SalienceDigits(_Canvases):
    """Binary task "does the canvas contain a ``positive_class``?" with human-salience maps.

    Every canvas holds 1 to ``max_digits`` digits of distinct classes (count uniform, the
    same for both labels, so counting digits does not solve the task). Positives hold one
    ``positive_class`` digit and distractors; negatives hold only distractors. Labels are
    exactly balanced up to rounding (``round(positive_fraction * n)`` positives).

    The human-salience annotation is the positive digit's mask for positives. Negatives have
    no target digit; ``negative_annotation`` picks their map: ``"digits"`` (default), the
    union of the distractors' masks (the evidence that no target is there), or ``"zeros"``.
    The salience losses range-normalise human maps, so an all-zero map and a uniform map both
    mean "no spatial preference" and ask for a constant CAM.

    Splits. ``"train"``, ``"val"`` and ``"test"`` are in-distribution: black background, no
    noise, distractors from every class except ``positive_class`` and ``ood_distractors``.
    ``"ood"`` is shifted three ways: distractors may also be the held-out look-alike classes
    ``ood_distractors`` (by default 5 and 8, close in shape to a 3), the background is raised
    to ``ood_background`` and Gaussian noise of std ``ood_noise`` is added (then clipped to
    [0, 1]); its source digits are the ``"ood"`` pool, unseen by the other splits.

    Shortcut. With ``shortcut > 0`` in-distribution positives carry, with that probability,
    a small bright square in the corner of a cell that holds no digit: a spurious cue that
    is not in the human map (as in Ross et al.'s Decoy MNIST). In ``"ood"`` the cue is
    reversed (negatives carry it), so a model that learnt it is punished there.

    Items are ``(image, label, human_map)``: ``image`` float32 ``(1, H, W)`` in [0, 1],
    ``label`` int (1: contains ``positive_class``), ``human_map`` float32 ``(1, H, W)`` in
    {0, 1}.

    Args:
        n: Number of canvases.
        split: ``"train"``, ``"val"``, ``"test"`` or ``"ood"``.
        size: Canvas side (32 or 64); a 2x2 grid of cells as in :class:`~captum_contrast.data.MultiDigitCanvases`.
        seed: Canvases are a deterministic function of the arguments.
        positive_class: The digit to detect.
        max_digits: Most digits per canvas, 1 to 3 (one cell always stays free).
        positive_fraction: Fraction of positives.
        negative_annotation: ``"digits"`` or ``"zeros"``, see above.
        ood_distractors: Classes used as distractors only in ``"ood"``.
        ood_background: Background intensity of ``"ood"`` canvases.
        ood_noise: Std of the Gaussian noise added to ``"ood"`` canvases.
        shortcut: Probability of the spurious marker, see above.
        digit_size: Side of the upscaled digit; default ``3 * size // 8``.

    Attributes:
        images: ``(n, 1, H, W)``. labels: ``(n,)`` int64. human_maps: ``(n, 1, H, W)``
        float32. segmentation: ``(n, H, W)`` int8 class per pixel (-1 background).
        markers: ``(n,)`` bool, which canvases carry the shortcut marker.
        digit_classes, source_index: ``(n, max_digits)`` int64, -1 for empty slots.

    Example:
        >>> from captum_contrast.data.canvases import SalienceDigits
        >>> train = SalienceDigits(n=200, split="train", seed=0)
        >>> shifted = SalienceDigits(n=200, split="ood", seed=0)
        >>> image, label, human_map = train[0]
        >>> image.shape, human_map.shape, int(train.labels.sum())
        (torch.Size([1, 32, 32]), torch.Size([1, 32, 32]), 100)
        >>> bool(((train.segmentation == 3).any(dim=(1, 2)) == train.labels.bool()).all())
        True
    """

    def __init__(
        self,
        n: int = 1000,
        split: str = "train",
        size: int = 32,
        seed: int = 0,
        positive_class: int = 3,
        max_digits: int = 3,
        positive_fraction: float = 0.5,
        negative_annotation: str = "digits",
        ood_distractors: Sequence[int] = (5, 8),
        ood_background: float = 0.15,
        ood_noise: float = 0.05,
        shortcut: float = 0.0,
        digit_size: int | None = None,
    ) -> None:
        _check_split(split, SPLITS)
        super().__init__(n, split, size, seed, digit_size)
        self.positive_class = _check_int(positive_class, "positive_class", 0, NUM_CLASSES - 1)
        max_digits = _check_int(max_digits, "max_digits", 1, 3)
        if negative_annotation not in ("digits", "zeros"):
            raise ValueError(
                f"`negative_annotation` must be 'digits' or 'zeros', got {negative_annotation!r}"
            )
        held_out = sorted(
            {_check_int(c, "ood_distractors", 0, NUM_CLASSES - 1) for c in ood_distractors}
        )
        if self.positive_class in held_out:
            raise ValueError("`ood_distractors` must not contain `positive_class`")
        distractors = [c for c in range(NUM_CLASSES) if c != self.positive_class]
        if split != "ood":
            distractors = [c for c in distractors if c not in held_out]
        if len(distractors) < max_digits:
            raise ValueError(f"only {len(distractors)} distractor classes for {max_digits} digits")
        self.is_ood = split == "ood"
        self.background = _check_fraction(ood_background, "ood_background") if self.is_ood else 0.0
        if isinstance(ood_noise, bool) or not isinstance(ood_noise, (int, float)) or ood_noise < 0:
            raise ValueError(f"`ood_noise` must be a number >= 0, got {ood_noise!r}")
        self.noise = float(ood_noise) if self.is_ood else 0.0
        shortcut = _check_fraction(shortcut, "shortcut")
        positive_fraction = _check_fraction(positive_fraction, "positive_fraction")

        rng = _rng(self.seed, "salience", split)
        labels = np.zeros(self.n, dtype=np.int64)
        labels[rng.permutation(self.n)[: round(positive_fraction * self.n)]] = 1
        counts = rng.integers(1, max_digits + 1, size=self.n)
        classes = _distinct_classes(rng, distractors, self.n, max_digits)
        classes[labels == 1, 0] = self.positive_class
        classes[np.arange(max_digits)[None, :] >= counts[:, None]] = -1
        sources = _draw_sources(rng, classes, split)
        tops, lefts, cells = _cell_positions(rng, self.n, max_digits, self.size, self.digit_size)
        ink, segmentation = _render(sources, tops, lefts, self.size, self.digit_size)
        self._store(sources, ink, segmentation)
        self.labels = torch.as_tensor(labels)

        marked_label = 0 if self.is_ood else 1
        markers = (labels == marked_label) & (rng.random(self.n) < shortcut)
        free_cells = cells[np.arange(self.n), counts]
        image = self.background + (1.0 - self.background) * ink
        _draw_markers(image, np.flatnonzero(markers), free_cells[markers], self.size)
        if self.noise > 0:
            noise = torch.as_tensor(rng.standard_normal(image.shape, dtype=np.float32))
            image = (image + self.noise * noise).clamp(0.0, 1.0)
        self.images = image.unsqueeze(1)
        self.markers = torch.as_tensor(markers)

        target = segmentation == self.positive_class
        if negative_annotation == "digits":
            target = torch.where(self.labels.bool()[:, None, None], target, segmentation >= 0)
        self.human_maps = target.unsqueeze(1).float()

    def tensors(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(images (n,1,H,W) float32, labels (n,) int64, human_maps (n,1,H,W) float32)``."""
        return self.images, self.labels, self.human_maps

    def __getitem__(self, index: int) -> tuple[Tensor, int, Tensor]:
        return self.images[index], int(self.labels[index]), self.human_maps[index]


def _draw_markers(images: Tensor, which: np.ndarray, cells: np.ndarray, size: int) -> None:
    """A bright square in the outer corner of each given (empty) cell, in place."""
    side = max(2, size // 10)
    for canvas, cell in zip(which.tolist(), cells.tolist(), strict=True):
        top = 0 if cell // 2 == 0 else size - side
        left = 0 if cell % 2 == 0 else size - side
        images[canvas, top : top + side, left : left + side] = 1.0
