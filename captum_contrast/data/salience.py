"""SalienceDigits: the binary "does the canvas contain a digit?" task with human-salience maps.

Built on the offline canvases of :mod:`captum_contrast.data.canvases` (the same source
digits, splits and placement), with an out-of-distribution split for the salience-guided
training losses of Divisive Decisions.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from captum_contrast.data.canvases import (
    NUM_CLASSES,
    SPLITS,
    CanvasDataset,
    cell_positions,
    check_fraction,
    check_int,
    check_split,
    distinct_classes,
    draw_sources,
    render,
    seeded_rng,
)


class SalienceDigits(CanvasDataset):
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
        >>> from captum_contrast.data.salience import SalienceDigits
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
        check_split(split, SPLITS)
        super().__init__(n, split, size, seed, digit_size)
        self.positive_class = check_int(positive_class, "positive_class", 0, NUM_CLASSES - 1)
        max_digits = check_int(max_digits, "max_digits", 1, 3)
        if negative_annotation not in ("digits", "zeros"):
            raise ValueError(
                f"`negative_annotation` must be 'digits' or 'zeros', got {negative_annotation!r}"
            )
        held_out = sorted(
            {check_int(c, "ood_distractors", 0, NUM_CLASSES - 1) for c in ood_distractors}
        )
        if self.positive_class in held_out:
            raise ValueError("`ood_distractors` must not contain `positive_class`")
        distractors = [c for c in range(NUM_CLASSES) if c != self.positive_class]
        if split != "ood":
            distractors = [c for c in distractors if c not in held_out]
        if len(distractors) < max_digits:
            raise ValueError(f"only {len(distractors)} distractor classes for {max_digits} digits")
        self.is_ood = split == "ood"
        self.background = check_fraction(ood_background, "ood_background") if self.is_ood else 0.0
        if isinstance(ood_noise, bool) or not isinstance(ood_noise, (int, float)) or ood_noise < 0:
            raise ValueError(f"`ood_noise` must be a number >= 0, got {ood_noise!r}")
        self.noise = float(ood_noise) if self.is_ood else 0.0
        shortcut = check_fraction(shortcut, "shortcut")
        positive_fraction = check_fraction(positive_fraction, "positive_fraction")

        rng = seeded_rng(self.seed, "salience", split)
        labels = np.zeros(self.n, dtype=np.int64)
        labels[rng.permutation(self.n)[: round(positive_fraction * self.n)]] = 1
        counts = rng.integers(1, max_digits + 1, size=self.n)
        classes = distinct_classes(rng, distractors, self.n, max_digits)
        classes[labels == 1, 0] = self.positive_class
        classes[np.arange(max_digits)[None, :] >= counts[:, None]] = -1
        sources = draw_sources(rng, classes, split)
        tops, lefts, cells = cell_positions(rng, self.n, max_digits, self.size, self.digit_size)
        ink, segmentation = render(sources, tops, lefts, self.size, self.digit_size)
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
