"""Training side: CAMs, the four salience losses (hand computations), KUR (SPEC 5 vector)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from captum_contrast.data.models import small_cnn
from captum_contrast.data.salience import SalienceDigits
from captum_contrast.training import (
    ContrastSalienceLoss,
    CYBORGLoss,
    DifferenceSalienceLoss,
    KernelUsageRegularizedLinear,
    PerClassSalienceLoss,
    class_activation_maps,
    head_weight,
)

LOSSES = [CYBORGLoss, DifferenceSalienceLoss, PerClassSalienceLoss, ContrastSalienceLoss]

# SPEC 5, Keras (K, L) layout.
KUR_W = [[1, -0.5, 0.2], [0.3, 0.8, -0.4], [-0.2, 0.1, 0.9], [0.5, 0.5, 0.5]]
KUR_EXPECTED = [
    [0.5979, -0.0667, 0.0537],
    [0.0954, 0.4193, -0.0632],
    [-0.0374, 0.0252, 0.5050],
    [0.1667, 0.1667, 0.1667],
]


def _head(weight: list[list[float]], bias: list[float] | None = None) -> nn.Linear:
    weight_tensor = torch.tensor(weight, dtype=torch.float64)
    head = nn.Linear(weight_tensor.shape[1], weight_tensor.shape[0], dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(weight_tensor)
        head.bias.copy_(torch.tensor(bias or [0.0] * weight_tensor.shape[0]))
    return head


# --- Kernel usage regularisation --------------------------------------------------------


def test_kur_matches_spec_vector() -> None:
    head = KernelUsageRegularizedLinear(4, 3, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(KUR_W, dtype=torch.float64).T)  # torch layout (L, K)
    expected = torch.tensor(KUR_EXPECTED, dtype=torch.float64)
    assert torch.allclose(head.effective_weight.T, expected, atol=1e-4)
    inputs = torch.tensor([[1.0, 2.0, -1.0, 0.5]], dtype=torch.float64)
    assert torch.allclose(head(inputs), inputs @ head.effective_weight.T + head.bias)
    assert head_weight(head) is not head.weight
    assert torch.allclose(head_weight(head), head.effective_weight)


def test_kur_gradient_flows_through_the_softmax() -> None:
    # d/dW of sum(W * softmax(W)) by the closed form: s + W*s - s * sum_l(W*s) per kernel.
    head = KernelUsageRegularizedLinear(4, 3, bias=False, dtype=torch.float64)
    with torch.no_grad():
        head.weight.copy_(torch.tensor(KUR_W, dtype=torch.float64).T)
    head.effective_weight.sum().backward()
    weight = np.array(KUR_W).T
    soft = np.exp(weight) / np.exp(weight).sum(axis=0, keepdims=True)
    expected = soft + weight * soft - soft * (weight * soft).sum(axis=0, keepdims=True)
    assert np.allclose(head.weight.grad.numpy(), expected, atol=1e-10)
    # A stop-gradient on the softmax would give just softmax(W): make sure that is different.
    assert not np.allclose(expected, soft, atol=1e-3)


def test_kur_from_linear_copies_parameters() -> None:
    linear = _head([[1.0, 2.0], [3.0, -1.0]], bias=[0.5, -0.5])
    head = KernelUsageRegularizedLinear.from_linear(linear)
    assert torch.equal(head.weight, linear.weight) and torch.equal(head.bias, linear.bias)
    assert head.weight.data_ptr() != linear.weight.data_ptr()
    with pytest.raises(TypeError, match="linear"):
        KernelUsageRegularizedLinear.from_linear(nn.Conv2d(1, 1, 1))


# --- class activation maps ---------------------------------------------------------------

# Features (B=2, K=2, 1x3): F_0 = [1, 0, 2], F_1 = [0, 1, 1]; W = [[2, 1], [1, 3]], so
# CAM_0 = 2 F_0 + F_1 = [2, 1, 5] and CAM_1 = F_0 + 3 F_1 = [1, 3, 5] for both examples.
FEATURES = torch.tensor([[[[1.0, 0.0, 2.0]], [[0.0, 1.0, 1.0]]]] * 2, dtype=torch.float64)
WEIGHT = [[2.0, 1.0], [1.0, 3.0]]
CAM_0, CAM_1 = [2.0, 1.0, 5.0], [1.0, 3.0, 5.0]


def test_class_activation_maps_by_hand() -> None:
    weight = torch.tensor(WEIGHT, dtype=torch.float64)
    all_maps = class_activation_maps(FEATURES, weight)
    assert all_maps.shape == (2, 2, 1, 3)
    assert all_maps[0, 0, 0].tolist() == CAM_0 and all_maps[0, 1, 0].tolist() == CAM_1
    per_example = class_activation_maps(FEATURES, weight, torch.tensor([1, 0]))
    assert per_example.shape == (2, 1, 1, 3)
    assert per_example[0, 0, 0].tolist() == CAM_1 and per_example[1, 0, 0].tolist() == CAM_0
    assert torch.equal(class_activation_maps(FEATURES, weight, [1, 0]), per_example)
    shared = class_activation_maps(FEATURES, weight, 1)
    assert shared.shape == (2, 1, 1, 3) and shared[1, 0, 0].tolist() == CAM_1
    pairs = class_activation_maps(FEATURES, weight, torch.tensor([[0, 1], [1, 1]]))
    assert pairs.shape == (2, 2, 1, 3) and pairs[1, 0, 0].tolist() == CAM_1


def test_cam_spatial_mean_plus_bias_is_the_logit() -> None:
    torch.manual_seed(0)
    model = small_cnn(num_classes=3, width=4)
    logits, features = model.forward_with_features(torch.rand(2, 1, 32, 32))
    cams = class_activation_maps(features, model.classifier.weight)
    assert torch.allclose(cams.mean((2, 3)) + model.classifier.bias, logits, atol=1e-5)


def test_class_activation_maps_errors() -> None:
    weight = torch.tensor(WEIGHT, dtype=torch.float64)
    with pytest.raises(ValueError, match="features"):
        class_activation_maps(FEATURES[0], weight)
    with pytest.raises(ValueError, match="weight"):
        class_activation_maps(FEATURES, weight[:, :1])
    with pytest.raises(ValueError, match="classes"):
        class_activation_maps(FEATURES, weight, [0, 1, 1])
    with pytest.raises(ValueError, match="classes"):
        class_activation_maps(FEATURES, weight, torch.tensor([0, 2]))
    with pytest.raises(TypeError, match="classes"):
        class_activation_maps(FEATURES, weight, torch.tensor([0.0, 1.0]))


# --- the four losses by hand ----------------------------------------------------------------

# Labels (0, 1). Example 0: t = CAM_0 = [2, 1, 5], f = CAM_1 = [1, 3, 5]. Example 1: swapped.
# N([2,1,5]) = [.25, 0, 1]; N([1,3,5]) = [0, .5, 1]; N(t - f): ex 0 N([1,-2,0]) = [1, 0, 2/3],
# ex 1 N([-1,2,0]) = [0, 1, 1/3]. Human maps [0, 2, 4] -> [0, .5, 1] and [1, 1, 0] -> [1, 1, 0].
LABELS = torch.tensor([0, 1])
HUMAN = torch.tensor([[[0.0, 2.0, 4.0]], [[1.0, 1.0, 0.0]]], dtype=torch.float64)
LOGITS = torch.tensor([[1.0, 0.0], [0.0, 0.0]], dtype=torch.float64)
CE = (math.log(1 + math.exp(-1)) + math.log(2)) / 2


def _sq(a: list[float], b: list[float]) -> float:
    return sum((x - y) ** 2 for x, y in zip(a, b, strict=True))


# Each MSE is a mean over B*h*w = 6 entries.
TRUE_CAM = (_sq([0.25, 0, 1], [0, 0.5, 1]) + _sq([0, 0.5, 1], [1, 1, 0])) / 6  # 2.5625 / 6
DIFFERENCE_CAM = (_sq([1, 0, 2 / 3], [0, 0.5, 1]) + _sq([0, 1, 1 / 3], [1, 1, 0])) / 6
PER_CLASS_FALSE = (_sq([0, 0.5, 1], [1, 0.5, 0]) + _sq([0.25, 0, 1], [0, 0, 1])) / 6  # 2.0625 / 6
CONTRAST_FALSE = (_sq([0, 0.5, 1], [0.75, 1, 0]) + _sq([0.25, 0, 1], [1, 0.5, 0])) / 6  # 3.625 / 6


@pytest.mark.parametrize(
    ("make_loss", "expected_terms", "weights"),
    [
        (CYBORGLoss, {"true_cam": TRUE_CAM}, (0.5, 0.5)),
        (DifferenceSalienceLoss, {"difference_cam": DIFFERENCE_CAM}, (0.5, 0.5)),
        (PerClassSalienceLoss, {"true_cam": TRUE_CAM, "false_cam": PER_CLASS_FALSE}, (1 / 3,) * 3),
        (ContrastSalienceLoss, {"true_cam": TRUE_CAM, "false_cam": CONTRAST_FALSE}, (1 / 3,) * 3),
    ],
)
def test_loss_by_hand(make_loss, expected_terms, weights) -> None:
    assert abs(TRUE_CAM - 2.5625 / 6) < 1e-12 and abs(CONTRAST_FALSE - 3.625 / 6) < 1e-12
    criterion = make_loss(_head(WEIGHT, bias=[7.0, -7.0]))  # the bias must not enter the CAMs
    loss = criterion(LOGITS, FEATURES, LABELS, HUMAN)
    expected_terms = {"cross_entropy": CE, **expected_terms}
    terms = {name: value.item() for name, value in criterion.last_terms.items()}
    for name, value in expected_terms.items():
        assert terms[name] == pytest.approx(value, abs=1e-12), name
    expected_total = sum(w * v for w, v in zip(weights, expected_terms.values(), strict=True))
    assert loss.dim() == 0 and loss.item() == pytest.approx(expected_total, abs=1e-12)
    assert terms["total"] == pytest.approx(expected_total, abs=1e-12)
    # Same result for (B, 1, H, W) human maps; float labels are refused, as everywhere a
    # class index is taken (issue 22: one check of class indices).
    again = criterion(LOGITS, FEATURES, LABELS, HUMAN.unsqueeze(1))
    assert again.item() == pytest.approx(expected_total, abs=1e-12)
    with pytest.raises(ValueError, match="`labels` must hold integer class indices"):
        criterion(LOGITS, FEATURES, LABELS.double(), HUMAN)


def test_loss_weights_are_parameters() -> None:
    head = _head(WEIGHT)
    cyborg = CYBORGLoss(head, alpha=0.2)(LOGITS, FEATURES, LABELS, HUMAN)
    assert cyborg.item() == pytest.approx(0.2 * CE + 0.8 * TRUE_CAM, abs=1e-12)
    literal = ContrastSalienceLoss(head, lambdas=(0.3, 0.3, 0.3))(LOGITS, FEATURES, LABELS, HUMAN)
    assert literal.item() == pytest.approx(0.3 * (CE + TRUE_CAM + CONTRAST_FALSE), abs=1e-12)
    per_class = PerClassSalienceLoss(head, lambdas=(0, 0, 1))(LOGITS, FEATURES, LABELS, HUMAN)
    assert per_class.item() == pytest.approx(PER_CLASS_FALSE, abs=1e-12)


def test_use_relu_features() -> None:
    # Negative features: with the ReLU they vanish, so t = f = 0, N(.) = 0 and the MSE is mean(h^2).
    features = -FEATURES
    loss = CYBORGLoss(_head(WEIGHT), alpha=0.0, use_relu_features=True)
    value = loss(LOGITS, features, LABELS, HUMAN).item()
    assert value == pytest.approx((0.25 + 1 + 1 + 1) / 6, abs=1e-12)
    # Without it: t of example 0 is -[2,1,5] -> N = [.75, 1, 0].
    plain = CYBORGLoss(_head(WEIGHT), alpha=0.0)(LOGITS, features, LABELS, HUMAN).item()
    expected = (_sq([0.75, 1, 0], [0, 0.5, 1]) + _sq([1, 0.5, 0], [1, 1, 0])) / 6
    assert plain == pytest.approx(expected, abs=1e-12)


def test_human_maps_resized_like_pil_bilinear() -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    raw = rng.random((2, 12, 12)).astype(np.float32)
    resized = np.stack(
        [np.asarray(Image.fromarray(m, mode="F").resize((3, 1), Image.BILINEAR)) for m in raw]
    )
    head = _head(WEIGHT)
    features = FEATURES.float()
    head = head.float()
    for make_loss in LOSSES:
        criterion = make_loss(head)
        at_input = criterion(LOGITS.float(), features, LABELS, torch.from_numpy(raw))
        at_cam = criterion(LOGITS.float(), features, LABELS, torch.from_numpy(resized))
        assert at_input.item() == pytest.approx(at_cam.item(), abs=1e-6)


def test_kur_head_uses_effective_weight() -> None:
    kur = KernelUsageRegularizedLinear.from_linear(_head(WEIGHT))
    plain = _head(kur.effective_weight.detach().tolist())
    for make_loss in LOSSES:
        assert make_loss(kur)(LOGITS, FEATURES, LABELS, HUMAN).item() == pytest.approx(
            make_loss(plain)(LOGITS, FEATURES, LABELS, HUMAN).item(), abs=1e-12
        )


# --- gradients ---------------------------------------------------------------------------


@pytest.mark.parametrize("make_loss", LOSSES)
def test_gradients_reach_classifier_and_features(make_loss) -> None:
    head = _head(WEIGHT)
    features = FEATURES.clone().requires_grad_(True)
    logits = head(features.mean((2, 3)))
    criterion = make_loss(head)
    criterion(logits, features, LABELS, HUMAN).backward()
    assert head.weight.grad is not None and float(head.weight.grad.abs().sum()) > 0
    assert features.grad is not None and float(features.grad.abs().sum()) > 0
    assert list(criterion.parameters()) == []  # the head is referenced, not registered


def test_detach_contrast_target_stops_gradient_into_t() -> None:
    # Only the contrast term; every label is 0, so t depends on W[0] only and f on W[1] only.
    labels = torch.tensor([0, 0])
    grads = {}
    for detach in (False, True):
        head = _head(WEIGHT)
        criterion = ContrastSalienceLoss(head, lambdas=(0, 0, 1), detach_contrast_target=detach)
        criterion(LOGITS, FEATURES, labels, HUMAN).backward()
        grads[detach] = head.weight.grad.clone()
    assert float(grads[False][0].abs().sum()) > 0  # N(t) is a moving target by default
    assert torch.equal(grads[True][0], torch.zeros(2, dtype=torch.float64))
    assert torch.allclose(grads[True][1], grads[False][1])  # f's gradient is the same
    assert float(grads[True][1].abs().sum()) > 0


# --- training ------------------------------------------------------------------------------


@pytest.fixture
def one_thread():
    # Tiny convolutions: a second intra-op thread only adds contention on a busy machine.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("make_loss", LOSSES)
def test_short_training_lowers_the_loss(make_loss, one_thread) -> None:
    images, labels, human_maps = SalienceDigits(48, split="train", seed=0).tensors()
    torch.manual_seed(0)
    model = small_cnn(num_classes=2, width=4)
    criterion = make_loss(model.classifier)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)

    def evaluate() -> float:
        with torch.no_grad():
            return criterion(*model.forward_with_features(images), labels, human_maps).item()

    before = evaluate()
    for _ in range(60):
        optimizer.zero_grad()
        criterion(*model.forward_with_features(images), labels, human_maps).backward()
        optimizer.step()
    after = evaluate()
    assert after < 0.85 * before


# --- errors ----------------------------------------------------------------------------------


def test_errors() -> None:
    with pytest.raises(ValueError, match="2 outputs"):
        CYBORGLoss(nn.Linear(4, 3))
    with pytest.raises(TypeError, match="classifier"):
        ContrastSalienceLoss(nn.Conv2d(4, 2, 1))
    with pytest.raises(ValueError, match="alpha"):
        DifferenceSalienceLoss(_head(WEIGHT), alpha=1.5)
    with pytest.raises(ValueError, match="lambdas"):
        PerClassSalienceLoss(_head(WEIGHT), lambdas=(0.5, 0.5))
    with pytest.raises(ValueError, match="lambdas"):
        ContrastSalienceLoss(_head(WEIGHT), lambdas=(1, -1, 1))
    criterion = CYBORGLoss(_head(WEIGHT))
    with pytest.raises(ValueError, match="labels"):
        criterion(LOGITS, FEATURES, torch.tensor([0, 2]), HUMAN)
    with pytest.raises(ValueError, match="labels"):
        criterion(LOGITS, FEATURES, torch.tensor([0.5, 1.0]), HUMAN)
    with pytest.raises(ValueError, match="labels"):
        criterion(LOGITS, FEATURES, torch.tensor([0]), HUMAN)
    with pytest.raises(ValueError, match="human_maps"):
        criterion(LOGITS, FEATURES, LABELS, HUMAN[:1])
    with pytest.raises(ValueError, match="human_maps"):
        criterion(LOGITS, FEATURES, LABELS, HUMAN.unsqueeze(1).expand(2, 2, 1, 3))
    with pytest.raises(ValueError, match="logits"):
        criterion(LOGITS[:, :1], FEATURES, LABELS, HUMAN)
    with pytest.raises(ValueError, match="features"):
        criterion(LOGITS, FEATURES[:1], LABELS, HUMAN)
    with pytest.raises(ValueError, match="weight"):
        criterion(LOGITS, FEATURES[:, :1], LABELS, HUMAN)
