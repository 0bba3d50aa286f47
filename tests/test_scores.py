"""Any model output: each built-in ``scores`` gives the wrapped-forward map, for every method.

The contract (issue 19): given ``scores``, a method's map equals, to float rounding, the map
it computes for ``forward_func = lambda *x: scores(model(*x))`` at the same layer. Every
model here is a few fixed-seed layers, so the check is exact up to rounding; the values are
checked by hand where the reduction is simple.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import scale_cam_image
from pytorch_grad_cam.utils.model_targets import SemanticSegmentationTarget
from torch import nn

from captum_contrast import ContrastGradCAM, DifferenceSalience, MinMaxCAM, OptiCAM
from captum_contrast.scores import (
    BoxScores,
    ClassScores,
    PresenceScores,
    RegionScores,
    SimilarityScores,
    StepScores,
    read_scores,
)


class DenseNet(nn.Module):
    """(B, 3, 8, 8) -> (B, 4, 8, 8) per-pixel logits, optionally as torchvision's dict."""

    def __init__(self, as_dict: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(6, 4, 1)
        self.as_dict = as_dict

    def forward(self, x):
        out = self.head(self.relu(self.conv1(x)))
        return {"out": out, "aux": out * 2} if self.as_dict else out


class SequenceNet(nn.Module):
    """(B, 3, 8, 8) -> (B, T=8, V=5): a column of the feature map per step, like a CRNN."""

    def __init__(self, time_first: bool = False) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 5)
        self.time_first = time_first

    def forward(self, x):
        features = self.relu(self.conv1(x)).mean(dim=2)  # (B, 6, W)
        out = self.head(features.transpose(1, 2))  # (B, W, V)
        return out.transpose(0, 1) if self.time_first else out


class DetectorNet(nn.Module):
    """(B, 3, 8, 8) -> (B, N=3, 4 + 3): fixed boxes, class scores from pooled features."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 9)
        self.register_buffer("boxes", torch.tensor([[0.0, 0, 4, 4], [4, 4, 8, 8], [0, 0, 8, 8]]))

    def forward(self, x):
        pooled = self.relu(self.conv1(x)).mean(dim=(2, 3))
        classes = torch.sigmoid(self.head(pooled)).reshape(-1, 3, 3)
        boxes = self.boxes.expand(len(x), 3, 4)
        return torch.cat([boxes, classes], dim=2)


class EmbeddingNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.head = nn.Linear(6, 4)

    def forward(self, x):
        return self.head(self.relu(self.conv1(x)).mean(dim=(2, 3)))


def _model(cls, **kwargs) -> nn.Module:
    torch.manual_seed(0)
    return cls(**kwargs).eval()


def _images(batch: int = 3) -> torch.Tensor:
    return torch.rand(batch, 3, 8, 8, generator=torch.Generator().manual_seed(1))


def _per_example_mask() -> torch.Tensor:
    mask = torch.zeros(3, 8, 8, dtype=torch.bool)
    mask[0, :4, :4] = True
    mask[1, 2:6, 1:7] = True
    mask[2, 5:, :] = True
    return mask


CASES = {
    "region-shared-mean": (DenseNet, {}, lambda: RegionScores(_per_example_mask()[1])),
    "region-per-example-sum": (
        DenseNet,
        {},
        lambda: RegionScores(_per_example_mask(), reduction="sum"),
    ),
    "region-dict": (DenseNet, {"as_dict": True}, lambda: RegionScores(_per_example_mask())),
    "region-float-mask": (
        DenseNet,
        {},
        lambda: RegionScores(torch.rand(8, 8, generator=torch.Generator().manual_seed(3))),
    ),
    "step": (SequenceNet, {}, lambda: StepScores(2)),
    "step-per-example": (SequenceNet, {}, lambda: StepScores([0, 3, 7])),
    "step-time-first": (SequenceNet, {"time_first": True}, lambda: StepScores(5, time_axis=0)),
    "presence": (SequenceNet, {}, lambda: PresenceScores()),
    "presence-log-score-time-first": (
        SequenceNet,
        {"time_first": True},
        lambda: PresenceScores(time_axis=0, best_step="score", log_softmax=True),
    ),
    "box": (
        DetectorNet,
        {},
        lambda: BoxScores(torch.tensor([[0.0, 0, 4, 5], [4, 4, 8, 8], [0, 0, 7, 8]])),
    ),
    "similarity": (
        EmbeddingNet,
        {},
        lambda: SimilarityScores(torch.randn(3, 4, generator=torch.Generator().manual_seed(4))),
    ),
}

METHODS = {
    "case-full": (ContrastGradCAM, {"k": 1}),
    "case-shared": (ContrastGradCAM, {"k": 2, "projection": "shared"}),
    "minmax": (MinMaxCAM, {}),
    "d-minmax": (MinMaxCAM, {"variant": "d-minmax", "threshold": 0.3}),
    "difference": (DifferenceSalience, {"contrast": "runner-up"}),
    "opticam": (OptiCAM, {"n_iter": 3}),
}


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("method", METHODS)
def test_scores_give_the_wrapped_forward_map(case: str, method: str) -> None:
    model_class, model_kwargs, make_scores = CASES[case]
    method_class, kwargs = METHODS[method]
    model = _model(model_class, **model_kwargs)
    scores = make_scores()
    images = _images()
    target = [1, 0, 2]
    got = method_class(model, model.conv1).attribute(images, target, scores=scores, **kwargs)
    wrapped = method_class(lambda *x: scores(model(*x)), model.conv1)
    expected = wrapped.attribute(images, target, **kwargs)
    assert got.shape == (3, 1, 8, 8)
    assert expected.abs().sum() > 0 or method == "difference"
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", CASES)
def test_cosine_reads_the_scores(case: str) -> None:
    model_class, model_kwargs, make_scores = CASES[case]
    model = _model(model_class, **model_kwargs)
    scores = make_scores()
    got = ContrastGradCAM(model, model.conv1).cosine(_images(), 1, scores=scores)
    expected = ContrastGradCAM(lambda x: scores(model(x)), model.conv1).cosine(_images(), 1)
    torch.testing.assert_close(got, expected)


def test_region_scores_are_the_masked_mean_by_hand() -> None:
    outputs = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(5))
    mask = _per_example_mask()
    got = RegionScores(mask)(outputs)
    for b in range(3):
        expected = outputs[b][:, mask[b]].mean(dim=1)
        torch.testing.assert_close(got[b], expected)
    weights = torch.rand(8, 8, generator=torch.Generator().manual_seed(6))
    by_hand = (outputs * weights).sum(dim=(2, 3)) / weights.sum()
    torch.testing.assert_close(RegionScores(weights)(outputs), by_hand)
    torch.testing.assert_close(RegionScores(weights, "sum")(outputs), by_hand * weights.sum())
    volume = torch.randn(2, 3, 2, 4, 4)
    torch.testing.assert_close(
        RegionScores(torch.ones(2, 4, 4), per_example=False)(volume), volume.mean(dim=(2, 3, 4))
    )
    signal = torch.randn(2, 3, 6)
    torch.testing.assert_close(
        RegionScores(torch.ones(2, 6), per_example=True)(signal), signal.mean(dim=2)
    )


def test_presence_scores_are_each_symbols_best_step_by_hand() -> None:
    # Steps [0, 2] and [5, 3]: symbol 1's largest logit is 3 (step 1, where symbol 0 wins
    # with p = sigmoid(2)); its most probable step is step 0 (p = sigmoid(2)), logit 2.
    outputs = torch.tensor([[[0.0, 2.0], [5.0, 3.0]]], requires_grad=True)
    best = PresenceScores()(outputs)
    torch.testing.assert_close(best, torch.tensor([[5.0, 2.0]]))
    best[0, 1].backward()  # the gradient reaches symbol 1 through step 0 only
    assert outputs.grad[0].nonzero().tolist() == [[0, 1]]
    by_score = PresenceScores(best_step="score")(outputs.detach())
    torch.testing.assert_close(by_score, torch.tensor([[5.0, 3.0]]))
    log_p = PresenceScores(log_softmax=True)(outputs.detach())  # log sigmoid(2) = -0.126928
    torch.testing.assert_close(log_p, torch.full((1, 2), -0.126928), atol=1e-6, rtol=0)
    torch.testing.assert_close(PresenceScores(best_step="score", log_softmax=True)(outputs), log_p)
    time_first = PresenceScores(time_axis=0)(outputs.detach().transpose(0, 1))
    torch.testing.assert_close(time_first, best.detach())
    three = torch.tensor([[[1.0, 0.0, 0.0], [0.0, 4.0, 3.0], [0.0, 0.0, 1.0]]])
    # symbol 2: step 1 has logit 3 but p 0.26, step 2 logit 1 and p 0.58: its score is 1
    torch.testing.assert_close(PresenceScores()(three), torch.tensor([[1.0, 4.0, 1.0]]))
    assert PresenceScores(log_softmax=True).probability == "exp"
    assert PresenceScores(probability="identity").probability == "identity"
    # A raw logit's probability depends on its step's other logits: no made-up default.
    with pytest.raises(ValueError, match=r"log_softmax=True"):
        _ = PresenceScores().probability


def test_presence_scores_never_let_a_corrupt_or_padded_step_choose() -> None:
    """Found by the probe: one NaN / +inf pulled every symbol onto its step, and a padded
    (all -inf) step turned every score into -inf."""
    nan, inf = float("nan"), float("inf")
    clean = torch.tensor([[[0.0, 1.0, 2.0], [0.0, 0.0, 0.0], [5.0, 0.0, 0.0]]])
    for corrupt in (nan, inf):
        bad = clean.clone()
        bad[0, 1, 0] = corrupt
        both = torch.cat([bad, clean])  # the clean example keeps its numbers
        read = PresenceScores()(both)
        assert read[0].isnan().all()
        torch.testing.assert_close(read[1], torch.tensor([5.0, 0.0, 2.0]))  # by hand
    padded = torch.full((1, 3, 3), -inf)
    padded[0, 0] = torch.tensor([0.0, 1.0, 2.0])
    torch.testing.assert_close(PresenceScores()(padded), torch.tensor([[0.0, 1.0, 2.0]]))
    with pytest.raises(ValueError, match="V = 1"):
        PresenceScores()(torch.tensor([[[1.0], [9.0]]]))
    assert PresenceScores(best_step="score")(torch.tensor([[[1.0], [9.0]]])).item() == 9.0
    with pytest.raises(ValueError, match="floating"):
        PresenceScores()(torch.ones(1, 2, 3, dtype=torch.long))
    for axis in (1.0, True, "1"):
        with pytest.raises(ValueError, match="`time_axis`"):
            PresenceScores(axis)


def test_box_scores_pick_the_most_overlapping_prediction() -> None:
    predictions = torch.tensor(
        [
            [[0.0, 0, 4, 4, 0.1, 0.9], [4, 4, 8, 8, 0.8, 0.2]],
            [[0, 0, 4, 4, 0.3, 0.7], [4, 4, 8, 8, 0.6, 0.4]],
        ]
    )
    got = BoxScores(torch.tensor([[4.0, 4, 8, 7], [0, 0, 3, 4]]))(predictions)
    torch.testing.assert_close(got, torch.tensor([[0.8, 0.2], [0.3, 0.7]]))
    with pytest.raises(ValueError, match=r"examples \[1\]"):
        BoxScores(torch.tensor([[4.0, 4, 8, 8], [20, 20, 30, 30]]))(predictions)


def test_similarity_scores_are_cosines() -> None:
    embeddings = torch.randn(4, 6)
    references = torch.randn(3, 6)
    expected = torch.nn.functional.cosine_similarity(embeddings[:, None], references[None], dim=2)
    torch.testing.assert_close(SimilarityScores(references)(embeddings), expected)


@pytest.mark.parametrize(
    ("scores", "outputs", "message"),
    [
        (
            RegionScores(torch.ones(4, 4)),
            torch.zeros(2, 3, 8, 8),
            r"grid \(4, 4\).*grid is \(8, 8\)",
        ),
        (
            RegionScores(torch.ones(3, 8, 8)),
            torch.zeros(2, 3, 8, 8),
            r"`mask` holds 3 entries.*2 examples",
        ),
        (RegionScores(torch.zeros(8, 8)), torch.zeros(2, 3, 8, 8), r"`mask` selects no position"),
        (RegionScores(torch.ones(8, 8)), torch.zeros(2, 3), r"1 to 3 grid axes"),
        (StepScores(9), torch.zeros(2, 9, 4), r"`step` 9 is out of range.*9 time steps"),
        (StepScores([1, 2, 3]), torch.zeros(2, 9, 4), r"`step` holds 3 entries"),
        (StepScores(1), torch.zeros(2, 9), r"\(B, T, V\)"),
        (PresenceScores(), torch.zeros(2, 9), r"PresenceScores reads sequence outputs"),
        (PresenceScores(), torch.zeros(2, 0, 4), r"at least one step"),
        (BoxScores(torch.ones(3, 4).cumsum(1)), torch.zeros(2, 5, 7), r"`boxes` holds 3 entries"),
        (BoxScores([0.0, 0, 1, 1]), torch.zeros(2, 5, 4), r"4 \+ C"),
        (SimilarityScores(torch.ones(3, 5)), torch.zeros(2, 4), r"dimension 5.*have 4"),
        (ClassScores(), {"out": torch.zeros(2, 3, 4, 4)}, r"RegionScores"),
        (lambda out: out.sum(), torch.zeros(2, 3), r"`scores` must return \(batch, classes\)"),
        (lambda out: out[:1], torch.zeros(2, 3), r"`scores` returned 1 rows for a batch of 2"),
        (lambda out: out.long(), torch.zeros(2, 3), r"real floating"),
    ],
)
def test_bad_selections_raise_naming_the_argument(scores, outputs, message) -> None:
    with pytest.raises(ValueError, match=message):
        read_scores(scores, outputs, batch_size=2)


@pytest.mark.parametrize(
    ("build", "error", "message"),
    [
        (lambda: RegionScores(torch.ones(8, 8), reduction="max"), ValueError, "`reduction`"),
        (
            lambda: RegionScores(torch.ones(8, 8, dtype=torch.long)),
            TypeError,
            "`mask` must be boolean or float",
        ),
        (
            lambda: RegionScores(-torch.ones(8, 8)),
            ValueError,
            r"`mask` must hold finite weights >= 0",
        ),
        (lambda: RegionScores(torch.ones(2, 2, 2, 2, 2)), ValueError, "1 to 3 grid axes"),
        (lambda: StepScores(1.5), TypeError, "`step` must be an int"),
        (lambda: StepScores(True), TypeError, "`step` must be an int"),
        (lambda: StepScores(-1), ValueError, "`step` must be >= 0"),
        (lambda: StepScores(1, time_axis=2), ValueError, "`time_axis`"),
        (lambda: PresenceScores(time_axis=2), ValueError, "`time_axis` must be 1"),
        (lambda: PresenceScores(best_step="max"), ValueError, "`best_step` must be one of"),
        (lambda: PresenceScores(probability="max"), ValueError, "`probability`"),
        (lambda: PresenceScores(log_softmax=1), TypeError, "`log_softmax` must be a bool"),
        (lambda: BoxScores(torch.ones(2, 5)), ValueError, r"`boxes` must be \(B, 4\)"),
        (lambda: BoxScores([4.0, 0, 1, 1]), ValueError, "x2 >= x1"),
        (lambda: BoxScores([0.0, 0, 1, 1], iou_threshold=1.5), ValueError, "`iou_threshold`"),
        (
            lambda: SimilarityScores(torch.zeros(2, 3)),
            ValueError,
            "`references` must be finite and non-zero",
        ),
        (
            lambda: RegionScores(torch.ones(8, 8), probability="softmin"),
            ValueError,
            "`probability`",
        ),
    ],
)
def test_bad_constructor_arguments_raise(build, error, message) -> None:
    with pytest.raises(error, match=message):
        build()


def test_a_method_refuses_a_non_callable_scores() -> None:
    model = _model(DenseNet)
    with pytest.raises(TypeError, match="`scores` must be None or a callable"):
        ContrastGradCAM(model, model.conv1).attribute(_images(), 1, scores="region")


def test_per_example_selection_follows_opticam_copies() -> None:
    """io-objectives forward masked and complement copies together: the steps follow them."""
    model = _model(SequenceNet)
    images = _images()
    steps = [0, 3, 7]
    together = OptiCAM(model, model.conv1).attribute(
        images, [1, 0, 2], scores=StepScores(steps), objective="iomask", n_iter=3
    )
    for b in range(3):
        alone = OptiCAM(model, model.conv1).attribute(
            images[b : b + 1],
            [1, 0, 2][b],
            scores=StepScores(steps[b]),
            objective="iomask",
            n_iter=3,
        )
        torch.testing.assert_close(together[b : b + 1], alone, rtol=1e-4, atol=1e-6)


def test_minmax_region_sum_equals_pytorch_grad_cam_segmentation_target() -> None:
    """The peer's SemanticSegmentationTarget is Grad-CAM of the region's summed logit."""
    model = _model(DenseNet)
    images = _images()
    mask = np.zeros((8, 8), dtype=np.float32)
    mask[2:6, 1:5] = 1
    category = 2
    with GradCAM(model=model, target_layers=[model.conv1]) as peer:
        expected = peer(
            input_tensor=images, targets=[SemanticSegmentationTarget(category, mask)] * 3
        )
    labels = torch.zeros(3, 4, dtype=torch.bool)
    labels[:, category] = True
    ours = MinMaxCAM(model, model.conv1).attribute(
        images, category, labels=labels, scores=RegionScores(torch.from_numpy(mask) > 0, "sum")
    )
    scaled = scale_cam_image(ours[:, 0].numpy(), (8, 8))
    np.testing.assert_allclose(scaled, expected, atol=1e-5)
    assert expected.std() > 0


@pytest.mark.parametrize("architecture", ["fcn_resnet50", "lraspp_mobilenet_v3_large"])
def test_torchvision_segmentation_dict_output_needs_no_wrapper(architecture: str) -> None:
    from torchvision.models import segmentation

    torch.manual_seed(0)
    build = getattr(segmentation, architecture)
    model = build(weights=None, weights_backbone=None, num_classes=3).eval()
    layer = model.backbone.layer4 if architecture == "fcn_resnet50" else model.backbone["16"]
    images = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[10:40, 20:50] = True
    scores = RegionScores(region)
    got = ContrastGradCAM(model, layer).attribute(images, 1, scores=scores)
    expected = ContrastGradCAM(lambda x: scores(model(x)["out"]), layer).attribute(images, 1)
    torch.testing.assert_close(got, expected)
    assert got.dim() == 4 and got.shape[:2] == (2, 1)


def test_scored_forward_gives_captum_layer_grad_cam_the_scores_the_methods_read() -> None:
    """Captum's LayerGradCam on ``scored_forward`` equals the package's Grad-CAM weights of
    the same region score (MinMaxCAM with no other label is Grad-CAM), and its output is
    checked like any read (one row per example)."""
    from captum.attr import LayerGradCam

    from captum_contrast.scores import scored_forward

    torch.manual_seed(0)
    model, x = DenseNet(as_dict=True).eval(), torch.randn(2, 3, 8, 8)
    mask = torch.zeros(8, 8, dtype=torch.bool)
    mask[2:5, 3:7] = True
    scores = RegionScores(mask, "sum")
    forward = scored_forward(model, scores)
    expected = model(x)["out"][:, :, 2:5, 3:7].sum(dim=(2, 3))
    torch.testing.assert_close(forward(x), expected)
    captum = LayerGradCam(forward, model.relu).attribute(x, target=2, relu_attributions=True)
    only_target = torch.zeros(2, 4, dtype=torch.bool)
    only_target[:, 2] = True  # no other label: MinMax-CAM is Grad-CAM
    ours = MinMaxCAM(model, model.relu).attribute(x, target=2, labels=only_target, scores=scores)
    torch.testing.assert_close(captum, ours, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="one row of class scores per example"):
        scored_forward(model, lambda out: out["out"].sum(dim=(2, 3))[:1])(x)
