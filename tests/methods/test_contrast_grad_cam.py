"""ContrastGradCAM (CASE): SPEC 5 vectors, agreement with Captum's gradients, properties."""

from __future__ import annotations

import pytest
import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from captum.attr import LayerGradCam
from torchvision.models import resnet18

from captum_contrast import ContrastGradCAM, ContrastSet, confusion_matrix, normalize
from tests.helpers import LinearHead, TwoConvNet, assert_untouched, model_snapshot

# SPEC 5, CASE: gamma_u and two contrast gradients, A_k given as 2x2 maps; class 3 points
# away from class 0 (<gamma_0, gamma_3> = -2), class 4 has no gradient at all.
GAMMAS = torch.tensor(
    [
        [1.0, 2.0, 0.0, -1.0],
        [1.0, 0.0, 1.0, 0.0],
        [0.0, 1.0, 1.0, 0.0],
        [-1.0, 0.0, 1.0, 1.0],
        [0.0, 0.0, 0.0, 0.0],
    ]
)
ACTIVATIONS = torch.tensor(
    [
        [[1.0, 0.0], [0.0, 0.0]],
        [[0.0, 2.0], [1.0, 0.0]],
        [[0.0, 0.0], [0.0, 3.0]],
        [[0.0, 0.0], [1.0, 0.0]],
    ]
).unsqueeze(0)


@pytest.fixture
def spec_model() -> LinearHead:
    # A constant gradient map per channel makes its spatial mean exactly gamma.
    weight = GAMMAS[:, :, None, None].expand(5, 4, 2, 2)
    return LinearHead(weight).eval()


def test_spec_vector_case(spec_model: LinearHead) -> None:
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    attr, weights = cam.attribute(ACTIVATIONS, target=0, contrast=[1, 2], return_weights=True)
    torch.testing.assert_close(weights, torch.tensor([[0.5, 1.5, -1.0, -1.0]]))
    torch.testing.assert_close(attr, torch.tensor([[[[0.5, 3.0], [0.5, 0.0]]]]))
    scaled = normalize(attr, "range")
    torch.testing.assert_close(
        scaled, torch.tensor([[[[1 / 6, 1.0], [1 / 6, 0.0]]]]), atol=1e-4, rtol=0
    )
    grad_cam = LayerGradCam(spec_model, spec_model.layer).attribute(ACTIVATIONS, target=0)
    torch.testing.assert_close(grad_cam, torch.tensor([[[[1.0, 4.0], [1.0, 0.0]]]]))


def test_signed_map_without_relu(spec_model: LinearHead) -> None:
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    attr = cam.attribute(ACTIVATIONS, target=0, contrast=[1, 2], relu_attributions=False)
    torch.testing.assert_close(attr, torch.tensor([[[[0.5, 3.0], [0.5, -3.0]]]]))


def test_shared_projection_by_hand(spec_model: LinearHead) -> None:
    # Example 0 vs class 1: c = <(1,2,0,-1), (1,0,1,0)> / 2 = 1/2 > 0, so "shared" is the
    # paper: gamma_perp = (1/2, 2, -1/2, -1). Example 1 vs class 3: c = -2/3 < 0, so the
    # paper adds class 3: gamma_perp = (1/3, 2, 2/3, -1/3), and "shared" keeps Grad-CAM's.
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    images, contrast = ACTIVATIONS.expand(2, 4, 2, 2), torch.tensor([[1], [3]])
    full, full_weights = cam.attribute(images, target=0, contrast=contrast, return_weights=True)
    shared, shared_weights = cam.attribute(
        images, target=0, contrast=contrast, return_weights=True, projection="shared"
    )
    paper = torch.tensor([[0.5, 2.0, -0.5, -1.0], [1 / 3, 2.0, 2 / 3, -1 / 3]])
    torch.testing.assert_close(full_weights, paper)
    torch.testing.assert_close(shared_weights, torch.stack([paper[0], GAMMAS[0]]))
    # Maps: sum_k w_k A_k, ReLU'd. Example 0: (1/2, 4, 1, -1/2) -> ReLU.
    torch.testing.assert_close(full[0, 0], torch.tensor([[0.5, 4.0], [1.0, 0.0]]))
    torch.testing.assert_close(full[1, 0], torch.tensor([[1 / 3, 4.0], [5 / 3, 2.0]]))
    torch.testing.assert_close(shared[0], full[0])
    grad_cam = LayerGradCam(spec_model, spec_model.layer).attribute(
        ACTIVATIONS, target=0, relu_attributions=True
    )
    torch.testing.assert_close(shared[1:], grad_cam, rtol=0, atol=0)
    torch.testing.assert_close(grad_cam[0, 0], torch.tensor([[1.0, 4.0], [1.0, 0.0]]))


def test_shared_clamps_the_contrast_sets_mean(spec_model: LinearHead) -> None:
    # Against class 1 alone c > 0, but the set {1, 3} has gamma_bar = (0, 0, 1, 1/2) and
    # c = -1/2 / (5/4) = -2/5: the clamp acts on the set's mean gradient, as the projection.
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    full, weights = cam.attribute(ACTIVATIONS, target=0, contrast=[1, 3], return_weights=True)
    torch.testing.assert_close(weights, torch.tensor([[1.0, 2.0, 0.4, -0.8]]))
    torch.testing.assert_close(full, torch.tensor([[[[1.0, 4.0], [1.2, 1.2]]]]))
    shared = cam.attribute(ACTIVATIONS, target=0, contrast=[1, 3], projection="shared")
    torch.testing.assert_close(shared, torch.tensor([[[[1.0, 4.0], [1.0, 0.0]]]]))


def test_cosine_by_hand(spec_model: LinearHead) -> None:
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    images = ACTIVATIONS.expand(3, 4, 2, 2)
    cosine = cam.cosine(images, target=0, contrast=torch.tensor([[1, 2], [3, 4], [1, 4]]))
    # gamma_bar = (1/2, 1/2, 1, 0), (-1/2, 0, 1/2, 1/2), (1/2, 0, 1/2, 0); |gamma_u| = sqrt(6):
    # cos = 1.5 / (sqrt(6) sqrt(1.5)) = 1/2, -1 / (sqrt(6) sqrt(3/4)), 1/2 / (sqrt(6) sqrt(1/2)).
    expected = torch.tensor([0.5, -(2.0**0.5) / 3, 12.0**-0.5])
    torch.testing.assert_close(cosine, expected)


def test_zero_contrast_gradient(spec_model: LinearHead) -> None:
    cam = ContrastGradCAM(spec_model, spec_model.layer)
    with pytest.warns(RuntimeWarning, match=r"undefined for examples \[0\]"):
        cosine = cam.cosine(ACTIVATIONS, target=0, contrast=[4])
    assert torch.isnan(cosine).all()
    # Nothing to project out: both projections are Grad-CAM, with no NaN.
    grad_cam = LayerGradCam(spec_model, spec_model.layer).attribute(
        ACTIVATIONS, target=0, relu_attributions=True
    )
    for projection in ("full", "shared"):
        attr = cam.attribute(ACTIVATIONS, target=0, contrast=[4], projection=projection)
        torch.testing.assert_close(attr, grad_cam)


def _captum_gammas(model, layer, images, target, contrasts) -> tuple[torch.Tensor, ...]:
    """``(gamma_u, gamma_bar, activations)`` from Captum's layer gradients, one class at a time."""
    gammas = []
    for classes in [target] + [contrasts[:, i] for i in range(contrasts.shape[1])]:
        (grads,), (acts,) = compute_layer_gradients_and_eval(model, layer, (images,), classes)
        gammas.append(grads.mean(dim=(2, 3)))
    return gammas[0], torch.stack(gammas[1:]).mean(0), acts


def _captum_case(
    model, layer, images, target, contrasts, shared: bool = False
) -> tuple[torch.Tensor, torch.Tensor]:
    """CASE computed independently from Captum's layer gradients (the pre-"shared" formula)."""
    gamma_u, gamma_bar, acts = _captum_gammas(model, layer, images, target, contrasts)
    coefficient = (gamma_u * gamma_bar).sum(1, keepdim=True) / (
        gamma_bar.pow(2).sum(1, keepdim=True) + 1e-8
    )
    if shared:
        coefficient = coefficient.clamp(min=0)
    perp = gamma_u - coefficient * gamma_bar
    return torch.relu((perp[:, :, None, None] * acts).sum(1, keepdim=True)), gamma_bar


@pytest.fixture(scope="module")
def resnet() -> torch.nn.Module:
    torch.manual_seed(0)
    return resnet18(weights=None, num_classes=10).eval()


def test_matches_captum_gradients_on_resnet18(resnet: torch.nn.Module) -> None:
    torch.manual_seed(1)
    images = torch.rand(3, 3, 64, 64)
    with torch.no_grad():
        ranking = resnet(images).argsort(dim=1, descending=True)
    target, contrasts = ranking[:, 0], ranking[:, 1:4]
    expected, gamma_bar = _captum_case(resnet, resnet.layer4, images, target, contrasts)

    cam = ContrastGradCAM(resnet, resnet.layer4)
    attr, weights = cam.attribute(images, k=3, return_weights=True)  # defaults: top-1 vs next 3
    torch.testing.assert_close(attr, expected, rtol=1e-4, atol=1e-6)
    # The defining property: the projected weights carry nothing along gamma_bar.
    cosine = torch.nn.functional.cosine_similarity(weights, gamma_bar, dim=1)
    assert cosine.abs().max() < 1e-4
    explicit = cam.attribute(images, target=target, contrast=contrasts)
    torch.testing.assert_close(explicit, attr)


def test_projections_and_cosine_on_resnet18(resnet: torch.nn.Module) -> None:
    torch.manual_seed(2)
    images = torch.rand(6, 3, 64, 64)
    target, contrasts = (
        torch.tensor([0, 1, 2, 3, 4, 5]),
        torch.tensor([[9], [8], [7], [6], [5], [4]]),
    )
    gamma_u, gamma_bar, _ = _captum_gammas(resnet, resnet.layer4, images, target, contrasts)
    cam = ContrastGradCAM(resnet, resnet.layer4)
    calls = []
    handle = resnet.register_forward_hook(lambda *_: calls.append(1))
    try:
        cosine = cam.cosine(images, target=target, contrast=contrasts)
        shared = cam.attribute(images, target=target, contrast=contrasts, projection="shared")
    finally:
        handle.remove()
    assert len(calls) == 2  # one forward each
    expected_cosine = torch.nn.functional.cosine_similarity(gamma_u, gamma_bar, dim=1)
    torch.testing.assert_close(cosine, expected_cosine, rtol=1e-4, atol=1e-5)
    assert 0 < int((cosine < 0).sum()) < 6, "the draw must hold both signs of c"
    expected, _ = _captum_case(resnet, resnet.layer4, images, target, contrasts, shared=True)
    torch.testing.assert_close(shared, expected, rtol=1e-4, atol=1e-6)
    # Where c < 0, "shared" is Grad-CAM; "full" (the default, unchanged) is the paper's map.
    grad_cam = LayerGradCam(resnet, resnet.layer4).attribute(
        images, target=target, relu_attributions=True
    )
    negative = cosine < 0
    torch.testing.assert_close(shared[negative], grad_cam[negative], rtol=1e-4, atol=1e-6)
    full = cam.attribute(images, target=target, contrast=contrasts, projection="full")
    paper, _ = _captum_case(resnet, resnet.layer4, images, target, contrasts)
    torch.testing.assert_close(full, paper, rtol=1e-4, atol=1e-6)
    default = cam.attribute(images, target=target, contrast=contrasts)
    torch.testing.assert_close(default, full, rtol=0, atol=0)
    torch.testing.assert_close(shared[~negative], full[~negative], rtol=0, atol=0)


def test_contrast_set_and_constant_contrast_agree(resnet: torch.nn.Module) -> None:
    images = torch.rand(2, 3, 64, 64)
    confusion = torch.eye(10, dtype=torch.long) * 5
    confusion[4, 7] = 3
    confusion[2, 7] = 1
    confusion[2, 1] = 2
    contrast_set = ContrastSet.from_confusion_matrix(confusion, k=1)
    cam = ContrastGradCAM(resnet, resnet.layer4)
    via_set = cam.attribute(images, target=[4, 2], contrast=contrast_set)
    via_tensor = cam.attribute(images, target=[4, 2], contrast=torch.tensor([[7], [1]]))
    torch.testing.assert_close(via_set, via_tensor)


def test_examples_do_not_depend_on_the_batch(resnet: torch.nn.Module) -> None:
    images = torch.rand(4, 3, 64, 64)
    cam = ContrastGradCAM(resnet, resnet.layer4)
    batched = cam.attribute(images, target=[1, 2, 3, 4], k=2)
    for index in range(4):
        alone = cam.attribute(images[index : index + 1], target=index + 1, k=2)
        torch.testing.assert_close(batched[index : index + 1], alone, rtol=1e-4, atol=1e-6)


def test_leaves_the_model_untouched() -> None:
    torch.manual_seed(0)
    model = TwoConvNet()
    model.train()
    model.conv1.weight.requires_grad_(False)
    before = model_snapshot(model)
    ContrastGradCAM(model, model.conv2).attribute(torch.rand(2, 3, 8, 8), k=2)
    assert_untouched(before, model)


def test_under_no_grad_and_with_inplace_relu(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    cam = ContrastGradCAM(two_conv_net, two_conv_net.conv2)  # relu2 (inplace) runs right after
    expected, _ = _captum_case(
        two_conv_net, two_conv_net.conv2, images, torch.tensor([0, 1]), torch.tensor([[2], [3]])
    )
    with torch.no_grad():
        attr = cam.attribute(images, target=[0, 1], contrast=torch.tensor([[2], [3]]))
    torch.testing.assert_close(attr, expected, rtol=1e-4, atol=1e-6)


def test_confusion_matrix_and_contrast_set() -> None:
    class Lookup(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.one_hot(x[:, 0].long(), 3).float()

    predicted = torch.tensor([0, 1, 1, 2, 1, 2, 0, 2])
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 2, 2])
    loader = [(predicted[:4, None].float(), labels[:4]), (predicted[4:, None].float(), labels[4:])]
    matrix = confusion_matrix(Lookup(), loader, num_classes=3)
    assert matrix.tolist() == [[1, 1, 0], [0, 1, 1], [1, 1, 2]]
    contrast_set = ContrastSet.from_confusion_matrix(matrix, k=1)
    # Row 2 ties classes 0 and 1; the reference argsort order picks the higher index.
    assert contrast_set.contrast_classes.flatten().tolist() == [1, 2, 1]
    # A class with no confusions still gets other classes, never itself.
    assert ContrastSet.from_confusion_matrix(torch.eye(3), k=2)(torch.tensor([1])).tolist() == [
        [2, 0]
    ]


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"target": 10}, ValueError, "target"),
        ({"target": [1, 2, 3]}, ValueError, "one class per example"),
        ({"target": [1, 2], "contrast": [2]}, ValueError, "contains the target"),
        ({"target": 0, "contrast": [11]}, ValueError, "contrast"),
        ({"k": 10}, ValueError, "`k`"),
        ({"k": 0}, ValueError, "`k`"),
        ({"target": 1.5}, TypeError, "target"),
        ({"target": 0, "contrast": torch.tensor([[1], [2], [3]])}, ValueError, "contrast"),
        ({"projection": "half"}, ValueError, r"`projection` must be one of \('full', 'shared'\)"),
        ({"projection": None}, ValueError, "`projection`"),
    ],
)
def test_bad_arguments(resnet: torch.nn.Module, kwargs: dict, error: type, message: str) -> None:
    cam = ContrastGradCAM(resnet, resnet.layer4)
    with pytest.raises(error, match=message):
        cam.attribute(torch.rand(2, 3, 32, 32), **kwargs)


def test_bad_layer_and_inputs(resnet: torch.nn.Module, two_conv_net: TwoConvNet) -> None:
    with pytest.raises(ValueError, match="not a submodule"):
        ContrastGradCAM(resnet, two_conv_net.conv1)
    # A plain function cannot be searched for the layer; the hook that never fires is caught.
    cam = ContrastGradCAM(lambda x: resnet(x), two_conv_net.conv1)
    with pytest.raises(ValueError, match="not called"):
        cam.attribute(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match="called 2 times"):
        ContrastGradCAM(resnet, resnet.layer4[0].relu).attribute(torch.rand(1, 3, 32, 32))
    with pytest.raises(ValueError, match=r"shape \(1, 10\) out as maps"):
        ContrastGradCAM(resnet, resnet.fc).attribute(torch.rand(1, 3, 32, 32))
    nan_images = torch.rand(1, 3, 32, 32)
    nan_images[0, 0, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        ContrastGradCAM(resnet, resnet.layer4).attribute(nan_images)
