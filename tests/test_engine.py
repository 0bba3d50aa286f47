"""The engine: one forward, one batched backward, Captum's input forms, no trace left."""

from __future__ import annotations

import gc
import tracemalloc

import pytest
import torch
from captum._utils.gradient import compute_layer_gradients_and_eval
from torch import Tensor, nn
from torchvision.models import vit_b_16

from captum_contrast import ContrastGradCAM, vit_reshape_transform
from captum_contrast._engine import LayerForward, forward_layer
from tests.helpers import TwoConvNet, assert_untouched, model_snapshot


def layer_gradients(model, layer, inputs, weights, **kwargs) -> tuple[LayerForward, Tensor]:
    forward = forward_layer(model, layer, inputs, **kwargs)
    return forward, forward.gradients(weights)


def _captum_layer(model, layer, inputs, target, **kwargs) -> tuple[Tensor, Tensor]:
    (grads,), (acts,) = compute_layer_gradients_and_eval(model, layer, inputs, target, **kwargs)
    return grads, acts


def test_batched_scores_match_captum_one_by_one(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(3, 3, 8, 8)
    weights = torch.randn(4, 3, 5)  # four arbitrary linear scores per example
    _, gradients = layer_gradients(two_conv_net, two_conv_net.conv2, images, weights)
    assert gradients.shape == (4, 3, 6, 8, 8)
    for t in range(5):  # one-hot scores against Captum's own layer gradients
        one_hot = torch.nn.functional.one_hot(torch.full((3,), t), 5).float()[None]
        single, single_gradients = layer_gradients(
            two_conv_net, two_conv_net.conv2, images, one_hot
        )
        grads, acts = _captum_layer(two_conv_net, two_conv_net.conv2, (images,), t)
        torch.testing.assert_close(single_gradients[0], grads)
        torch.testing.assert_close(single.activations, acts)
    # Linearity: the gradient of a weighted score is the weighted sum of one-hot gradients.
    per_class = torch.stack(
        [_captum_layer(two_conv_net, two_conv_net.conv2, (images,), c)[0] for c in range(5)]
    )
    expected = torch.einsum("tbc,cbkhw->tbkhw", weights, per_class)
    torch.testing.assert_close(gradients, expected, rtol=1e-4, atol=1e-6)


def test_scores_chosen_from_the_outputs_cost_no_second_forward(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    forwards = []
    handle = two_conv_net.register_forward_hook(lambda *args: forwards.append(1))
    try:
        forward = forward_layer(two_conv_net, two_conv_net.conv2, images)
        top_class = forward.outputs.argmax(1)  # the method's plain code, between the passes
        gradients = forward.gradients(torch.nn.functional.one_hot(top_class, 5).float()[None])
    finally:
        handle.remove()
    assert len(forwards) == 1
    torch.testing.assert_close(forward.outputs, two_conv_net(images))
    grads, _ = _captum_layer(two_conv_net, two_conv_net.conv2, (images,), top_class)
    torch.testing.assert_close(gradients[0], grads)


def test_gradients_only_when_the_graph_was_kept(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    kept = forward_layer(two_conv_net, two_conv_net.conv2, images)
    light = forward_layer(two_conv_net, two_conv_net.conv2, images, keep_graph=False)
    torch.testing.assert_close(light.activations, kept.activations)
    torch.testing.assert_close(light.outputs, kept.outputs)
    with pytest.raises(RuntimeError, match="keep_graph=False"):
        light.gradients(torch.ones(1, 2, 5))
    kept.gradients(torch.ones(1, 2, 5))
    with pytest.raises(RuntimeError, match="no gradients"):
        kept.gradients(torch.ones(1, 2, 5))  # the graph was freed by the first call


class TwoInputModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: Tensor, y: Tensor, scale: float) -> Tensor:
        features = torch.relu(self.conv(x + y)) * scale
        return self.fc(features.mean(dim=(2, 3)))


def test_tuple_inputs_additional_args_and_layer_input() -> None:
    torch.manual_seed(0)
    model = TwoInputModel().eval()
    x, y = torch.rand(2, 3, 6, 6), torch.rand(2, 3, 6, 6)
    one_hot = torch.nn.functional.one_hot(torch.tensor([0, 2]), 3).float()[None]
    for to_input in (False, True):
        result, gradients = layer_gradients(
            model,
            model.conv,
            (x, y),
            one_hot,
            additional_forward_args=(2.0,),
            attribute_to_layer_input=to_input,
        )
        grads, acts = _captum_layer(
            model,
            model.conv,
            (x, y),
            torch.tensor([0, 2]),
            additional_forward_args=(2.0,),
            attribute_to_layer_input=to_input,
        )
        torch.testing.assert_close(gradients[0], grads)
        torch.testing.assert_close(result.activations, acts)


def test_vit_through_reshape_transform() -> None:
    torch.manual_seed(0)
    model = vit_b_16(weights=None, image_size=32, num_classes=4).eval()
    layer = model.encoder.layers[-1].ln_1
    images = torch.rand(2, 3, 32, 32)
    result, gradients = layer_gradients(
        model, layer, images, torch.eye(4)[[1, 3]][None], reshape_transform=vit_reshape_transform
    )
    grads, acts = _captum_layer(model, layer, (images,), torch.tensor([1, 3]))
    # 32 px with 16 px patches: a 2x2 grid of 768-d tokens, the class token dropped.
    assert result.activations.shape == (2, 768, 2, 2)
    torch.testing.assert_close(result.activations, vit_reshape_transform(acts))
    torch.testing.assert_close(gradients[0], vit_reshape_transform(grads))
    attr = ContrastGradCAM(model, layer, reshape_transform=vit_reshape_transform).attribute(images)
    assert attr.shape == (2, 1, 2, 2) and torch.isfinite(attr).all()
    with pytest.raises(ValueError, match="reshape_transform"):
        ContrastGradCAM(model, layer).attribute(images)


def test_nothing_is_kept_between_calls(two_conv_net: TwoConvNet) -> None:
    cam = ContrastGradCAM(two_conv_net, two_conv_net.conv2)
    attributes_before = set(vars(cam))
    before = model_snapshot(two_conv_net)
    images = torch.rand(2, 3, 8, 8)
    for _ in range(20):
        cam.attribute(images, k=2)
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(30):
            cam.attribute(images, k=2)
        gc.collect()
        baseline, _ = tracemalloc.get_traced_memory()
        for _ in range(300):
            cam.attribute(images, k=2)
        gc.collect()
        current, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 300 calls each holding on to a graph or activations would add hundreds of kB.
    assert current - baseline < 20_000
    assert set(vars(cam)) == attributes_before
    assert_untouched(before, two_conv_net)


def test_hooks_removed_when_the_model_raises() -> None:
    class Failing(TwoConvNet):
        def forward(self, x: Tensor) -> Tensor:
            self.relu1(self.conv1(x))
            raise RuntimeError("boom")

    model = Failing().eval()
    before = model_snapshot(model)
    with pytest.raises(RuntimeError, match="boom"):
        layer_gradients(model, model.conv1, torch.rand(1, 3, 4, 4), torch.ones(1, 1, 5))
    assert_untouched(before, model)


def test_bad_score_weights_and_outputs(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    with pytest.raises(ValueError, match=r"shape \(T, 2, 5\)"):
        layer_gradients(two_conv_net, two_conv_net.conv2, images, torch.ones(1, 2, 4))

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv = nn.Conv2d(3, 2, 1)

        def forward(self, x: Tensor) -> Tensor:
            return self.conv(x).sum(dim=(1, 2, 3))

    flat = Flat()
    with pytest.raises(ValueError, match=r"\(batch, classes\)"):
        layer_gradients(flat, flat.conv, images, torch.ones(1, 2, 1))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu(two_conv_net: TwoConvNet) -> None:
    images = torch.rand(2, 3, 8, 8)
    expected = ContrastGradCAM(two_conv_net, two_conv_net.conv2).attribute(images, k=2)
    model = two_conv_net.cuda()
    attr = ContrastGradCAM(model, model.conv2).attribute(images, k=2)  # inputs follow the model
    assert attr.device.type == "cuda"
    torch.testing.assert_close(attr.cpu(), expected, rtol=1e-4, atol=1e-5)


def test_data_parallel_wrapper_gives_the_same_map(two_conv_net: TwoConvNet) -> None:
    # On a CPU-only machine DataParallel runs the module itself; the layer is still found
    # inside the wrapper and the per-device gather path yields the plain result.
    images = torch.rand(3, 3, 8, 8)
    expected = ContrastGradCAM(two_conv_net, two_conv_net.conv2).attribute(images, k=2)
    wrapped = nn.DataParallel(two_conv_net)
    attr = ContrastGradCAM(wrapped, two_conv_net.conv2).attribute(images, k=2)
    torch.testing.assert_close(attr, expected)
