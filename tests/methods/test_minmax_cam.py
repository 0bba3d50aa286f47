"""MinMaxCAM: SPEC 5 vectors, gradient form against CAM form, agreement with Captum Grad-CAM."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_contrast.methods.minmax_cam import MinMaxCAM, minmax_score_weights, minmax_weights
from tests.helpers import LinearHead, TwoConvNet, assert_untouched, model_snapshot

# SPEC 5, MinMax: W in the paper's K x L (Keras) layout, sigmoid probabilities p.
W_KERAS = torch.tensor([[1.0, -0.5, 0.2], [0.3, 0.8, -0.4], [-0.2, 0.1, 0.9], [0.5, 0.5, 0.5]])
PROBS = torch.tensor([0.9, 0.7, 0.2])
MINMAX_ALPHA = torch.tensor(
    [[1.5, -1.5, -0.3], [-0.5, 0.5, -1.5], [-0.3, 0.3, 1.0], [0.0, 0.0, -0.5]]
)
D_MINMAX_ALPHA = torch.tensor(
    [[1.0, -1.0, -0.3], [-0.5, 0.5, -1.1], [-0.15, 0.05, 0.85], [0.0, 0.0, -0.5]]
)
# Channel k is 1 at position k of a 2x2 grid and 0 elsewhere, so the map reads out alpha_k.
ONE_HOT_ACTIVATIONS = torch.eye(4).reshape(1, 4, 2, 2)
HW = 4


class GapLinear(nn.Module):
    """``layer`` (identity on its input) -> global average pool -> ``fc``."""

    def __init__(self, class_weights: Tensor, bias: Tensor) -> None:
        super().__init__()
        self.layer = nn.Identity()
        self.fc = nn.Linear(class_weights.shape[1], class_weights.shape[0])
        with torch.no_grad():
            self.fc.weight.copy_(class_weights)
            self.fc.bias.copy_(bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.layer(x).mean(dim=(2, 3)))


def spec_model(probs: Tensor) -> GapLinear:
    """The SPEC weights, with the bias set so that sigmoid(output) = probs on the one-hot input."""
    class_weights = W_KERAS.T
    pooled = ONE_HOT_ACTIVATIONS.mean(dim=(2, 3))[0]
    bias = torch.logit(probs) - class_weights @ pooled
    return GapLinear(class_weights, bias).eval()


@pytest.mark.parametrize(
    "variant, expected", [("minmax", MINMAX_ALPHA), ("d-minmax", D_MINMAX_ALPHA)]
)
def test_spec_vectors_pure_function(variant: str, expected: Tensor) -> None:
    labels = torch.tensor([[True, True, False]]).expand(3, 3)
    alpha = minmax_weights(W_KERAS.T, labels, torch.arange(3), variant)
    torch.testing.assert_close(alpha, expected.T)


@pytest.mark.parametrize(
    "variant, expected", [("minmax", MINMAX_ALPHA), ("d-minmax", D_MINMAX_ALPHA)]
)
@pytest.mark.parametrize("cam_form", [False, True])
def test_spec_vectors_through_model(variant: str, expected: Tensor, cam_form: bool) -> None:
    model = spec_model(PROBS)
    cam = MinMaxCAM(model, model.layer, classifier=model.fc if cam_form else None)
    scale = 1.0 if cam_form else 1.0 / HW
    for label in range(3):  # label 2 is not detected: the whole of C = {0, 1} is subtracted
        attr, alpha = cam.attribute(
            ONE_HOT_ACTIVATIONS,
            target=label,
            variant=variant,
            relu_attributions=False,
            return_weights=True,
        )
        torch.testing.assert_close(attr.flatten(), expected[:, label] * scale)
        torch.testing.assert_close(alpha[0], expected[:, label] * scale)
        relu_attr = cam.attribute(ONE_HOT_ACTIVATIONS, target=label, variant=variant)
        torch.testing.assert_close(relu_attr.flatten(), expected[:, label].clamp(min=0) * scale)


@pytest.mark.parametrize("variant", ["minmax", "d-minmax"])
def test_explicit_labels_match_detections(variant: str) -> None:
    model = spec_model(PROBS)
    cam = MinMaxCAM(model, model.layer)
    detected = cam.attribute(ONE_HOT_ACTIVATIONS, target=2, variant=variant)
    given = cam.attribute(
        ONE_HOT_ACTIVATIONS, target=2, labels=torch.tensor([[1, 1, 0]]), variant=variant
    )
    torch.testing.assert_close(detected, given)
    # A lower threshold adds label 2 to C, which changes label 0's map.
    lowered = cam.attribute(
        ONE_HOT_ACTIVATIONS, target=0, threshold=0.1, variant=variant, relu_attributions=False
    )
    all_three = torch.tensor([[True, True, True]])
    expected = minmax_weights(W_KERAS.T, all_three, torch.tensor([0]), variant) / HW
    torch.testing.assert_close(lowered.flatten(), expected[0])


@pytest.mark.parametrize("variant", ["minmax", "d-minmax"])
@pytest.mark.parametrize("cam_form", [False, True])
def test_single_detection_is_cam(variant: str, cam_form: bool) -> None:
    model = spec_model(torch.tensor([0.2, 0.9, 0.3]))
    cam = MinMaxCAM(model, model.layer, classifier=model.fc if cam_form else None)
    attr = cam.attribute(ONE_HOT_ACTIVATIONS, variant=variant, relu_attributions=False)  # target: 1
    scale = 1.0 if cam_form else 1.0 / HW
    torch.testing.assert_close(attr.flatten(), W_KERAS[:, 1] * scale)


@pytest.mark.parametrize(
    "variant, expected", [("minmax", W_KERAS[:, 0]), ("d-minmax", W_KERAS[:, 0].relu())]
)
def test_no_detection(variant: str, expected: Tensor) -> None:
    model = spec_model(torch.tensor([0.4, 0.3, 0.1]))
    cam = MinMaxCAM(model, model.layer, classifier=model.fc)
    # No label is detected; target None falls back to the highest-scoring label, 0.
    attr = cam.attribute(ONE_HOT_ACTIVATIONS, variant=variant, relu_attributions=False)
    torch.testing.assert_close(attr.flatten(), expected)


@pytest.fixture(scope="module")
def multilabel_cnn() -> TwoConvNet:
    torch.manual_seed(1)
    return TwoConvNet(num_classes=8, channels=6).eval()


def _label_sets(counts: list[int], num_labels: int) -> Tensor:
    generator = torch.Generator().manual_seed(2)
    labels = torch.zeros(len(counts), num_labels, dtype=torch.bool)
    for row, count in enumerate(counts):
        labels[row, torch.randperm(num_labels, generator=generator)[:count]] = True
    return labels


@pytest.mark.parametrize("variant", ["minmax", "d-minmax"])
def test_gradient_form_equals_cam_form(multilabel_cnn: TwoConvNet, variant: str) -> None:
    torch.manual_seed(3)
    images = torch.rand(3, 3, 8, 8)
    labels = _label_sets([1, 2, 5], 8)
    grad_cam = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2)
    cam = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2, classifier=multilabel_cnn.fc)
    in_set = labels.float().argmax(dim=1)
    out_of_set = (~labels).float().argmax(dim=1)
    for targets in (in_set, out_of_set):
        kwargs = dict(target=targets, labels=labels, variant=variant, relu_attributions=False)
        gradient_map = grad_cam.attribute(images, **kwargs)
        cam_map = cam.attribute(images, **kwargs)
        assert cam_map.abs().max() > 1e-3
        torch.testing.assert_close(gradient_map, cam_map / 64, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("variant", ["minmax", "d-minmax"])
def test_single_label_equals_captum_grad_cam(multilabel_cnn: TwoConvNet, variant: str) -> None:
    torch.manual_seed(4)
    images = torch.rand(4, 3, 8, 8)
    targets = torch.tensor([0, 3, 5, 7])
    labels = torch.nn.functional.one_hot(targets, 8)
    ours = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2).attribute(
        images, target=targets, labels=labels, variant=variant
    )
    captum = LayerGradCam(multilabel_cnn, multilabel_cnn.relu2).attribute(
        images, target=targets, relu_attributions=True
    )
    assert captum.max() > 0
    torch.testing.assert_close(ours, captum, atol=1e-6, rtol=1e-4)


def test_minmax_is_grad_cam_of_j_on_spatial_head() -> None:
    # A head whose gradient varies by position: MinMax-Grad is Grad-CAM of the score J.
    torch.manual_seed(5)
    model = LinearHead(torch.randn(4, 3, 2, 2)).eval()
    activations = torch.rand(2, 3, 2, 2)
    labels = torch.tensor([[1, 1, 1, 0], [0, 1, 0, 1]])
    targets = torch.tensor([1, 3])
    scores = minmax_score_weights(labels.bool(), targets)[0]
    j_model = lambda x: (model(x) * scores).sum(dim=1, keepdim=True)  # noqa: E731
    expected = LayerGradCam(j_model, model.layer).attribute(
        activations, target=0, relu_attributions=True
    )
    ours = MinMaxCAM(model, model.layer).attribute(activations, target=targets, labels=labels)
    torch.testing.assert_close(ours, expected)


def test_d_minmax_clamps_per_position() -> None:
    # Gradients that change sign across positions: clamping after the mean would differ.
    weight = torch.zeros(3, 1, 1, 2)
    weight[0, 0, 0] = torch.tensor([2.0, -1.0])  # dS0/dA at the two positions
    weight[1, 0, 0] = torch.tensor([-3.0, 3.0])
    weight[2, 0, 0] = torch.tensor([5.0, 5.0])
    model = LinearHead(weight).eval()
    activations = torch.ones(1, 1, 1, 2)
    labels = torch.tensor([[1, 1, 0]])
    # (1, 1, 1, 2) on a 1x2 input fits channels-last too, and an Identity says nothing.
    cam = MinMaxCAM(model, model.layer, reshape_transform=lambda maps: maps)
    _, alpha = cam.attribute(
        activations, target=0, labels=labels, variant="d-minmax", return_weights=True
    )
    # relu(g0) - relu(g1)/1 + min(0, g0 + g1)/2 per position: [2 - 0 - 0.5, 0 - 3 + 0], mean.
    # Clamping the spatial means instead would give 0.5 - 0 + 0 = 0.5.
    torch.testing.assert_close(alpha, torch.tensor([[-0.75]]))


def test_cost_does_not_grow_with_labels(multilabel_cnn: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    cam = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2)
    calls = []
    handle = multilabel_cnn.conv1.register_forward_hook(lambda *args: calls.append(1))
    try:
        cam.attribute(images, labels=torch.ones(2, 8), variant="d-minmax")
    finally:
        handle.remove()
    assert len(calls) == 1
    assert (
        minmax_score_weights(torch.ones(2, 8, dtype=torch.bool), torch.tensor([0, 1])).shape[0] == 1
    )
    three = minmax_score_weights(
        torch.ones(2, 8, dtype=torch.bool), torch.tensor([0, 1]), "d-minmax"
    )
    assert three.shape == (3, 2, 8)


@pytest.mark.parametrize("cam_form", [False, True])
def test_leaves_model_untouched(cam_form: bool) -> None:
    torch.manual_seed(6)
    model = TwoConvNet(num_classes=8, inplace=False).train()
    model.conv1.weight.requires_grad_(False)
    before = model_snapshot(model)
    cam = MinMaxCAM(model, model.relu2, classifier=model.fc if cam_form else None)
    cam.attribute(torch.rand(2, 3, 8, 8), variant="d-minmax")
    assert_untouched(before, model)


def test_bad_inputs_raise(multilabel_cnn: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    cam = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2)
    with pytest.raises(ValueError, match="`labels`"):
        cam.attribute(images, labels=torch.ones(2, 7))
    with pytest.raises(ValueError, match="`labels`"):
        cam.attribute(images, labels=torch.ones(8))
    with pytest.raises(ValueError, match="0/1"):
        cam.attribute(images, labels=torch.full((2, 8), 0.7))
    with pytest.raises(TypeError, match="`labels`"):
        cam.attribute(images, labels=[[1] * 8, [0] * 8])
    with pytest.raises(ValueError, match="`target`"):
        cam.attribute(images, target=8)
    with pytest.raises(ValueError, match="`target`"):
        cam.attribute(images, target=[1, 2, 3])
    with pytest.raises(ValueError, match="`variant`"):
        cam.attribute(images, variant="dminmax")
    with pytest.raises(ValueError, match="`threshold`"):
        cam.attribute(images, threshold=1.5)
    with pytest.raises(TypeError, match="`classifier`"):
        MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2, classifier=multilabel_cnn.conv1)
    wrong = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2, classifier=torch.zeros(8, 5))
    with pytest.raises(ValueError, match="`classifier`"):
        wrong.attribute(images)


def test_classifier_tensor_weights(multilabel_cnn: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    regularised = multilabel_cnn.fc.weight * torch.softmax(multilabel_cnn.fc.weight, dim=0)
    from_tensor = MinMaxCAM(multilabel_cnn, multilabel_cnn.relu2, classifier=regularised.detach())
    attr, alpha = from_tensor.attribute(
        images, target=[1, 2], labels=torch.ones(2, 8), return_weights=True
    )
    expected = minmax_weights(
        regularised.detach(), torch.ones(2, 8, dtype=torch.bool), torch.tensor([1, 2])
    )
    torch.testing.assert_close(alpha, expected)


def test_target_none_is_best_label_of_the_set() -> None:
    model = spec_model(PROBS)
    cam = MinMaxCAM(model, model.layer)
    labels = torch.tensor([[0, 1, 1]])  # label 0 scores highest but is not in the set
    default = cam.attribute(ONE_HOT_ACTIVATIONS, labels=labels, relu_attributions=False)
    expected = minmax_weights(W_KERAS.T, labels.bool(), torch.tensor([1])) / HW
    torch.testing.assert_close(default.flatten(), expected[0])


class ReweightedLinear(nn.Linear):
    """A head applying ``W * softmax(W)`` (as kernel usage regularisation does), exposed as
    ``effective_weight``."""

    @property
    def effective_weight(self) -> Tensor:
        return self.weight * torch.softmax(self.weight, dim=0)

    def forward(self, inputs: Tensor) -> Tensor:
        return nn.functional.linear(inputs, self.effective_weight, self.bias)


@pytest.mark.parametrize("variant", ["minmax", "d-minmax"])
def test_cam_form_uses_effective_weight(variant: str) -> None:
    torch.manual_seed(7)
    model = TwoConvNet(num_classes=5).eval()
    head = ReweightedLinear(6, 5)
    head.load_state_dict(model.fc.state_dict())
    model.fc = head
    images = torch.rand(2, 3, 8, 8)
    kwargs = dict(target=[0, 4], labels=torch.tensor([[1, 1, 0, 1, 0], [0, 1, 1, 1, 1]]))
    gradient_map = MinMaxCAM(model, model.relu2).attribute(images, variant=variant, **kwargs)
    cam_map = MinMaxCAM(model, model.relu2, classifier=model.fc).attribute(
        images, variant=variant, **kwargs
    )
    assert cam_map.max() > 1e-3
    torch.testing.assert_close(gradient_map, cam_map / 64, atol=1e-6, rtol=1e-4)
