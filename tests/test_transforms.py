"""Layouts recognised from the layer's shape: the same maps as the explicit transforms and as
Captum's LayerGradCam on the channels-first tensor they came from."""

from __future__ import annotations

from functools import partial

import pytest
import torch
from captum.attr import LayerGradCam
from torch import Tensor, nn

from captum_contrast import (
    ContrastGradCAM,
    MinMaxCAM,
    OptiCAM,
    channels_last_transform,
    tokens_transform,
    vit_reshape_transform,
)
from captum_contrast.transforms import grid_fits, infer_layout


@pytest.mark.parametrize(
    ("shape", "spatial", "expected"),
    [
        ((2, 512, 7, 7), (224, 224), None),  # ResNet layer4
        ((2, 2048, 8, 8), (299, 299), None),  # Inception: stride 37.4
        ((2, 64, 28, 40), (224, 320), None),  # non-square
        ((2, 7, 7, 768), (224, 224), "channels_last"),  # torchvision Swin
        ((2, 7, 10, 768), (224, 320), "channels_last"),
        ((2, 64, 100), (400,), None),  # Conv1d
        ((2, 8, 4, 5, 6), (8, 10, 12), None),  # Conv3d
        ((2, 4, 5, 7, 6), (8, 10, 14), "channels_last"),  # channels-last volume
        ((2, 512, 3), None, None),  # no input grid: channels-first, as Captum
    ],
)
def test_maps_layouts(shape, spatial, expected) -> None:
    transform = infer_layout(shape, spatial)
    assert (transform.__name__.removesuffix("_transform") if transform else None) == expected


@pytest.mark.parametrize(
    ("num_tokens", "spatial", "prefix", "grid"),
    [
        (1 + 196, (224, 224), 1, (14, 14)),  # ViT-B/16: class token
        (2 + 196, (224, 224), 2, (14, 14)),  # DeiT distilled
        (5 + 256, (224, 224), 5, (16, 16)),  # class + 4 registers
        (49, (224, 224), 0, (7, 7)),  # Hugging Face Swin: no prefix
        (1 + 14 * 20, (224, 320), 1, (14, 20)),  # non-square
    ],
)
def test_token_layouts(num_tokens, spatial, prefix, grid) -> None:
    transform = infer_layout((2, num_tokens, 8), spatial)
    assert transform.func is tokens_transform
    assert transform.keywords == {"prefix_tokens": prefix, "height": grid[0], "width": grid[1]}


def test_ambiguous_or_unfit_shapes_raise_naming_the_shape_and_the_fix() -> None:
    # 5 tokens on a 32x32 input: 1 prefix + 2x2, or 4 prefixes + 1x1.
    with pytest.raises(ValueError, match=r"\(2, 5, 8\).*ambiguous.*1 prefix.*2x2.*4 prefix"):
        infer_layout((2, 5, 8), (32, 32))
    with pytest.raises(ValueError, match=r"\(2, 23, 8\).*no layout fits.*tokens_transform"):
        infer_layout((2, 23, 8), (64, 64))
    with pytest.raises(ValueError, match=r"\(2, 7, 9, 768\).*channels_last_transform"):
        infer_layout((2, 7, 9, 768), (224, 224))
    with pytest.raises(ValueError, match=r"\(2, 10\).*1 to 3 spatial axes"):
        infer_layout((2, 10), (32, 32))


def test_shapes_that_fit_both_ways_raise_for_a_layer_of_unknown_type() -> None:
    # (B, 4, 4, 4) on 16x16 fits channels-first and channels-last exactly; (B, 5, 6, 8) on
    # 20x24 fits both loosely: reading either from the shape alone would be a guess.
    for shape, spatial in [((2, 4, 4, 4), (16, 16)), ((2, 5, 6, 8), (20, 24))]:
        with pytest.raises(ValueError, match=r"ambiguous.*`reshape_transform`.*channels_last"):
            infer_layout(shape, spatial)
        with pytest.raises(ValueError, match="ambiguous"):
            infer_layout(shape, spatial, nn.Identity())


@pytest.mark.parametrize(
    ("layer", "expected"),
    [
        (nn.Conv2d(3, 5, 3, stride=3), None),
        (nn.ConvTranspose2d(3, 5, 3), None),
        (nn.BatchNorm2d(5), None),
        (nn.MaxPool2d(2), None),
        (nn.Sequential(nn.Conv2d(3, 5, 3), nn.ReLU(), nn.Dropout()), None),
        (nn.LayerNorm(8), "channels_last"),
        (nn.Linear(4, 8), "channels_last"),
        (nn.Sequential(nn.Linear(4, 8), nn.GELU()), "channels_last"),
    ],
)
def test_the_layer_type_decides_before_the_shape(layer, expected) -> None:
    # The shapes: a stride-3 conv on 20x24 gives (B, 5, 6, 8), which the shape
    # alone read as a 5x6 channels-last grid; an NHWC stage (B, 8, 8, 8) fits both ways.
    for shape, spatial in [((2, 5, 6, 8), (20, 24)), ((2, 8, 8, 8), (32, 32))]:
        transform = infer_layout(shape, spatial, layer)
        assert (transform.__name__.removesuffix("_transform") if transform else None) == expected


def test_a_linear_layer_on_an_image_reads_tokens() -> None:
    transform = infer_layout((2, 1 + 196, 8), (224, 224), nn.Linear(8, 8))
    assert transform.keywords == {"prefix_tokens": 1, "height": 14, "width": 14}

    # A LayerNorm2d (a LayerNorm subclass normalising channels-first maps) says nothing.
    class LayerNorm2d(nn.LayerNorm):
        def forward(self, x: Tensor) -> Tensor:
            return super().forward(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)

    assert infer_layout((2, 512, 7, 7), (224, 224), LayerNorm2d(512)) is None


def test_a_strided_conv_on_a_non_square_input_gives_captums_map() -> None:
    # Issue 22: read channels-last, the map was (B, 1, 5, 6); LayerGradCam's is (B, 1, 6, 8).
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Conv2d(3, 5, 3, stride=3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(5, 4)
    ).eval()
    images, target = torch.rand(2, 3, 20, 24), torch.tensor([1, 3])
    reference = LayerGradCam(model, model[0]).attribute(images, target, relu_attributions=True)
    labels = torch.nn.functional.one_hot(target, 4).bool()  # one label: MinMax = Grad-CAM
    ours = MinMaxCAM(model, model[0]).attribute(images, target, labels=labels)
    assert ours.shape == reference.shape == (2, 1, 6, 8) and reference.abs().sum() > 0
    torch.testing.assert_close(ours, reference)


class NHWCStage(nn.Module):
    """A conv stem, then a channels-last stage (B, 8, 8, 8) normalised by a LayerNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 4)

    def forward(self, x: Tensor) -> Tensor:
        laid = self.norm(self.stem(x).permute(0, 2, 3, 1))  # (B, h, w, K), K = h = w = 8
        return self.head(torch.relu(laid).mean(dim=(1, 2)))


def test_a_channels_last_layer_norm_stage_equals_the_explicit_transform() -> None:
    # Issue 22: (B, 8, 8, 8) was read channels-first (relative difference 1.0).
    torch.manual_seed(0)
    model = NHWCStage().eval()
    images, target = torch.rand(2, 3, 32, 32), torch.tensor([0, 2])
    auto = ContrastGradCAM(model, model.norm).attribute(images, target, k=2)
    given = ContrastGradCAM(model, model.norm, reshape_transform=channels_last_transform)
    explicit = given.attribute(images, target, k=2)
    assert explicit.abs().sum() > 0
    torch.testing.assert_close(auto, explicit)


def test_grid_fits() -> None:
    assert grid_fits((7, 7), (224, 224)) and grid_fits((8, 8), (299, 299))
    assert not grid_fits((13, 15), (224, 224))  # equal sides, unequal grid
    assert not grid_fits((7, 20), (224, 320))  # no single stride
    assert not grid_fits((0, 7), (224, 224))
    assert not grid_fits((6, 5), (20, 24))  # the longer side has fewer cells


def test_tokens_transform_by_hand() -> None:
    tokens = torch.arange(2 * (2 + 6) * 3, dtype=torch.float).reshape(2, 8, 3)
    grid = tokens_transform(tokens, prefix_tokens=2, height=2, width=3)
    assert grid.shape == (2, 3, 2, 3)
    # channel d at (i, j) is token 2 + 3 i + j, feature d
    assert grid[1, 2, 1, 0] == tokens[1, 2 + 3, 2]
    torch.testing.assert_close(vit_reshape_transform(tokens[:, 1:], 2, 3), grid)
    with pytest.raises(ValueError, match="prefix_tokens"):
        tokens_transform(tokens, prefix_tokens=-1)
    with pytest.raises(ValueError, match="7 patch tokens"):
        tokens_transform(tokens[:, 1:], prefix_tokens=0)


class LaidOut(nn.Module):
    """A conv net whose feature map passes through ``layer`` channels-last or as tokens.

    ``layer`` sees a rearranged copy of the conv's output, so every map read there must
    equal Captum's LayerGradCam read at ``conv`` (channels-first).
    """

    def __init__(self, layout: str, prefix: int = 0, classes: int = 4) -> None:
        super().__init__()
        self.layout, self.prefix = layout, prefix
        # 16 channels: (B, 5, 6, 16) on 20x24 fits channels-last only (with 8 channels it
        # would fit both ways, and an Identity layer's type does not say which).
        self.conv = nn.Conv2d(3, 16, 4, stride=4)
        self.prefix_tokens = nn.Parameter(torch.randn(1, prefix, 16))
        self.layer = nn.Identity()
        self.head = nn.Linear(16, classes)

    def forward(self, x: Tensor) -> Tensor:
        maps = self.conv(x)  # (B, 16, h, w)
        b, k, h, w = maps.shape
        if self.layout == "channels_last":
            laid = self.layer(maps.permute(0, 2, 3, 1))
            back = laid.permute(0, 3, 1, 2)
        else:
            tokens = maps.flatten(2).transpose(1, 2)
            tokens = torch.cat([self.prefix_tokens.expand(b, -1, -1), tokens], dim=1)
            laid = self.layer(tokens)
            # prefix tokens feed the head too, so their gradient is not zero
            back = laid[:, self.prefix :].transpose(1, 2).reshape(b, k, h, w)
            back = back + laid[:, : self.prefix].sum(1)[..., None, None]
        return self.head(torch.relu(back).mean(dim=(2, 3)))


@pytest.mark.parametrize(
    ("layout", "prefix", "explicit"),
    [
        ("channels_last", 0, channels_last_transform),
        ("tokens", 0, partial(tokens_transform, prefix_tokens=0, height=5, width=6)),
        ("tokens", 1, partial(tokens_transform, prefix_tokens=1, height=5, width=6)),
        ("tokens", 2, partial(tokens_transform, prefix_tokens=2, height=5, width=6)),
    ],
)
def test_automatic_layout_equals_explicit_and_grad_cam(layout, prefix, explicit) -> None:
    torch.manual_seed(0)
    model = LaidOut(layout, prefix).eval()
    images = torch.rand(3, 3, 20, 24)  # 5x6 grid
    target = torch.tensor([0, 2, 3])
    reference = LayerGradCam(model, model.conv).attribute(images, target, relu_attributions=True)
    labels = torch.nn.functional.one_hot(target, 4).bool()  # one label: MinMax = Grad-CAM
    auto = MinMaxCAM(model, model.layer).attribute(images, target, labels=labels)
    given = MinMaxCAM(model, model.layer, reshape_transform=explicit).attribute(
        images, target, labels=labels
    )
    assert auto.shape == (3, 1, 5, 6) and reference.abs().sum() > 0
    torch.testing.assert_close(auto, reference)
    torch.testing.assert_close(given, auto)
    case = ContrastGradCAM(model, model.layer).attribute(images, target, k=2)
    torch.testing.assert_close(
        case,
        ContrastGradCAM(model, model.layer, reshape_transform=explicit).attribute(
            images, target, k=2
        ),
    )
    opti = OptiCAM(model, model.layer).attribute(images, target, n_iter=2)
    torch.testing.assert_close(
        opti,
        OptiCAM(model, model.layer, reshape_transform=explicit).attribute(images, target, n_iter=2),
    )
