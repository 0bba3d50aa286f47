"""DifferenceSalience: CAM difference on a GAP + linear head, Captum agreement, binary forms."""

from __future__ import annotations

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn
from torchvision.models import resnet18

from captum_contrast.methods.difference_salience import DifferenceSalience, difference_score_weights
from captum_contrast.normalization import normalize
from tests.helpers import LinearHead, TwoConvNet, assert_untouched, model_snapshot


def _features_and_cams(model: TwoConvNet, images: Tensor) -> tuple[Tensor, Tensor]:
    """The layer activations and the CAM of every class, ``(B, C, h, w)``, computed directly."""
    with torch.no_grad():
        features = model.relu2(model.conv2(model.relu1(model.conv1(images))))
    return features, torch.einsum("ck,bkhw->bchw", model.fc.weight, features)


@pytest.fixture(scope="module")
def binary_cnn() -> TwoConvNet:
    torch.manual_seed(0)
    return TwoConvNet(num_classes=2, inplace=False).eval()


def test_equals_cam_difference_on_gap_head(binary_cnn: TwoConvNet) -> None:
    torch.manual_seed(1)
    images = torch.rand(4, 3, 8, 8)
    labels = torch.tensor([0, 1, 1, 0])
    attr = DifferenceSalience(binary_cnn, binary_cnn.relu2).attribute(images, target=labels)
    _, cams = _features_and_cams(binary_cnn, images)
    rows = torch.arange(4)
    expected = (cams[rows, labels] - cams[rows, 1 - labels]).unsqueeze(1) / 64
    assert (expected < 0).any() and (expected > 0).any(), "the test needs a signed map"
    torch.testing.assert_close(attr, expected, atol=1e-6, rtol=1e-4)
    # The paper's Difference Salience N(t - f) is the range-normalised map.
    torch.testing.assert_close(normalize(attr, "range"), normalize(expected * 64, "range"))


def test_target_none_is_prediction(binary_cnn: TwoConvNet) -> None:
    torch.manual_seed(2)
    images = torch.rand(6, 3, 8, 8)
    salience = DifferenceSalience(binary_cnn, binary_cnn.relu2)
    predicted = binary_cnn(images).argmax(dim=1)
    torch.testing.assert_close(
        salience.attribute(images), salience.attribute(images, target=predicted)
    )
    flipped = salience.attribute(images, target=1 - predicted)
    torch.testing.assert_close(flipped, -salience.attribute(images))


@pytest.fixture(scope="module")
def resnet_binary() -> nn.Module:
    torch.manual_seed(3)
    return resnet18(weights=None, num_classes=2).eval()


def test_equals_difference_of_captum_grad_cams(resnet_binary: nn.Module) -> None:
    torch.manual_seed(4)
    images = torch.rand(2, 3, 64, 64)
    targets = torch.tensor([1, 0])
    ours = DifferenceSalience(resnet_binary, resnet_binary.layer4).attribute(images, target=targets)
    grad_cam = LayerGradCam(resnet_binary, resnet_binary.layer4)
    expected = grad_cam.attribute(images, target=targets) - grad_cam.attribute(
        images, target=1 - targets
    )
    assert expected.abs().max() > 0
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-4)
    relu = DifferenceSalience(resnet_binary, resnet_binary.layer4).attribute(
        images, target=targets, relu_attributions=True
    )
    torch.testing.assert_close(relu, expected.clamp(min=0), atol=1e-6, rtol=1e-4)


def test_pairwise_difference_on_multiclass_model() -> None:
    torch.manual_seed(5)
    model = resnet18(weights=None, num_classes=10).eval()
    images = torch.rand(2, 3, 32, 32)
    ours = DifferenceSalience(model, model.layer4).attribute(images, target=[2, 7], contrast=[5, 1])
    grad_cam = LayerGradCam(model, model.layer4)
    expected = grad_cam.attribute(images, target=[2, 7]) - grad_cam.attribute(images, target=[5, 1])
    torch.testing.assert_close(ours, expected, atol=1e-6, rtol=1e-4)


class SingleLogit(nn.Module):
    """The binary CNN's logit difference as one output: z = S_1 - S_0."""

    def __init__(self, binary: TwoConvNet) -> None:
        super().__init__()
        self.binary = binary

    def forward(self, x: Tensor) -> Tensor:
        logits = self.binary(x)
        return logits[:, 1:] - logits[:, :1]


def test_single_logit_model(binary_cnn: TwoConvNet) -> None:
    torch.manual_seed(6)
    images = torch.rand(4, 3, 8, 8)
    model = SingleLogit(binary_cnn).eval()
    salience = DifferenceSalience(model, binary_cnn.relu2)
    map_of_z = LayerGradCam(model, binary_cnn.relu2).attribute(images, target=0)
    torch.testing.assert_close(salience.attribute(images, target=1), map_of_z)
    torch.testing.assert_close(salience.attribute(images, target=0), -map_of_z)
    # z = S_1 - S_0, so the single logit agrees with the two-output model.
    two_outputs = DifferenceSalience(binary_cnn, binary_cnn.relu2)
    targets = torch.tensor([0, 1, 1, 0])
    torch.testing.assert_close(
        salience.attribute(images, target=targets), two_outputs.attribute(images, target=targets)
    )
    # target None: class 1 where z > 0.
    predicted = (model(images)[:, 0] > 0).long()
    torch.testing.assert_close(
        salience.attribute(images), salience.attribute(images, target=predicted)
    )


def test_score_weights_by_hand() -> None:
    outputs = torch.tensor([[0.3, -1.0], [2.0, 5.0]])
    torch.testing.assert_close(
        difference_score_weights(outputs, None, None), torch.tensor([[1.0, -1.0], [-1.0, 1.0]])
    )
    logit = torch.tensor([[-0.5], [0.5], [2.0]])
    torch.testing.assert_close(
        difference_score_weights(logit, None, None), torch.tensor([[-1.0], [1.0], [1.0]])
    )
    torch.testing.assert_close(
        difference_score_weights(logit, [1, 1, 0], [0, 0, 1]), torch.tensor([[1.0], [1.0], [-1.0]])
    )
    three = torch.zeros(1, 3)
    torch.testing.assert_close(
        difference_score_weights(three, 2, 0), torch.tensor([[-1.0, 0.0, 1.0]])
    )


def test_spatial_weights_by_hand() -> None:
    # Score gradients [[1, 3]] and [[2, -1]] per position: w = mean(g_t - g_f) = (-1 + 4) / 2.
    weight = torch.tensor([[[[1.0, 3.0]]], [[[2.0, -1.0]]]])
    model = LinearHead(weight).eval()
    # (1, 1, 1, 2) on a 1x2 input fits channels-last too, and an Identity says nothing.
    salience = DifferenceSalience(model, model.layer, reshape_transform=lambda maps: maps)
    attr, channel_weights = salience.attribute(
        torch.tensor([[[[2.0, -4.0]]]]), target=0, return_weights=True
    )
    torch.testing.assert_close(channel_weights, torch.tensor([[1.5]]))
    torch.testing.assert_close(attr, torch.tensor([[[[3.0, -6.0]]]]))


def test_leaves_model_untouched() -> None:
    torch.manual_seed(7)
    model = TwoConvNet(num_classes=2, inplace=False).train()
    model.fc.bias.requires_grad_(False)
    before = model_snapshot(model)
    DifferenceSalience(model, model.relu2).attribute(torch.rand(2, 3, 8, 8), target=[0, 1])
    assert_untouched(before, model)


def test_bad_inputs_raise(binary_cnn: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    torch.manual_seed(8)
    multiclass = TwoConvNet(num_classes=5).eval()
    with pytest.raises(ValueError, match="`contrast`"):
        DifferenceSalience(multiclass, multiclass.relu2).attribute(images, target=1)
    with pytest.raises(ValueError, match="`contrast`"):
        DifferenceSalience(multiclass, multiclass.relu2).attribute(images, target=1, contrast=1)
    salience = DifferenceSalience(binary_cnn, binary_cnn.relu2)
    with pytest.raises(ValueError, match="`target`"):
        salience.attribute(images, target=2)
    with pytest.raises(ValueError, match="`contrast`"):
        salience.attribute(images, target=[0, 1], contrast=[0, 0])
    with pytest.raises(ValueError, match="`target`"):
        salience.attribute(images, target=[0, 1, 1])
    single = DifferenceSalience(SingleLogit(binary_cnn), binary_cnn.relu2)
    with pytest.raises(ValueError, match="single-logit"):
        single.attribute(images, target=2)
    with pytest.raises(ValueError, match="`contrast`"):
        single.attribute(images, target=1, contrast=1)
    with pytest.raises(TypeError, match="`target`"):
        single.attribute(images, target=0.5)


def test_runner_up_contrast_is_taken_from_the_same_forward() -> None:
    torch.manual_seed(0)
    model = resnet18(weights=None, num_classes=5).eval()
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        outputs = model(images)
    targets = torch.tensor([0, 2, 4])
    runner_up = outputs.scatter(1, targets[:, None], float("-inf")).argmax(dim=1)
    salience = DifferenceSalience(model, model.layer4)
    expected = salience.attribute(images, target=targets, contrast=runner_up)
    torch.testing.assert_close(
        salience.attribute(images, target=targets, contrast="runner-up"), expected
    )
    with pytest.raises(ValueError, match="runner-up"):
        salience.attribute(images, target=targets, contrast="second")
