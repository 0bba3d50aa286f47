"""Offline digit canvases: determinism, exact masks, label/mask agreement, disjoint splits."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from captum_contrast.data.canvases import (
    INK_THRESHOLD,
    SPLITS,
    DigitCanvases,
    MultiDigitCanvases,
    source_indices,
)
from captum_contrast.data.models import fit_classifier, small_cnn
from captum_contrast.data.salience import SalienceDigits


def _sklearn_targets() -> np.ndarray:
    from sklearn.datasets import load_digits

    return load_digits().target


def test_source_pools_partition_all_digits_stratified() -> None:
    pools = {split: source_indices(split) for split in SPLITS}
    everything = torch.cat(list(pools.values()))
    assert len(everything) == 1797
    assert len(everything.unique()) == 1797
    targets = _sklearn_targets()
    for split, pool in pools.items():
        counts = np.bincount(targets[pool.numpy()], minlength=10)
        assert counts.min() > 0, split
    # Stratified 50/15/20/15: each class's share is within one digit of the fraction.
    train_counts = np.bincount(targets[pools["train"].numpy()], minlength=10)
    assert np.all(np.abs(train_counts - np.bincount(targets) * 0.5) <= 1)


@pytest.mark.parametrize(
    "factory",
    [
        lambda split, seed: DigitCanvases(300, split=split, seed=seed),
        lambda split, seed: MultiDigitCanvases(300, split=split, seed=seed),
        lambda split, seed: SalienceDigits(300, split=split, seed=seed),
    ],
)
def test_splits_use_disjoint_source_digits(factory) -> None:
    used = {}
    for split in ("train", "val", "test"):
        # Different seeds per split: disjointness must not depend on the seeds matching.
        data = factory(split, seed=SPLITS.index(split))
        used[split] = set(data.source_index[data.source_index >= 0].tolist())
        assert used[split] <= set(source_indices(split).tolist())
    assert not used["train"] & used["val"]
    assert not used["train"] & used["test"]
    assert not used["val"] & used["test"]


def test_ood_split_draws_from_its_own_pool() -> None:
    ood = SalienceDigits(300, split="ood", seed=0)
    used = set(ood.source_index[ood.source_index >= 0].tolist())
    assert used <= set(source_indices("ood").tolist())
    assert not used & set(source_indices("train").tolist())


@pytest.mark.parametrize("cls", [DigitCanvases, MultiDigitCanvases, SalienceDigits])
def test_deterministic_by_seed(cls) -> None:
    first, again, other = cls(64, seed=5), cls(64, seed=5), cls(64, seed=6)
    for a, b in zip(first.tensors(), again.tensors(), strict=True):
        assert torch.equal(a, b)
    assert not torch.equal(first.images, other.images)


def test_single_label_items_and_exact_masks() -> None:
    data = DigitCanvases(200, split="val", size=32, seed=2)
    image, label, mask = data[7]
    assert image.shape == (1, 32, 32) and image.dtype == torch.float32
    assert isinstance(label, int) and 0 <= label <= 9
    assert mask.shape == (1, 32, 32) and mask.dtype == torch.bool
    images, labels, masks = data.tensors()
    assert labels.dtype == torch.int64 and images.min() >= 0 and images.max() <= 1
    assert torch.equal(masks, images > 0)
    assert torch.equal(labels, data.digit_classes[:, 0])
    # Every canvas has a non-empty 12x12-bounded digit, and the ink is thresholded.
    assert bool(masks.flatten(1).any(1).all())
    assert images[images > 0].min() >= INK_THRESHOLD
    rows = masks[:, 0].any(dim=2)
    heights = rows.shape[1] - rows.int().argmax(1) - rows.flip(1).int().argmax(1)
    assert int(heights.max()) <= 12
    assert sorted(labels.unique().tolist()) == list(range(10))


def test_single_label_digit_matches_its_source_digit() -> None:
    # The canvas holds exactly the source digit, upscaled independently here, somewhere on
    # an otherwise black canvas: a check that the right digit was drawn, whole and alone.
    from sklearn.datasets import load_digits

    data = DigitCanvases(20, size=32, seed=0)
    digits = torch.as_tensor(load_digits().images, dtype=torch.float32) / 16
    for i in range(20):
        ys, xs = torch.nonzero(data.masks[i, 0], as_tuple=True)
        source = digits[int(data.source_index[i, 0])]
        upscaled = torch.nn.functional.interpolate(
            source[None, None], size=(12, 12), mode="bilinear", align_corners=False
        )[0, 0]
        upscaled = torch.where(upscaled >= INK_THRESHOLD, upscaled, 0.0)
        found = False
        for top in range(int(ys.min()) - 11, int(ys.min()) + 1):
            for left in range(int(xs.min()) - 11, int(xs.min()) + 1):
                if top < 0 or left < 0 or top + 12 > 32 or left + 12 > 32:
                    continue
                crop = data.images[i, 0, top : top + 12, left : left + 12]
                if torch.allclose(crop, upscaled) and torch.isclose(
                    crop.sum(), data.images[i].sum()
                ):
                    found = True
        assert found, i


@pytest.mark.parametrize("size", [32, 64])
def test_multi_label_masks_and_labels(size: int) -> None:
    data = MultiDigitCanvases(150, split="test", size=size, seed=3)
    images, labels, masks = data.tensors()
    assert images.shape == (150, 1, size, size)
    assert labels.shape == (150, 10) and labels.dtype == torch.float32
    assert masks.shape == (150, 10, size, size) and masks.dtype == torch.bool
    # Labels are exactly the classes whose mask is non-empty; 1 to 3 distinct digits.
    assert torch.equal(masks.flatten(2).any(2).float(), labels)
    assert set(labels.sum(1).long().tolist()) == {1, 2, 3}
    # Masks are disjoint and their union is exactly the ink.
    assert int(masks.sum(1).max()) == 1
    assert torch.equal(masks.any(1), images[:, 0] > 0)
    # Each class's mask holds that digit's pixels only: ink inside each present digit's box.
    image, item_labels, item_masks = data[11]
    assert torch.equal(item_labels, labels[11]) and torch.equal(item_masks, masks[11])
    for c in torch.nonzero(labels[11]).flatten().tolist():
        ys, xs = torch.nonzero(masks[11, c], as_tuple=True)
        assert (
            int(ys.max() - ys.min()) < data.digit_size
            and int(xs.max() - xs.min()) < data.digit_size
        )


def test_salience_task_labels_maps_and_shift() -> None:
    train = SalienceDigits(400, split="train", seed=0)
    ood = SalienceDigits(400, split="ood", seed=0)
    for data in (train, ood):
        has_three = (data.segmentation == 3).flatten(1).any(1)
        assert torch.equal(has_three.long(), data.labels)
        assert int(data.labels.sum()) == 200
        positives = data.labels == 1
        # Positives: the human map is exactly the 3's pixels; negatives: all distractor ink.
        assert torch.equal(data.human_maps[positives, 0].bool(), data.segmentation[positives] == 3)
        assert torch.equal(
            data.human_maps[~positives, 0].bool(), data.segmentation[~positives] >= 0
        )
        assert set(data.human_maps.unique().tolist()) == {0.0, 1.0}
    # In-distribution canvases: clean ink, no held-out distractors.
    assert torch.equal(train.images[:, 0] > 0, train.segmentation >= 0)
    assert not bool(((train.segmentation == 5) | (train.segmentation == 8)).any())
    # OOD: held-out look-alikes appear, background is raised and noise added.
    assert bool(((ood.segmentation == 5) | (ood.segmentation == 8)).any())
    background = ood.images[:, 0][ood.segmentation < 0]
    assert abs(float(background.mean()) - 0.15) < 0.01
    assert 0.04 < float(background.std()) < 0.06
    # Digit counts have the same distribution for both labels (no counting shortcut).
    counts = (train.digit_classes >= 0).sum(1)
    assert (
        set(counts[train.labels == 1].tolist())
        == set(counts[train.labels == 0].tolist())
        == {1, 2, 3}
    )


def test_salience_zero_annotation_and_shortcut_marker() -> None:
    zeros = SalienceDigits(100, seed=1, negative_annotation="zeros")
    assert float(zeros.human_maps[zeros.labels == 0].abs().sum()) == 0.0
    marked = SalienceDigits(400, seed=1, shortcut=1.0)
    assert torch.equal(marked.markers, marked.labels == 1)
    plain = SalienceDigits(400, seed=1)
    # The marker lies outside every digit, so it changes exactly side*side pixels to 1.
    changed = (marked.images != plain.images).flatten(1).sum(1)
    assert (
        set(changed[marked.labels == 1].tolist()) <= {9}
        and int(changed[marked.labels == 0].sum()) == 0
    )
    assert torch.equal(marked.human_maps, plain.human_maps)
    ood = SalienceDigits(400, split="ood", seed=1, shortcut=1.0)
    assert torch.equal(ood.markers, ood.labels == 0)


def test_dataloader_collates_items() -> None:
    images, labels, maps = next(iter(DataLoader(SalienceDigits(16, size=64), batch_size=8)))
    assert (
        images.shape == (8, 1, 64, 64)
        and labels.dtype == torch.int64
        and maps.shape == images.shape
    )


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="split"):
        DigitCanvases(10, split="ood")
    with pytest.raises(ValueError, match="split"):
        SalienceDigits(10, split="training")
    with pytest.raises(ValueError, match="digit_size"):
        MultiDigitCanvases(10, size=32, digit_size=20)
    with pytest.raises(ValueError, match="max_digits"):
        SalienceDigits(10, max_digits=4)
    with pytest.raises(ValueError, match="ood_distractors"):
        SalienceDigits(10, positive_class=5)
    with pytest.raises(ValueError, match="negative_annotation"):
        SalienceDigits(10, negative_annotation="uniform")
    with pytest.raises(ValueError, match="ood_noise"):
        SalienceDigits(10, ood_noise=-0.1)
    with pytest.raises(ValueError, match="shortcut"):
        SalienceDigits(10, shortcut=2.0)
    with pytest.raises(TypeError, match="seed"):
        DigitCanvases(10, seed=1.5)
    with pytest.raises(ValueError, match="n"):
        DigitCanvases(0)


def test_small_cnn_layout() -> None:
    model = small_cnn(num_classes=2, width=4)
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.in_features == 16
    assert isinstance(model.features[-1], torch.nn.ReLU)
    inputs = torch.rand(3, 1, 32, 32)
    logits, features = model.forward_with_features(inputs)
    assert features.shape == (3, 16, 8, 8)
    # The logit is the head applied to the spatial mean of the features (CAM = W . F holds).
    expected = features.mean((2, 3)) @ model.classifier.weight.T + model.classifier.bias
    assert torch.allclose(logits, expected, atol=1e-6)
    assert torch.allclose(model(inputs), logits)
    with pytest.raises(ValueError, match="width"):
        small_cnn(2, width=0)


def test_fit_classifier_deterministic_and_learns() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny convolutions: extra threads only add contention
    try:
        # An easy problem: the class sets the brightness of a 16x16 image.
        labels = torch.arange(120) % 3
        images = (labels.float() / 3 + 0.1).reshape(-1, 1, 1, 1).expand(-1, 1, 16, 16)
        images = images + 0.05 * torch.randn(
            120, 1, 16, 16, generator=torch.Generator().manual_seed(0)
        )
        trained = []
        for _ in range(2):
            torch.manual_seed(0)
            model = small_cnn(num_classes=3, width=4).eval()
            losses = fit_classifier(model, images, labels, epochs=8, batch_size=16, lr=1e-2)
            trained.append(model)
        assert not model.training  # mode restored
        assert len(losses) == 8 and losses[-1] < 0.5 * losses[0]
        for a, b in zip(trained[0].parameters(), trained[1].parameters(), strict=True):
            assert torch.equal(a, b)
        # Multi-hot labels train with BCE: "class 0 or 1" and "class 1 or 2" at once.
        multi = torch.stack([(labels <= 1).float(), (labels >= 1).float()], dim=1)
        torch.manual_seed(0)
        multi_model = small_cnn(num_classes=2, width=4)
        multi_losses = fit_classifier(multi_model, images, multi, epochs=8, batch_size=16, lr=1e-2)
        assert multi_model.training and multi_losses[-1] < 0.5 * multi_losses[0]
        with pytest.raises(TypeError, match="labels"):
            fit_classifier(model, images, labels.float())
        with pytest.raises(ValueError, match="same length"):
            fit_classifier(model, images[:5], labels)
    finally:
        torch.set_num_threads(threads)
